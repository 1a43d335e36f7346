#!/usr/bin/env python3
"""tests/docs/run_examples.py - the documentation's runnable examples run on the demo's state.

    run_examples.py SOURCE_DIR BUILD_DIR

Runs every command of every code block marked <!-- runs-on-demo --> (see check_docs.py) in
README.md, bench/README.md and docs/*.md against the state scripts/demo.sh builds: a private
redis-server, the mock Kafka cluster (smm-mock-kafka), smm-processor with the competitor sets
smm-gen prints and HTTP on an ephemeral port, and smm-gen streaming the demo's events
(--contents 20000 --accounts 50 --malformed-rate 0.01 --families all --reply-median-s 20) in
real time, here a bounded count.

Each command line is run by sh after these substitutions, which stand for what the reader
does by hand: `<port>` becomes the Redis port, `redis-cli` without `-p` gets `-p <port>`,
`127.0.0.1:8080` and `localhost:8080` become the HTTP server's address, and curl gets
`--max-time` (and `-f`, so an HTTP error fails). A command passes when it exits 0 (an SSE
stream cut by --max-time, exit 28, passes when it printed an event), prints something, and
redis-cli prints no error, HMGET no empty (nil) value, the Function library's smm_mget no
nil and no 0 (a counter the demo's state does not have reads 0) and anything else not only
empty values. Everything runs on 127.0.0.1 and
every process started is stopped at the end. Exit 0 pass, 1 fail, 77 skipped (no
redis-server, curl or redis-cli).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_docs  # noqa: E402  (same directory)

COUNT = 15000        # events the generator streams
RATE = 5000          # events/s (real time, as the demo; event times are the wall clock)


class Fail(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout, interval=0.2):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # the service may not be up yet
            last = e
        time.sleep(interval)
    raise Fail("timed out after %d s waiting for %s%s" % (timeout, what,
                                                          " (%s)" % last if last else ""))


def stop(p):
    if p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def runnable_blocks(src):
    """[(page, line number, command)] of the blocks marked runs-on-demo."""
    out = []
    for page in check_docs.pages(src):
        rel = os.path.relpath(page, src)
        for start, marker, lines in check_docs.blocks(page):
            if marker != "runs-on-demo":
                continue
            for n, line in lines:
                cmd = line.strip()
                if not cmd or cmd.startswith("#"):
                    continue
                cmd = re.split(r"\s+#\s", cmd, 1)[0].strip()
                if check_docs.RUNS_TOOL.search(cmd):  # the rest (xdg-open) needs a person
                    out.append((rel, n, cmd))
    return out


class Demo:
    def __init__(self, build, work):
        self.build, self.work, self.procs = build, work, []

    def spawn(self, name, args, **kw):
        log = open(os.path.join(self.work, name + ".log"), "wb")
        p = subprocess.Popen(args, stdout=kw.pop("stdout", log), stderr=log, **kw)
        self.procs.append(p)
        return p

    def redis(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port)] + list(args),
                              check=True, capture_output=True, text=True).stdout.strip()

    def start(self):
        b = self.build
        self.redis_port = free_port()
        self.spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.work])
        boot = os.path.join(self.work, "bootstrap")
        self.spawn("kafka", [os.path.join(b, "tools/smm-mock-kafka"), "--topic", "smm.events:8",
                             "--topic", "smm.events.dlq:1", "--quiet"], stdout=open(boot, "wb"))
        brokers = wait_for("the mock Kafka cluster",
                           lambda: open(boot).readline().strip(), 30)
        wait_for("redis-server", lambda: self.redis("PING") == "PONG", 30)
        sets = subprocess.run([os.path.join(b, "tools/smm-gen"), "--print-config"], check=True,
                              capture_output=True, text=True).stdout.split()
        args = [os.path.join(b, "processor/smm-processor")]
        for s in sets:
            args += ["--set", s]
        args += ["--brokers", brokers, "--topic", "smm.events",
                 "--redis", "127.0.0.1:%d" % self.redis_port,
                 "--set", "kafka.session.timeout.ms=6000", "--set", "http.port=0"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMM_")}
        proc = self.spawn("processor", args, env=env)
        plog = os.path.join(self.work, "processor.log")

        def http_port():
            if proc.poll() is not None:
                raise Fail("smm-processor exited with %d: %s" % (
                    proc.returncode, open(plog, errors="replace").read()[-2000:]))
            for line in open(plog, errors="replace"):
                if "http: listening on " in line:
                    return int(line.rsplit(":", 1)[1].split()[0])
            return None
        self.http_port = wait_for("smm-processor's HTTP server", http_port, 30)
        gen = self.spawn("gen", [os.path.join(b, "tools/smm-gen"), "--brokers", brokers,
                                 "--topic", "smm.events", "--rate", str(RATE),
                                 "--count", str(COUNT), "--contents", "20000",
                                 "--accounts", "50", "--malformed-rate", "0.01",
                                 "--families", "all", "--reply-median-s", "20", "--quiet"])
        wait_for("smm-gen to finish", lambda: gen.poll() is not None, COUNT / RATE + 60, 0.5)
        if gen.returncode != 0:
            raise Fail("smm-gen exited with %d" % gen.returncode)
        wait_for("Redis to hold all %d messages" % COUNT,
                 lambda: self.redis("HGET", "smm:stats", "messages") == str(COUNT), 90, 0.5)
        # The processor installed the Function library the examples read windows with.
        wait_for("the Function library smm to count acct-1's reach",
                 lambda: self.redis("FCALL", "smm_mget", "0", "smm:", "total", "", "reach",
                                    "a:acct-1") not in ("", "0"),
                 30, 0.5)

    def stop(self):
        for p in reversed(self.procs):
            stop(p)


def substitute(cmd, demo):
    cmd = cmd.replace("<port>", str(demo.redis_port))
    cmd = re.sub(r"\bredis-cli(?!\s+-p\b)", "redis-cli -p %d" % demo.redis_port, cmd)
    addr = "127.0.0.1:%d" % demo.http_port
    cmd = cmd.replace("127.0.0.1:8080", addr).replace("localhost:8080", addr)
    sse = bool(re.search(r"\bcurl\b[^|]*\s-\w*N", cmd))
    cmd = re.sub(r"\bcurl\b", "curl --max-time %d%s" % (3 if sse else 10, "" if sse else " -f"),
                 cmd, 1)
    return cmd, sse


def run_one(cmd, sse):
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30)
    out = r.stdout.strip()
    if sse:
        if r.returncode not in (0, 28) or "data:" not in out:
            return "exit %d, no event: %s" % (r.returncode, (out or r.stderr)[:300])
        return None
    if r.returncode != 0:
        return "exit %d: %s" % (r.returncode, (r.stderr or out).strip()[:300])
    if not out:
        return "printed nothing"
    if "redis-cli" in cmd:
        if re.search(r"^(\(error\)|ERR|WRONGTYPE|NOPERM)", out, re.M):
            return "Redis error: " + out[:300]
        # One line per value; a nil prints as an empty line, so drop only the final newline.
        values = (r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout).split("\n")
        if re.search(r"\bHMGET\b", cmd, re.I) and any(v.strip() in ("", "(nil)") for v in values):
            return "a field the demo's state does not have (empty value %d of %d)" % (
                [v.strip() in ("", "(nil)") for v in values].index(True) + 1, len(values))
        # smm_mget answers 0 for a counter the entity does not have, nil for a rate or reach
        # that is not defined: both mean the demo's state has none of it.
        none = [v.strip() in ("", "(nil)", "0") for v in values]
        if re.search(r"\bsmm_mget\b", cmd) and any(none):
            return "a metric the demo's state does not have (value %d of %d: %r)" % (
                none.index(True) + 1, len(values), values[none.index(True)])
        if all(v.strip() in ("", "(nil)") for v in values):
            return "only empty values: the demo's state has none of this"
    return None


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: run_examples.py SOURCE_DIR BUILD_DIR\n")
        return 2
    src, build = sys.argv[1], sys.argv[2]
    for tool in ("redis-server", "redis-cli", "curl"):
        if not shutil.which(tool):
            print("SKIP: %s is not installed" % tool)
            return 77
    examples = runnable_blocks(src)
    if not examples:
        print("FAIL: no example is marked <!-- runs-on-demo -->")
        return 1
    work = tempfile.mkdtemp(prefix="smm-docs-examples.", dir=os.environ.get("SMMT_TMP"))
    demo = Demo(build, work)
    failures = []
    try:
        demo.start()
        for page, n, cmd in examples:
            real, sse = substitute(cmd, demo)
            err = run_one(real, sse)
            print("%s %s:%d: %s" % ("FAIL" if err else "ok  ", page, n, cmd))
            if err:
                print("       ran: %s\n       %s" % (real, err))
                failures.append((page, n))
    except Fail as e:
        print("FAIL: %s (logs in %s)" % (e, work))
        return 1
    finally:
        demo.stop()
    print("%d of %d example commands ran on the demo's state" % (len(examples) - len(failures),
                                                               len(examples)))
    if failures:
        print("logs in %s" % work)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
