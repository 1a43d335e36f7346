// Creates a topic with N partitions and replication factor 1, then waits until every partition
// has a leader. Idempotent: an existing topic with the same partition count is fine.
// Launched by tools/kafka/broker.sh as a single-file program:
//   java -cp "$CACHE/lib/*" tools/kafka/CreateTopic.java BOOTSTRAP NAME PARTITIONS
// Exit codes: 0 ok (created or already there), 1 error, 2 usage,
//             3 topic exists with a different partition count.
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class CreateTopic {
    public static void main(String[] a) throws Exception {
        if (a.length != 3) {
            System.err.println("usage: CreateTopic BOOTSTRAP NAME PARTITIONS");
            System.exit(2);
        }
        String name = a[1];
        int partitions = Integer.parseInt(a[2]);
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a[0]);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "smm-create-topic");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        int rc = 0;
        try (Admin admin = Admin.create(p)) {
            String what = "created";
            try {
                admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) throw e;
                what = "exists";
            }
            // Wait until the topic is visible with a leader for every partition (metadata propagation).
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (true) {
                try {
                    TopicDescription d = admin.describeTopics(List.of(name)).allTopicNames()
                            .get(30, TimeUnit.SECONDS).get(name);
                    int n = d.partitions().size();
                    if (n != partitions) {
                        System.err.printf("topic %s exists with %d partitions, not %d%n", name, n, partitions);
                        rc = 3;
                        break;
                    }
                    if (d.partitions().stream().allMatch(tp -> tp.leader() != null && !tp.leader().isEmpty())) {
                        System.err.printf("topic %s %s (%d partitions, RF 1)%n", name, what, n);
                        break;
                    }
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) throw e;
                }
                if (System.nanoTime() > deadline) {
                    System.err.printf("topic %s: partitions have no leader after 30 s%n", name);
                    rc = 1;
                    break;
                }
                Thread.sleep(100);
            }
        } catch (ExecutionException e) {
            System.err.println("create-topic " + name + " failed: " + e.getCause());
            rc = 1;
        } catch (Exception e) {
            System.err.println("create-topic " + name + " failed: " + e);
            rc = 1;
        }
        System.exit(rc);
    }
}
