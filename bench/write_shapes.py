#!/usr/bin/env python3
"""bench/write_shapes.py - Redis CPU of candidate write shapes for bucketed, sharded state.

Why: the product's write path is moving from one large state script over a few wide hashes
to plain writes of time buckets, grouped into small atomic units per hash-tag shard (so a
Redis Cluster can spread them). Which write shape meets a budget of a few microseconds of
Redis CPU per event is a measurement, not a guess; this script makes it on a private
redis-server with a synthetic stream, before any processor code is written for it.

It pre-aggregates, as the processor would, a Zipf-skewed stream (posts and their accounts)
into flushes of --flush events, groups each flush's entities into --shards shards by
CRC32(entity) and sends one call per shard (an envelope that checks and stores the shard's
offset, as a replay fence would), then prints Redis main-thread CPU per event (INFO cpu,
used_cpu_user_main_thread + used_cpu_sys_main_thread), the longest call (SLOWLOG, calls
over 1 ms) and memory per event. Shapes:

  A  HINCRBY of each changed counter in each bucket key (minute, hour, day, lifetime) of
     each entity, EXPIREAT on the bucket keys (a writer that only knows deltas)
  B  one HSET per dirty entity of its packed absolute bucket values (minute, hour, day,
     lifetime fields; a writer that owns the entity and knows its current values)
  R  PFADD of each entity's new users to its HyperLogLog
  S  SET of each dirty entity's HyperLogLog string, built by the writer (sized as a sparse
     sketch of its users so far, dense at 12,304 bytes)

Usage: bench/write_shapes.py [--events N] [--flush N] [--shards N] [--shapes ABRS]
Needs redis-server on PATH and the redis package (bench/requirements.txt).
"""
import argparse
import bisect
import itertools
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import zlib

import redis

ENGAGEMENT = ("like", "comment", "share", "click")
TYPES = ["impression"] * 6 + ["view"] * 2 + list(ENGAGEMENT)
PACKED = ("impression", "view", "like", "comment", "share", "click", "eng")

# Each envelope: KEYS[1] the shard's offsets hash; ARGV tp, next offset, n, then the writes.
FENCE = """
local off = redis.call('HGET', KEYS[1], ARGV[1])
if off and tonumber(off) >= tonumber(ARGV[2]) then return 0 end
local i, n = 4, tonumber(ARGV[3])
"""
STORE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return n
"""
ENVELOPES = {
    "A": FENCE + """
for k = 1, n do
  local key, nf, exp = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  i = i + 3
  for f = 1, nf do redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1]); i = i + 2 end
  if exp ~= '0' then redis.call('EXPIREAT', key, exp) end
end
""" + STORE,
    "B": FENCE + """
for k = 1, n do
  local key, nf = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  redis.call('HSET', key, unpack(ARGV, i, i + 2 * nf - 1))
  i = i + 2 * nf
  redis.call('EXPIRE', key, 7776000)
end
""" + STORE,
    "R": FENCE + """
for k = 1, n do
  local key, nu = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local j = i
  while j < i + nu do
    local e = math.min(j + 999, i + nu - 1)
    redis.call('PFADD', key, unpack(ARGV, j, e))
    j = e + 1
  end
  i = i + nu
end
""" + STORE,
}


def free_port():
    """A free port below the kernel's ephemeral range, so no client connect() can take it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(200):
        port = random.randrange(15000, max(15001, low - 1))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise SystemExit("write_shapes: no free port")


