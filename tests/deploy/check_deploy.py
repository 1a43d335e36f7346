#!/usr/bin/env python3
"""tests/deploy/check_deploy.py - static checks of everything in deploy/ (ctest label deploy).

No Docker engine or Kubernetes cluster is assumed, so nothing is built or started; instead:
  yaml        every YAML file parses; the k8s manifests have the expected kinds, probes,
              resources, and their names, labels, secrets and volumes agree with each other;
              safe defaults: the mounted Secret is readable by the run user (fsGroup, mode,
              the way the kubelet sets ownership) and by nobody else, no SCRAM with the
              image's librdkafka, a bearer token from a Secret when HTTP listens beyond
              loopback, probes that work with the token (the readiness probe's command is
              run against a local server that demands it), a NetworkPolicy on the pods'
              HTTP port; compose has KRaft Kafka (log.dirs on the kafka-data volume),
              Redis with AOF everysec, processor, generator (--families, and the competitor
              sets they name), Prometheus and Grafana wired together; smm-gen accepts the
              generator's flags.
  k8s-schema  every manifest validates against the Kubernetes OpenAPI schemas, offline
              (kubernetes-validate --strict, from PyPI, in a venv under the build dir that
              this check creates on first use; only the KEDA and kustomize kinds, which have
              no schema there, may go unchecked).
  grafana     the dashboard JSON parses; every metric it queries is in the contract list
              (tests/deploy/contract-metrics.txt, copied from the shared CONTRACTS.md).
  metrics-src every metric the dashboard queries is exported by the C sources (skipped, exit
              77, while no source exports smm_events_consumed_total: the HTTP stream's work).
  configs     `smm-processor --check-config` accepts deploy/smm-processor.json, the ConfigMap's
              JSON with the Deployment's env, and the compose env, each the way the processor
              would see it (env -i, SMM_* only). Keys the build does not know yet (http.*,
              stream http) are left out and named; configs-http then skips (77).
  configs-http the same with nothing left out (skips until http.* exists in this build).
  systemd     `systemd-analyze verify` reports nothing about the unit, the sandboxing options
              are all there, TasksMax covers the threads the daemon can start (HTTP
              connection limit + librdkafka handles + main), the offline exposure score is at
              most 2.0 (skips when systemd-analyze is missing).
  docker      Dockerfile: two stages, bookworm / bookworm-slim, non-root USER, HEALTHCHECK on
              /healthz, EXPOSE 8080, and the runtime apt-get line installs the package of every
              library the built binaries need directly (readelf NEEDED -> dpkg -S).
  install     cmake --install into a temporary prefix puts every documented file in place.
Usage: check_deploy.py CHECK SOURCE_DIR BUILD_DIR
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import yaml

SKIP = 77
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def ok(msg):
    print("ok: " + msg)


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def processor_keys(build):
    out = subprocess.run([os.path.join(build, "processor", "smm-processor"), "--help-config"],
                         capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"^  (\S+)\s+default", out, re.M))


def flatten(obj, prefix=""):
    for k, v in obj.items():
        key = prefix + k
        if isinstance(v, dict):
            yield from flatten(v, key + ".")
        else:
            yield key, v


def env_key(name):
    """SMM_HTTP_ADDRESS -> http.address, matched underscore-blind like config.c does."""
    return name[4:].lower().replace("_", ".")


def known(key, keys):
    if key.startswith("kafka."):
        return True
    return any(k.replace("_", ".") == key.replace("_", ".") for k in keys)


def check_config(build, label, config_obj, env, keys, strict, tmp, extra=()):
    """Runs --check-config on config_obj (dict or None), env (name -> value) and extra args."""
    left_out = []
    cfg = None
    if config_obj is not None:
        cfg = {}
        for k, v in flatten(config_obj):
            if known(k, keys) or strict:
                cfg[k] = v
            else:
                left_out.append(k)
    env2 = {}
    for name, value in env.items():
        if not name.startswith("SMM_"):
            fail(f"{label}: {name} is not an SMM_* variable")
            continue
        if known(env_key(name), keys) or strict:
            env2[name] = value
        else:
            left_out.append(name)
    args = [os.path.join(build, "processor", "smm-processor")]
    if cfg is not None:
        path = os.path.join(tmp, re.sub(r"\W", "_", label) + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)  # dotted keys at the top level are accepted (test_config)
        args += ["--config", path]
    args += list(extra)
    args.append("--check-config")
    r = subprocess.run(args, env=env2, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{label}: --check-config exit {r.returncode}: {r.stderr.strip()}")
    else:
        ok(f"{label}: --check-config accepts it" +
           (f" (left out, unknown to this build: {', '.join(left_out)})" if left_out else ""))
    return left_out


# ---- k8s: safe defaults ----

def secret_file_mode(pod, vol, item):
    """(uid, gid, mode) of a file of a Secret volume, as the kubelet leaves it: the atomic
    writer creates it root-owned with the item's mode or defaultMode (0644 when unset); with
    fsGroup, SetVolumeOwnership then gives it group fsGroup and ORs 0440 into the mode (a
    Secret volume is read-only: roMask; rwMask 0660 is for writable volumes)."""
    mode = item.get("mode", vol["secret"].get("defaultMode", 0o644))
    fs = pod.get("securityContext", {}).get("fsGroup")
    if fs is None:
        return 0, 0, mode
    return 0, fs, mode | 0o440


def can_read(uid, gids, fuid, fgid, mode):
    if uid == 0 or uid == fuid:
        return uid == 0 or bool(mode & 0o400)
    if fgid in gids:
        return bool(mode & 0o040)
    return bool(mode & 0o004)


def check_secret_modes(dep):
    pod = dep["spec"]["template"]["spec"]
    c = container_of(dep)
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    if uid is None:
        fail("Deployment: runAsUser not set: cannot tell who reads the mounted Secret")
        return
    gids = {csc.get("runAsGroup", psc.get("runAsGroup", 0))}
    gids |= set(psc.get("supplementalGroups", []))
    if psc.get("fsGroup") is not None:
        gids.add(psc["fsGroup"])
    mounted = {m["name"] for m in c.get("volumeMounts", [])}
    for v in pod.get("volumes", []):
        if "secret" not in v or v["name"] not in mounted:
            continue
        for it in v["secret"].get("items") or [{"key": "*", "path": "*"}]:
            fuid, fgid, mode = secret_file_mode(pod, v, it)
            what = f"Secret volume {v['name']}, {it['path']} ({fuid}:{fgid} {mode:04o})"
            if not can_read(uid, gids, fuid, fgid, mode):
                fail(f"{what}: not readable by the run user {uid} (groups {sorted(gids)}); "
                     "set securityContext.fsGroup and a group-readable mode")
            elif mode & 0o007:
                fail(f"{what}: readable by every user in the container")
            else:
                ok(f"{what}: readable by user {uid}, by no other user")


LOOPBACK = re.compile(r"^(127\.|::1$)")
SASL_KEDA = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
             "SCRAM-SHA-512": "scram_sha512"}


def check_kafka_sasl(cfg, objs):
    kafka = cfg.get("kafka", {})
    mech = kafka.get("sasl.mechanisms", "")
    proto = kafka.get("security.protocol", "").upper()
    # docs/security.md: Debian 12's librdkafka 2.0.2 (the image's) cannot complete SCRAM
    # against Kafka 4.x; PLAIN is what works there, and PLAIN only over TLS.
    if mech.upper().startswith("SCRAM"):
        fail(f"ConfigMap: sasl.mechanisms {mech}: the image's librdkafka 2.0.2 cannot do SCRAM "
             "against Kafka 4.x (docs/security.md); use PLAIN over SASL_SSL")
    elif mech.upper() == "PLAIN" and proto != "SASL_SSL":
        fail(f"ConfigMap: PLAIN over {proto or 'no security.protocol'} sends the password in "
             "clear; use SASL_SSL")
    else:
        ok(f"ConfigMap: Kafka SASL {mech or '(none)'} over {proto or 'PLAINTEXT'}")
    keda = {o["metadata"]["name"]: o.get("stringData", {}) for _, o in objs["Secret"]}
    for _, ta in objs.get("TriggerAuthentication", []):
        for ref in ta["spec"].get("secretTargetRef", []):
            if ref["parameter"] == "sasl":
                got = keda.get(ref["name"], {}).get(ref["key"])
                if mech and got != SASL_KEDA.get(mech.upper()):
                    fail(f"KEDA sasl {got!r} does not match the processor's sasl.mechanisms "
                         f"{mech} (want {SASL_KEDA.get(mech.upper())!r})")


def run_exec_probe(command, token_env, token_sent_ok):
    """Runs an exec probe's command with SMM_HTTP_TOKEN=token_env against a local server
    that answers 200 only to `Authorization: Bearer <token_sent_ok>`; returns (exit, paths)."""
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            good = self.headers.get("Authorization") == "Bearer " + token_sent_ok
            self.send_response(200 if good else 401)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        port = srv.server_address[1]
        cmd = [re.sub(r"127\.0\.0\.1:8080\b", f"127.0.0.1:{port}", a) for a in command]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SMM_HTTP_TOKEN": token_env}
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=20)
        return r.returncode, seen
    finally:
        srv.shutdown()
        srv.server_close()


def check_http_exposure(cfg, dep, objs, labels, port):
    c = container_of(dep)
    env = {e["name"]: e for e in c.get("env", [])}
    address = str(env.get("SMM_HTTP_ADDRESS", {}).get("value")
                  or cfg.get("http", {}).get("address", "127.0.0.1"))
    tok = env.get("SMM_HTTP_TOKEN")
    token_set = False
    if "token" in cfg.get("http", {}):
        fail("ConfigMap: http.token in the ConfigMap: a token belongs in a Secret")
    if tok is None:
        if not LOOPBACK.match(address):
            fail(f"HTTP listens on {address} without a token: set SMM_HTTP_TOKEN from a Secret")
    elif "value" in tok or not tok.get("valueFrom", {}).get("secretKeyRef"):
        fail("SMM_HTTP_TOKEN is not taken from a Secret (secretKeyRef)")
    else:
        ref = tok["valueFrom"]["secretKeyRef"]
        token_set = True
        ok(f"HTTP on {address}: bearer token from Secret {ref['name']} key {ref['key']}")
    # Probes: /healthz needs no token; anything else does when a token is set. An httpGet
    # probe can only send literal headers, so a token-guarded probe must be an exec one.
    for probe, want in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("startupProbe", "/healthz")]:
        pr = c.get(probe)
        if pr is None:
            if probe != "startupProbe":
                fail(f"Deployment: no {probe}")
            continue
        if "httpGet" in pr:
            g = pr["httpGet"]
            if any(h.get("name", "").lower() == "authorization" for h in g.get("httpHeaders", [])):
                fail(f"Deployment: {probe} carries an Authorization header: the token would "
                     "be in the manifest")
            if g.get("path") != want:
                fail(f"Deployment: {probe} does not GET {want}")
            elif g.get("port") not in port and g.get("port") not in port.values():
                fail(f"Deployment: {probe} port {g.get('port')} is not a container port")
            elif token_set and want != "/healthz":
                fail(f"Deployment: {probe} GET {want} without the token: 401 once "
                     "http.token is set, so the probe never passes")
            else:
                ok(f"Deployment: {probe} GET {want}")
        elif "exec" in pr:
            cmd = pr["exec"]["command"]
            if not any(want in a for a in cmd):
                fail(f"Deployment: {probe} command does not reach {want}")
                continue
            if any("Bearer" in a and "$SMM_HTTP_TOKEN" not in a and "${SMM_HTTP_TOKEN}" not in a
                   for a in cmd):
                fail(f"Deployment: {probe} command has a literal token")
            tools = [cmd[0]] + (["curl"] if "curl" in " ".join(cmd) else [])
            missing = [t for t in tools if not shutil.which(t)]
            if missing:
                fail(f"Deployment: cannot run the {probe} command here: {', '.join(missing)} "
                     "not installed (scripts/install-deps.sh)")
                continue
            rc_good, paths = run_exec_probe(cmd, "probe-token-1", "probe-token-1")
            rc_bad, _ = run_exec_probe(cmd, "wrong-token", "probe-token-1")
            if rc_good != 0 or want not in paths:
                fail(f"Deployment: {probe} command fails (exit {rc_good}, asked {paths}) "
                     "against a server that accepts SMM_HTTP_TOKEN")
            elif rc_bad == 0:
                fail(f"Deployment: {probe} command succeeds on a 401: it would never fail")
            else:
                ok(f"Deployment: {probe} runs {want} with the token from SMM_HTTP_TOKEN "
                   "(and fails on a 401)")
        else:
            fail(f"Deployment: {probe} is neither httpGet nor exec")
    # NetworkPolicy: selects these pods, admits only listed sources, only to the HTTP port.
    nps = [o for _, o in objs.get("NetworkPolicy", [])]
    selecting = [o for o in nps
                 if all(labels.get(k) == v for k, v in
                        o["spec"].get("podSelector", {}).get("matchLabels", {}).items())
                 and o["spec"].get("podSelector", {}).get("matchLabels")]
    if not selecting:
        fail("no NetworkPolicy selects the processor's pods")
        return
    for np in selecting:
        name = np["metadata"]["name"]
        if "Ingress" not in np["spec"].get("policyTypes", ["Ingress"]):
            fail(f"NetworkPolicy {name}: does not restrict ingress")
        for rule in np["spec"].get("ingress", []):
            if not rule.get("from"):
                fail(f"NetworkPolicy {name}: an ingress rule admits every source")
            for peer in rule.get("from", []):
                if "ipBlock" in peer and peer["ipBlock"].get("cidr") in ("0.0.0.0/0", "::/0"):
                    fail(f"NetworkPolicy {name}: admits every address")
                for sel in ("podSelector", "namespaceSelector"):
                    if sel in peer and not peer[sel]:
                        fail(f"NetworkPolicy {name}: an empty {sel} admits all "
                             f"{'pods' if sel == 'podSelector' else 'namespaces'}")
            ports = rule.get("ports", [])
            if not ports:
                fail(f"NetworkPolicy {name}: an ingress rule opens every port")
            for p in ports:
                if p.get("port") not in port and p.get("port") not in port.values():
                    fail(f"NetworkPolicy {name}: port {p.get('port')} is not a container port")
        opened = [str(p.get("port")) for r in np["spec"].get("ingress", [])
                  for p in r.get("ports", [])]
        ok(f"NetworkPolicy {name} selects the pods and admits only labelled clients to "
           f"{', '.join(opened)}")


# ---- yaml ----

def container_of(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]


def check_k8s(src):
    kdir = os.path.join(src, "deploy", "k8s")
    objs = {}
    for name in sorted(os.listdir(kdir)):
        if not name.endswith(".yaml"):
            continue
        try:
            docs = load_yaml_docs(os.path.join(kdir, name))
        except yaml.YAMLError as e:
            fail(f"k8s/{name}: {e}")
            continue
        ok(f"k8s/{name} parses ({len(docs)} document(s))")
        for d in docs:
            if "kind" not in d or "apiVersion" not in d:
                fail(f"k8s/{name}: a document without kind/apiVersion")
                continue
            objs.setdefault(d["kind"], []).append((name, d))
    missing = [k for k in ["Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget",
                           "NetworkPolicy", "ScaledObject", "TriggerAuthentication",
                           "Kustomization"]
               if k not in objs]
    for kind in missing:
        fail(f"k8s: no {kind}")
    if missing:
        return objs
    dep = objs["Deployment"][0][1]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    sel = dep["spec"]["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in sel.items()):
        fail("Deployment selector does not match its pod labels")
    if dep["spec"].get("replicas", 1) < 2:
        fail("Deployment: fewer than 2 replicas (one consumer group of N)")
    c = container_of(dep)
    port = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    res = c.get("resources", {})
    if not res.get("requests", {}).get("cpu") or not res.get("requests", {}).get("memory") \
            or not res.get("limits", {}).get("memory"):
        fail("Deployment: resource requests (cpu, memory) and memory limit required")
    if not dep["spec"]["template"]["spec"].get("securityContext", {}).get("runAsNonRoot"):
        fail("Deployment: runAsNonRoot not set")
    for kind in ["Service", "PodDisruptionBudget"]:
        for name, o in objs[kind]:
            s = o["spec"]["selector"]
            s = s.get("matchLabels", s)
            if any(labels.get(k) != v for k, v in s.items()):
                fail(f"{kind} in {name}: selector does not match the pods")
    svc = objs["Service"][0][1]
    for p in svc["spec"]["ports"]:
        if p.get("targetPort") not in port and p.get("targetPort") not in port.values():
            fail(f"Service port {p.get('name')}: targetPort is not a container port")
    # Names referenced by the Deployment exist.
    secrets = {o["metadata"]["name"]: set(o.get("stringData", {})) | set(o.get("data", {}) or {})
               for _, o in objs["Secret"]}
    cms = {o["metadata"]["name"]: o for _, o in objs["ConfigMap"]}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
    for m in c.get("volumeMounts", []):
        if m["name"] not in vols:
            fail(f"Deployment: volumeMount {m['name']} has no volume")
    for v in vols.values():
        if "configMap" in v and v["configMap"]["name"] not in cms:
            fail(f"volume {v['name']}: no ConfigMap {v['configMap']['name']}")
        if "secret" in v:
            sn = v["secret"]["secretName"]
            if sn not in secrets:
                fail(f"volume {v['name']}: no Secret {sn}")
            for it in v["secret"].get("items", []):
                if it["key"] not in secrets.get(sn, ()):
                    fail(f"volume {v['name']}: Secret {sn} has no key {it['key']}")
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["key"] not in secrets.get(ref["name"], ()):
            fail(f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")
    # KEDA: scales this Deployment, on this group and topic.
    cfg = json.loads(next(iter(cms.values()))["data"]["smm-processor.json"])
    so = objs["ScaledObject"][0][1]
    if so["spec"]["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        fail("ScaledObject does not target the Deployment")
    trig = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
    if not trig:
        fail("ScaledObject: no kafka trigger")
    else:
        md = trig[0]["metadata"]
        if md.get("consumerGroup") != cfg.get("group_id") or md.get("topic") != cfg.get("topic"):
            fail("ScaledObject: consumerGroup/topic differ from the ConfigMap's group_id/topic")
        else:
            ok("ScaledObject: kafka trigger on the processor's group and topic")
    kus = objs["Kustomization"][0][1]
    for r in kus["resources"]:
        if not os.path.exists(os.path.join(kdir, r)):
            fail(f"kustomization: {r} missing")
    # Safe defaults: secrets readable by the processor only, a Kafka mechanism the image's
    # librdkafka can do, HTTP guarded by a token and a NetworkPolicy, probes that still work.
    check_secret_modes(dep)
    check_kafka_sasl(cfg, objs)
    check_http_exposure(cfg, dep, objs, labels, port)
    applied = {d.get("kind") for r in kus["resources"]
               if os.path.exists(os.path.join(kdir, r))
               for d in load_yaml_docs(os.path.join(kdir, r))}
    if "NetworkPolicy" not in applied:
        fail("kustomization: no NetworkPolicy among its resources")
    return objs


def check_compose(src, build):
    path = os.path.join(src, "deploy", "docker-compose.yml")
    try:
        comp = load_yaml_docs(path)[0]
    except (yaml.YAMLError, IndexError) as e:
        fail(f"docker-compose.yml: {e}")
        return None
    ok("docker-compose.yml parses")
    svc = comp.get("services", {})
    missing = [s for s in ["kafka", "redis", "processor", "generator", "prometheus", "grafana"]
               if s not in svc]
    for s in missing:
        fail(f"compose: no service {s}")
    if missing:
        return comp
    kenv = svc["kafka"].get("environment", {})
    if not str(svc["kafka"].get("image", "")).startswith("apache/kafka:") or \
            "controller" not in kenv.get("KAFKA_PROCESS_ROLES", ""):
        fail("compose: kafka is not apache/kafka in KRaft mode (process.roles with controller)")
    # Kafka writes where log.dirs says (the image's default, /tmp/kraft-combined-logs, is in
    # no volume): KAFKA_LOG_DIRS must be set and be where the kafka-data volume is mounted.
    logdirs = kenv.get("KAFKA_LOG_DIRS")
    kmounts = {m.split(":")[1]: m.split(":")[0] for m in svc["kafka"].get("volumes", [])
               if ":" in m}
    if not logdirs:
        fail("compose: kafka without KAFKA_LOG_DIRS: the image writes to "
             "/tmp/kraft-combined-logs, outside the kafka-data volume")
    elif any(kmounts.get(d) != "kafka-data" for d in str(logdirs).split(",")):
        fail(f"compose: KAFKA_LOG_DIRS {logdirs} is not where kafka-data is mounted ({kmounts})")
    else:
        ok(f"compose: Kafka's log.dirs {logdirs} is the kafka-data volume")
    rcmd = " ".join(svc["redis"].get("command", []))
    if "--appendonly yes" not in rcmd or "--appendfsync everysec" not in rcmd:
        fail("compose: redis without --appendonly yes --appendfsync everysec")
    mounts = " ".join(svc["prometheus"].get("volumes", []))
    if "prometheus.yml" not in mounts:
        fail("compose: prometheus.yml not mounted")
    gm = " ".join(svc["grafana"].get("volumes", []))
    if "grafana/provisioning" not in gm or "grafana/dashboards" not in gm:
        fail("compose: Grafana provisioning or dashboards not mounted")
    for s in ["processor", "generator"]:
        if svc[s].get("image") != svc["processor"].get("image"):
            fail("compose: generator does not use the processor image")
    # Relative host paths exist.
    for s, v in svc.items():
        for m in v.get("volumes", []):
            hostp = m.split(":")[0]
            if hostp.startswith("."):
                if not os.path.exists(os.path.join(src, "deploy", hostp)):
                    fail(f"compose {s}: {hostp} does not exist")
    # Prometheus scrapes the processor's port, Grafana's datasource is that Prometheus.
    prom = load_yaml_docs(os.path.join(src, "deploy", "prometheus.yml"))[0]
    targets = [t for j in prom["scrape_configs"] for sc in j["static_configs"]
               for t in sc["targets"]]
    if "processor:8080" not in targets:
        fail("prometheus.yml does not scrape processor:8080")
    for sub in ["datasources", "dashboards"]:
        d = os.path.join(src, "deploy", "grafana", "provisioning", sub)
        for n in os.listdir(d):
            load_yaml_docs(os.path.join(d, n))
            ok(f"grafana/provisioning/{sub}/{n} parses")
    # The generator's flags are accepted by smm-gen (to stdout instead of Kafka).
    args = list(svc["generator"]["command"])
    if svc["generator"].get("entrypoint") != ["/usr/bin/smm-gen"]:
        fail("compose: generator entrypoint is not /usr/bin/smm-gen")
    out = []
    i = 0
    while i < len(args):
        if args[i] in ("--brokers", "--topic", "--rate", "--count"):
            i += 2
            continue
        out.append(args[i])
        i += 1
    r = subprocess.run([os.path.join(build, "tools", "smm-gen"), *out, "--count", "5",
                        "--stdout"], capture_output=True, text=True)
    if r.returncode != 0 or len(r.stdout.splitlines()) != 5:
        fail(f"smm-gen rejects the generator's flags {out}: {r.stderr.strip()}")
    else:
        ok("smm-gen accepts the generator's flags")
    # The insight routes need the event families (smm-gen --families), and share of voice
    # the competitor sets those events name (smm-gen --print-config).
    fams = [a.split("=", 1)[1] for a in args if a.startswith("--families=")] + \
        [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--families"]
    if not fams or fams[-1] == "none":
        fail("compose: the generator runs without --families: the insight routes stay empty")
    else:
        ok(f"compose: the generator writes the event families {fams[-1]}")
        r = subprocess.run([os.path.join(build, "tools", "smm-gen"), *out, "--print-config"],
                           capture_output=True, text=True)
        want = [ln for ln in r.stdout.splitlines() if ln.startswith("sov.set.")]
        pcmd = list(svc["processor"].get("command", []))
        have = [pcmd[i + 1] for i, a in enumerate(pcmd[:-1]) if a == "--set"]
        for w in want:
            if w not in have:
                fail(f"compose: the processor lacks --set {w} (the generator's competitor set)")
        if want and all(w in have for w in want):
            ok(f"compose: the processor has the generator's competitor sets ({len(want)})")
    if "--brokers" not in args or args[args.index("--brokers") + 1] != \
            svc["processor"]["environment"].get("SMM_KAFKA_BOOTSTRAP_SERVERS"):
        fail("compose: generator and processor use different brokers")
    return comp


# ---- k8s-schema ----

KV_VERSION = "1.37.0"  # kubernetes-validate on PyPI: ships the schemas of Kubernetes 1.25-1.37
K8S_VERSIONS = ["1.29.0", "1.37.0"]  # the oldest still-supported minor we target, the newest
NO_SCHEMA_OK = {"ScaledObject", "TriggerAuthentication", "Kustomization"}  # KEDA, kustomize


def kv_venv(build):
    """A venv under the build dir with kubernetes-validate, created on first use (Debian 12's
    pip refuses system-wide installs, PEP 668). The stamp file is written last, so an
    interrupted install is redone. Returns the kubernetes-validate path or None."""
    venv = os.path.join(build, "deploy-venv")
    exe = os.path.join(venv, "bin", "kubernetes-validate")
    stamp = os.path.join(venv, "kubernetes-validate-" + KV_VERSION)
    if os.path.exists(stamp) and os.access(exe, os.X_OK):
        return exe
    shutil.rmtree(venv, ignore_errors=True)
    for cmd in [[sys.executable, "-m", "venv", venv],
                [os.path.join(venv, "bin", "pip"), "install", "--quiet",
                 "--disable-pip-version-check", "kubernetes-validate==" + KV_VERSION]]:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{' '.join(cmd[:4])} ... exit {r.returncode}: "
                 f"{(r.stderr or r.stdout).strip()[-800:]} (needs python3-venv from "
                 "scripts/install-deps.sh, and PyPI)")
            return None
    open(stamp, "w").close()
    ok(f"created {venv} with kubernetes-validate {KV_VERSION}")
    return exe


def cmd_k8s_schema(src, build):
    exe = kv_venv(build)
    if not exe:
        return 1
    kdir = os.path.join(src, "deploy", "k8s")
    files = sorted(os.path.join(kdir, n) for n in os.listdir(kdir) if n.endswith(".yaml"))
    for ver in K8S_VERSIONS:
        r = subprocess.run([exe, "--strict", "-k", ver, *files], capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        unchecked = re.findall(r"Couldn't find schema for kind (\S+)", out)
        for kind in unchecked:
            if kind not in NO_SCHEMA_OK:
                fail(f"k8s {ver}: no schema for kind {kind} (misspelt kind or apiVersion?)")
        errors = [ln for ln in out.splitlines()
                  if not ln.startswith("INFO") and "Couldn't find schema" not in ln]
        if r.returncode != 0 or errors:
            fail(f"kubernetes-validate --strict -k {ver} (exit {r.returncode}):\n" +
                 "\n".join(errors))
        else:
            n = len(re.findall(r"^INFO .* passed", out, re.M))
            ok(f"Kubernetes {ver} schemas (strict): {n} objects valid; no schema for "
               f"{', '.join(sorted(set(unchecked)))} (CRDs / kustomize)")
    return 0


def cmd_yaml(src, build):
    check_k8s(src)
    check_compose(src, build)


# ---- grafana ----

def dashboard_metrics(src):
    path = os.path.join(src, "deploy", "grafana", "dashboards", "smm-processor.json")
    with open(path) as f:
        dash = json.load(f)
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("expr"), str):
                exprs.append(o["expr"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(dash)
    return dash, exprs, {m for e in exprs for m in re.findall(r"\bsmm_[a-z0-9_]+", e)}


def contract(src):
    with open(os.path.join(src, "tests", "deploy", "contract-metrics.txt")) as f:
        names = {ln.split()[0] for ln in f if ln.strip() and not ln.startswith("#")}
    return names


def base_metric(m, names):
    for suffix in ("_bucket", "_sum", "_count"):
        if m.endswith(suffix) and m[: -len(suffix)] in names:
            return m[: -len(suffix)]
    return m


def cmd_grafana(src, build):
    dash, exprs, metrics = dashboard_metrics(src)
    ok(f"dashboard parses: {len(dash['panels'])} panels, {len(exprs)} queries")
    names = contract(src)
    for m in sorted(metrics):
        if base_metric(m, names) not in names:
            fail(f"dashboard queries {m}, not in the contract list")
    for m in ["smm_events_consumed_total", "smm_consumer_lag", "smm_flush_duration_seconds",
              "smm_events_dead_lettered_total", "smm_alerts_emitted_total",
              "smm_process_resident_memory_bytes"]:
        if not any(base_metric(x, names) == m for x in metrics):
            fail(f"dashboard does not show {m}")
    if not any("histogram_quantile" in e and "smm_flush_duration_seconds_bucket" in e
               for e in exprs):
        fail("dashboard: no flush latency quantile")
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        fail("dashboard: duplicate panel ids")
    ds = load_yaml_docs(os.path.join(src, "deploy", "grafana", "provisioning", "datasources",
                                     "prometheus.yml"))[0]
    uids = {d["uid"] for d in ds["datasources"]}
    for p in dash["panels"]:
        if p["datasource"]["uid"] not in uids:
            fail(f"panel {p['title']}: datasource uid not provisioned")
    if not failures:
        ok(f"every dashboard metric is in the contract ({', '.join(sorted(metrics))})")


def cmd_metrics_src(src, build):
    text = ""
    for d in ["processor", "connectors"]:
        for n in os.listdir(os.path.join(src, d)):
            if n.endswith(".c"):
                with open(os.path.join(src, d, n), errors="replace") as f:
                    text += f.read()
    if "smm_events_consumed_total" not in text:
        print("SKIP: no /metrics exporter in this tree yet (stream http)")
        return SKIP
    _, _, metrics = dashboard_metrics(src)
    names = contract(src)
    for m in sorted({base_metric(x, names) for x in metrics}):
        if m not in text:
            fail(f"dashboard metric {m} is not exported by processor/ or connectors/")
    return 0


# ---- configs ----

def run_configs(src, build, strict):
    keys = processor_keys(build)
    left = []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(src, "deploy", "smm-processor.json")) as f:
            sample = json.load(f)
        left += check_config(build, "deploy/smm-processor.json", sample, {}, keys, strict, tmp)
        # systemd: the unit's environment (the credential file path is a real file here).
        pw = os.path.join(tmp, "redis-password")
        with open(pw, "w") as f:
            f.write("not-a-real-password\n")
        left += check_config(build, "smm-processor.service", sample,
                             {"SMM_REDIS_PASSWORD_FILE": pw}, keys, strict, tmp)
        # k8s: the ConfigMap's JSON with the Deployment's env (secrets as placeholders).
        kdir = os.path.join(src, "deploy", "k8s")
        cm = load_yaml_docs(os.path.join(kdir, "configmap.yaml"))[0]
        dep = load_yaml_docs(os.path.join(kdir, "deployment.yaml"))[0]
        env = {}
        for e in container_of(dep).get("env", []):
            if "value" in e:
                v = e["value"]
                if e["name"].endswith("_FILE"):
                    v = pw  # mounted from the Secret in the pod
                env[e["name"]] = v
            else:
                env[e["name"]] = "placeholder-from-" + next(iter(e["valueFrom"]))
        for name, text in cm["data"].items():
            left += check_config(build, f"k8s ConfigMap {name} + Deployment env",
                                 json.loads(text), env, keys, strict, tmp)
        # The config path the pods use is where the ConfigMap is mounted.
        args = container_of(dep).get("args", [])
        mounts = {m["name"]: m["mountPath"] for m in container_of(dep)["volumeMounts"]}
        want = [f"{mounts['config']}/{n}" for n in cm["data"]]
        if "--config" not in args or args[args.index("--config") + 1] not in want:
            fail(f"Deployment args {args} do not name the mounted ConfigMap file {want}")
        # compose: the mounted sample config with the processor's environment.
        comp = load_yaml_docs(os.path.join(src, "deploy", "docker-compose.yml"))[0]
        proc = comp["services"]["processor"]
        penv = {k: str(v) for k, v in proc.get("environment", {}).items()}
        mounted = [m for m in proc.get("volumes", []) if m.endswith(":/etc/smm-stream/smm-processor.json:ro")]
        if not mounted:
            fail("compose: the processor does not mount a config at /etc/smm-stream/smm-processor.json")
        else:
            with open(os.path.join(src, "deploy", mounted[0].split(":")[0])) as f:
                ccfg = json.load(f)
            cmd = list(proc.get("command", []))
            extra = [a for i, a in enumerate(cmd)
                     if a != "--config" and (i == 0 or cmd[i - 1] != "--config")]
            left += check_config(build, "compose processor", ccfg, penv, keys, strict, tmp,
                                 extra)
        if "/etc/smm-stream/smm-processor.json" not in proc.get("command", []):
            fail("compose: the processor is not started with the mounted config")
    return left


def cmd_configs(src, build):
    run_configs(src, build, False)


def cmd_configs_http(src, build):
    keys = processor_keys(build)
    if "http.address" not in keys:
        print("SKIP: this build has no http.* keys yet (stream http); the configs check ran "
              "without them")
        return SKIP
    run_configs(src, build, True)
    return 0


# ---- systemd ----

SANDBOX = ["DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
           "NoNewPrivileges=yes", "RestrictAddressFamilies=", "MemoryDenyWriteExecute=yes",
           "SystemCallFilter=@system-service", "CapabilityBoundingSet=\n",
           "Restart=on-failure", "ConfigurationDirectory=smm-stream",
           "--config /etc/smm-stream/smm-processor.json", "LoadCredential=redis-password:",
           "SMM_REDIS_PASSWORD_FILE=%d/redis-password"]


def http_connection_limit(src, build):
    """The most HTTP connections the daemon serves at once: a config key for it if this build
    has one (its default, or the sample config's value), else the server's built-in limit."""
    out = subprocess.run([os.path.join(build, "processor", "smm-processor"), "--help-config"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^  (http\.(?:max_)?connections)\s+default \"?(\d+)", out, re.M)
    if m:
        with open(os.path.join(src, "deploy", "smm-processor.json")) as f:
            sample = dict(flatten(json.load(f)))
        return int(sample.get(m.group(1), m.group(2))), m.group(1)
    with open(os.path.join(src, "connectors", "http_server.c")) as f:
        m = re.search(r"max_connections > 0 \? o->max_connections : (\d+)", f.read())
    if not m:
        with open(os.path.join(src, "connectors", "http_server.h")) as f:
            m = re.search(r"max_connections;\s*/\*\s*<= 0: (\d+)", f.read())
    if not m:
        fail("cannot find the HTTP connection limit (config key or connectors/http_server.*)")
        return None, None
    return int(m.group(1)), "connectors/http_server.c default"


def check_tasks_max(src, build, text):
    """TasksMax counts threads: it must cover one per HTTP connection plus the listener, the
    main loop, and librdkafka's threads (per handle: main, internal, and a bootstrap and a
    learned broker thread per broker; 6 brokers assumed)."""
    limit, where = http_connection_limit(src, build)
    if limit is None:
        return
    handles = 0
    for d in ["processor", "connectors"]:
        for n in os.listdir(os.path.join(src, d)):
            if n.endswith(".c"):
                with open(os.path.join(src, d, n), errors="replace") as f:
                    handles += len(re.findall(r"=\s*rd_kafka_new\(", f.read()))
    brokers = 6
    bound = limit + 1 + 1 + handles * (2 + 2 * brokers)
    m = re.search(r"^TasksMax=(\S+)", text, re.M)
    if not m:
        fail("unit lacks TasksMax (systemd's default, 15% of the system's limit, varies)")
    elif m.group(1) != "infinity" and int(m.group(1)) < bound:
        fail(f"TasksMax={m.group(1)} < {bound} threads the daemon may start ({limit} HTTP "
             f"connections from {where}, {handles} librdkafka handles with {brokers} brokers, "
             "main and listener)")
    else:
        ok(f"TasksMax={m.group(1)} >= {bound} ({limit} HTTP connections from {where}, "
           f"{handles} librdkafka handles)")


def cmd_systemd(src, build):
    unit = os.path.join(src, "deploy", "smm-processor.service")
    with open(unit) as f:
        text = f.read()
    for opt in SANDBOX:
        if opt not in text:
            fail(f"unit lacks {opt.strip()}")
    check_tasks_max(src, build, text)
    sa = shutil.which("systemd-analyze")
    if not sa:
        print("SKIP: systemd-analyze not installed (the option checks above passed)")
        return SKIP if not failures else 1
    with tempfile.TemporaryDirectory() as tmp:
        # verify wants ExecStart to exist: point it at the built binary.
        t = os.path.join(tmp, "smm-processor.service")
        with open(t, "w") as f:
            f.write(text.replace("/usr/bin/smm-processor",
                                 os.path.join(build, "processor", "smm-processor")))
        r = subprocess.run([sa, "verify", t], capture_output=True, text=True)
        said = [ln for ln in (r.stdout + r.stderr).splitlines() if "smm-processor" in ln]
        if r.returncode != 0 or said:
            fail(f"systemd-analyze verify (exit {r.returncode}): " + " | ".join(said))
        else:
            ok("systemd-analyze verify: no complaints")
        r = subprocess.run([sa, "security", "--offline=true", t], capture_output=True, text=True)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        if not m:
            print("note: systemd-analyze security --offline not supported here; score not checked")
        elif float(m.group(1)) > 2.0:
            fail(f"systemd-analyze security: exposure {m.group(1)} > 2.0")
        else:
            ok(f"systemd-analyze security: exposure {m.group(1)}")
    return 0


# ---- docker ----

def needed_packages(binary):
    """Debian packages of the shared libraries the binary links directly."""
    ro = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True)
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", ro.stdout))
    ld = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ld, re.M))
    pkgs = set()
    for lib in needed:
        p = paths.get(lib)
        if not p:
            continue
        for cand in (p, "/usr" + p, os.path.realpath(p)):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0:
                pkgs.add(r.stdout.split(":")[0].split(",")[0].strip())
                break
        else:
            pkgs.add("?" + lib)
    return pkgs


def cmd_docker(src, build):
    with open(os.path.join(src, "deploy", "Dockerfile")) as f:
        text = f.read()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    if len(froms) < 2 or not froms[0][0].startswith("debian:bookworm") or \
            froms[-1][0] != "debian:bookworm-slim":
        fail(f"Dockerfile stages {froms}: want debian:bookworm build, debian:bookworm-slim runtime")
    runtime = text[text.rfind("\nFROM "):]
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        fail("Dockerfile: the runtime stage does not switch to a non-root USER")
    if not re.search(r"^HEALTHCHECK .*\n?.*http://127\.0\.0\.1:8080/healthz", runtime, re.M):
        fail("Dockerfile: no HEALTHCHECK on http://127.0.0.1:8080/healthz")
    if not re.search(r"^EXPOSE\s+8080\b", runtime, re.M):
        fail("Dockerfile: no EXPOSE 8080")
    apt = " ".join(re.findall(r"apt-get install[^&]*", runtime.replace("\\\n", " ")))
    tool = re.search(r"HEALTHCHECK[^\n]*\n?\s*CMD\s+(\S+)", runtime)
    if tool and tool.group(1) not in apt.split():
        fail(f"Dockerfile: the HEALTHCHECK's {tool.group(1)} is not installed in the runtime stage")
    if "-dev" in apt:
        fail("Dockerfile: -dev packages in the runtime stage")
    if not shutil.which("dpkg") or not shutil.which("readelf"):
        print("note: no dpkg/readelf: runtime library packages not checked")
    else:
        base = {"libc6", "libgcc-s1", "zlib1g"}  # in bookworm-slim already
        before = len(failures)
        for b in ["processor/smm-processor", "tools/smm-gen", "tools/smm-mock-kafka"]:
            for pkg in sorted(needed_packages(os.path.join(build, b)) - base):
                if pkg not in apt.split():
                    fail(f"Dockerfile: {b} needs {pkg}, not installed in the runtime stage")
        if len(failures) == before:
            ok("runtime stage installs the package of every library the binaries link")
    ign = os.path.join(src, "deploy", "Dockerfile.dockerignore")
    if not os.path.exists(ign) or "build" not in open(ign).read():
        fail("deploy/Dockerfile.dockerignore should keep build directories out of the context")
    hl = shutil.which("hadolint")
    if hl:
        r = subprocess.run([hl, os.path.join(src, "deploy", "Dockerfile")], capture_output=True,
                           text=True)
        print(r.stdout)
        if r.returncode != 0:
            fail("hadolint")
    else:
        print("note: hadolint not installed; the checks above stand in for it")
    if not failures:
        ok("Dockerfile: bookworm -> bookworm-slim, non-root, HEALTHCHECK /healthz, EXPOSE 8080")


# ---- install ----

def cmd_install(src, build):
    with tempfile.TemporaryDirectory() as prefix:
        r = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"cmake --install: {r.stderr}")
            return
        want = ["bin/smm-processor", "bin/smm-gen", "bin/smm-mock-kafka",
                "share/doc/smm-stream/README.md", "share/doc/smm-stream/docs/security.md",
                "share/smm-stream/examples/smm-processor.json",
                "lib/systemd/system/smm-processor.service"]
        for w in want:
            p = os.path.join(prefix, w)
            if not os.path.isfile(p):
                fail(f"cmake --install: no {w}")
            elif w.startswith("bin/") and not os.access(p, os.X_OK):
                fail(f"{w} is not executable")
        unit = os.path.join(prefix, "lib/systemd/system/smm-processor.service")
        if os.path.isfile(unit):
            text = open(unit).read()
            if f"ExecStart={prefix}/bin/smm-processor " not in text:
                fail("installed unit's ExecStart does not point at the installed binary")
        ex = os.path.join(prefix, "share/smm-stream/examples/smm-processor.json")
        r = subprocess.run([os.path.join(prefix, "bin/smm-processor"), "-c", ex, "--check-config"],
                           capture_output=True, text=True, env={})
        if r.returncode != 0:
            fail(f"installed binary rejects the installed example: {r.stderr}")
        if not failures:
            ok("cmake --install: " + ", ".join(want))


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    check, src, build = sys.argv[1:]
    fn = {"yaml": cmd_yaml, "k8s-schema": cmd_k8s_schema, "grafana": cmd_grafana,
          "metrics-src": cmd_metrics_src,
          "configs": cmd_configs, "configs-http": cmd_configs_http, "systemd": cmd_systemd,
          "docker": cmd_docker, "install": cmd_install}.get(check)
    if not fn:
        print(f"unknown check {check}")
        return 2
    rc = fn(os.path.abspath(src), os.path.abspath(build)) or 0
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
