#!/usr/bin/env python3
"""bench/python_baseline.py - the "plain Python consumer doing the same job" of bench/run.sh.

The simplest sensible Python version of smm-processor's core job, written the way a team
would write it first with confluent-kafka and redis-py:

  * consume the topic with a high-level consumer (consume() in batches of 1000, the same
    queue settings as smm-processor), starting from the offsets stored in Redis
    (auto.offset.reset=earliest when none are stored);
  * json.loads() each message; count per content and per account: one counter per event
    type, plus engagement (+1 like/comment/share/click, -1 unlike/comment_delete, the
    processor's default engagement set); lifetime totals only;
  * reach: the user_id of impression/view events goes into one HyperLogLog per content and
    per account (PFADD);
  * every 250 ms (the processor's flush.interval_ms) one MULTI/EXEC (redis-py pipeline with
    transaction=True) writes the HINCRBY deltas, the PFADDs and each partition's next offset
    (HSET <prefix>offsets <topic>:<partition> <offset>), so state and offsets change
    together: exactly once, like the processor.

It is a SUBSET of smm-processor's work, on purpose, and says so in its output: no rolling
windows (5m/1h/24h), no minute buckets or their retirement, no per-minute account reach
sketches, no derived rates (er_impr, er_reach), no dead-letter topic, no owner fencing, and
only light validation (a message that is not a JSON object with a string "type" and
"account_id" is counted as bad and skipped). So the ratio smm/python understates what the C
processor does per event.

It stops after --count messages, flushes, and prints one line:
  python: N msgs; from start S s = R msg/s; from assignment S s = R msg/s; cpu C s = P
  msg/cpu-s; flushes F; redis commands K; bad B; SUBSET: ...
"""

import argparse
import json
import os
import resource
import sys
import time
from collections import defaultdict

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException
import redis

ENGAGEMENT = {"like": 1, "comment": 1, "share": 1, "click": 1, "unlike": -1, "comment_delete": -1}
REACH_TYPES = ("impression", "view")
SUBSET_NOTE = ("SUBSET of smm-processor's job: lifetime counters, engagement and reach only; "
               "no windows, minute buckets, rates, dead letters or fencing")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-b", "--brokers", required=True)
    ap.add_argument("-t", "--topic", required=True)
    ap.add_argument("-n", "--count", type=int, required=True, help="messages to consume")
    ap.add_argument("-g", "--group", default=None, help="consumer group (default: a fresh one)")
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--prefix", default="py:", help="Redis key prefix (default py:)")
    ap.add_argument("--flush-ms", type=int, default=250)
    ap.add_argument("--batch", type=int, default=1000, help="messages per consume() call")
    ap.add_argument("--timeout-s", type=float, default=600.0)
    return ap.parse_args()


def main():
    t_start = time.monotonic()
    a = parse_args()
    group = a.group or "smm-py-%d-%d" % (os.getpid(), int(time.time()))
    r = redis.Redis(host=a.redis_host, port=a.redis_port, socket_timeout=30)
    offsets_key = a.prefix + "offsets"
    total_key = a.prefix + "total"

    t_assigned = [0.0]

    def on_assign(consumer, partitions):
        # Resume where Redis says this job stopped: the offsets live with the state.
        fields = ["%s:%d" % (p.topic, p.partition) for p in partitions]
        stored = r.hmget(offsets_key, fields) if fields else []
        for p, s in zip(partitions, stored):
            p.offset = int(s) if s is not None else OFFSET_BEGINNING
        consumer.assign(partitions)
        if not t_assigned[0]:
            t_assigned[0] = time.monotonic()

    c = Consumer({
        "bootstrap.servers": a.brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "queued.min.messages": 200000,
        "queued.max.messages.kbytes": 262144,
        "session.timeout.ms": 10000,
    })
    c.subscribe([a.topic], on_assign=on_assign)

    counts = defaultdict(int)   # "c:<id>:<metric>" -> delta
    reach = defaultdict(set)    # "<prefix>c:<id>:reach" -> users
    offsets = {}                # "<topic>:<partition>" -> next offset
    consumed = bad = flushes = commands = 0
    flush_s = a.flush_ms / 1000.0
    next_flush = time.monotonic() + flush_s
    deadline = t_start + a.timeout_s

    def flush():
        nonlocal counts, reach, offsets, flushes, commands
        if not offsets:
            return
        pipe = r.pipeline(transaction=True)
        for field, d in counts.items():
            pipe.hincrby(total_key, field, d)
        for key, users in reach.items():
            pipe.pfadd(key, *users)
        pipe.hset(offsets_key, mapping=offsets)
        pipe.execute()
        commands += len(counts) + len(reach) + 3  # + MULTI, HSET, EXEC
        flushes += 1
        counts, reach, offsets = defaultdict(int), defaultdict(set), {}

    try:
        while consumed < a.count:
            now = time.monotonic()
            if now > deadline:
                print("python_baseline: timeout after %d of %d messages" % (consumed, a.count),
                      file=sys.stderr)
                return 1
            msgs = c.consume(num_messages=min(a.batch, a.count - consumed), timeout=0.05)
            for m in msgs:
                if m.error():
                    print("python_baseline: %s" % m.error(), file=sys.stderr)
                    continue
                consumed += 1
                offsets["%s:%d" % (m.topic(), m.partition())] = m.offset() + 1
                try:
                    ev = json.loads(m.value())
                    typ = ev["type"]
                    acct = ev["account_id"]
                    if not isinstance(typ, str) or not isinstance(acct, str):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    bad += 1
                    continue
                eng = ENGAGEMENT.get(typ, 0)
                user = ev.get("user_id") if typ in REACH_TYPES else None
                ents = ["a:" + acct]
                cid = ev.get("content_id")
                if isinstance(cid, str):
                    ents.append("c:" + cid)
                for ent in ents:
                    counts[ent + ":" + typ] += 1
                    if eng:
                        counts[ent + ":engagement"] += eng
                    if isinstance(user, str):
                        reach[a.prefix + ent + ":reach"].add(user)
            if time.monotonic() >= next_flush:
                flush()
                next_flush = time.monotonic() + flush_s
        flush()
    except KafkaException as e:
        print("python_baseline: %s" % e, file=sys.stderr)
        return 1
    t_end = time.monotonic()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime
    total = t_end - t_start
    since_assign = t_end - t_assigned[0] if t_assigned[0] else 0.0
    print("python: %d msgs; from start %.3f s = %.0f msg/s; from assignment %.3f s = %.0f msg/s; "
          "cpu %.3f s = %.0f msg/cpu-s; flushes %d; redis commands %d; bad %d; %s"
          % (consumed, total, consumed / total, since_assign,
             consumed / since_assign if since_assign > 0 else 0.0, cpu,
             consumed / cpu if cpu > 0 else 0.0, flushes, commands, bad, SUBSET_NOTE))
    sys.stdout.flush()
    c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