def stream(n, posts, accounts, users, zipf, seed):
    rnd = random.Random(seed)
    cum = list(itertools.accumulate(1 / (i + 1) ** zipf for i in range(posts)))
    minute = 29500000
    out = []
    for i in range(n):
        p = bisect.bisect_left(cum, rnd.random() * cum[-1])
        out.append((p, p % accounts, rnd.choice(TYPES), rnd.randrange(users), minute + i * 60 // n))
    return out


def run(r, shape, evs, flush, shards):
    r.flushall()
    r.slowlog_reset()
    sha = r.script_load(ENVELOPES[shape]) if shape in ENVELOPES else None
    cpu = lambda: sum(r.info("cpu")[k] for k in ("used_cpu_user_main_thread",
                                                  "used_cpu_sys_main_thread"))
    mem0, c0, calls = r.info("memory")["used_memory"], cpu(), 0
    state = {}
    for b in range(0, len(evs), flush):
        agg, users = {}, {}
        for p, a, t, u, m in evs[b:b + flush]:
            for ent in ("c:%d" % p, "a:%d" % a):
                d = agg.setdefault(ent, {})
                for bucket in ("m%d" % m, "h%d" % (m // 60), "d%d" % (m // 1440), "t"):
                    c = d.setdefault(bucket, {})
                    c[t] = c.get(t, 0) + 1
                    if t in ENGAGEMENT:
                        c["eng"] = c.get("eng", 0) + 1
                users.setdefault(ent, set()).add(u)
        groups = {}
        if shape == "A":
            for ent, d in agg.items():
                s = zlib.crc32(ent.encode()) % shards
                for bucket, c in d.items():
                    n = int(bucket[1:]) if bucket != "t" else 0
                    exp = {"m": (n + 91) * 60, "h": (n + 26) * 3600}.get(bucket[0], 0)
                    args = ["smm:{%d}:%s:%s" % (s, ent, bucket), str(len(c)), str(exp)]
                    for f, v in c.items():
                        args += [f, str(v)]
                    groups.setdefault(s, []).append(args)
        elif shape == "B":
            for ent, d in agg.items():
                s = zlib.crc32(ent.encode()) % shards
                st = state.setdefault(ent, {})
                fields = []
                for bucket, c in d.items():
                    cur = st.setdefault(bucket, {})
                    for f, v in c.items():
                        cur[f] = cur.get(f, 0) + v
                    fields += [bucket, ",".join(str(cur.get(x, 0)) for x in PACKED)]
                groups.setdefault(s, []).append(["smm:{%d}:%s" % (s, ent), str(len(fields) // 2)]
                                                + fields)
        elif shape == "R":
            for ent, us in users.items():
                s = zlib.crc32(ent.encode()) % shards
                groups.setdefault(s, []).append(["smm:{%d}:%s:r" % (s, ent), str(len(us))]
                                                + [str(u) for u in us])
        if shape == "S":
            for ent, us in users.items():
                s = zlib.crc32(ent.encode()) % shards
                seen = state.setdefault(ent, set())
                seen |= us
                groups.setdefault(s, []).append(("smm:{%d}:%s:r" % (s, ent),
                                                 b"x" * min(21 + 4 * len(seen), 12304)))
            for s, writes in groups.items():
                pipe = r.pipeline(transaction=False)
                for key, val in writes:
                    pipe.set(key, val)
                pipe.execute()
                calls += 1
            continue
        for s, writes in groups.items():
            args = ["p0", str(b + flush), str(len(writes))]
            for w in writes:
                args += w
            r.evalsha(sha, 1, "smm:{%d}:off" % s, *args)
            calls += 1
    us = (cpu() - c0) * 1e6 / len(evs)
    longest = max([e["duration"] for e in r.slowlog_get(1024)] or [0]) / 1000
    mem = (r.info("memory")["used_memory"] - mem0) / len(evs)
    print("shape %s: %.2f us Redis main-thread CPU per event, %d calls, longest call %.1f ms, "
          "%d keys, %.0f B per event" % (shape, us, calls, longest, r.dbsize(), mem), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300000)
    ap.add_argument("--flush", type=int, default=75000, help="events per flush")
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--posts", type=int, default=100000)
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--users", type=int, default=1000000)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--shapes", default="ABRS")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    evs = stream(a.events, a.posts, a.accounts, a.users, a.zipf, a.seed)
    tmp = tempfile.mkdtemp(prefix="smm-shapes.")
    port = free_port()
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", tmp,
                            "--slowlog-log-slower-than", "1000", "--slowlog-max-len", "1024"],
                           stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        print("%d events, %d posts (Zipf %.2f), %d accounts, flushes of %d, %d shards"
              % (a.events, a.posts, a.zipf, a.accounts, a.flush, a.shards))
        for shape in a.shapes:
            run(r, shape, evs, a.flush, a.shards)
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
