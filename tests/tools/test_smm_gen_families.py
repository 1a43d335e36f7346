#!/usr/bin/env python3
"""tests/tools/test_smm_gen_families.py - `smm-gen --families` (care conversations, competitor
mentions, referral chains, sourced funnels, region/segment breakdowns) checked from the JSON
lines it writes, and the promise that without --families the stream is the one earlier
versions wrote, byte for byte (tests and bench/results.md were computed from it).

Everything is recomputed here from the events alone: threads grouped by thread_id, the message
a reply answers (the latest earlier message of its thread), referral chains walked through
referrer_id per account. ctest passes the binary in SMMT_SMM_GEN (or give it as the first
argument).
"""
import collections
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import unittest

GEN = os.environ.get("SMMT_SMM_GEN") or (sys.argv.pop(1) if len(sys.argv) > 1 else "")
START_MS = 1767225600000  # 2026-01-01T00:00:00Z
DAY_MS = 86400000

# sha256 of the default stream (no --families) as written before the families existed.
# The maths is IEEE double with glibc's libm; checked on x86_64 only, where it was recorded.
GOLDEN = {
    ("--seed", "7", "--count", "3000"):
        "e5b3639359c67eafe837769ba981d5f5a2ab7d451cf24f091852b2dfb66ac141",
    ("--seed", "9", "--count", "3000", "--malformed-rate", "0.2", "--ts-format", "mixed",
     "--disorder-ms", "3000"):
        "bb2c75324e14615bfa8a8e4a20b3c0f4d8cef5876e69a2c4cffb410349586939",
}

COMPETITORS = ["acct-%d" % i for i in range(1, 8)]
SOURCES = {"newsletter", "instagram", "tiktok", "partner-x"}
CMP = re.compile(r"^cmp-\d+$")
REGIONS = {"eu-west", "eu-central", "eu-north", "na-east", "na-west", "apac", "latam", "mea"}
SEGMENTS = {"13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"}
HOSTILE = re.compile(r"^[rs](-[0-9a-f]{10}|:[0-9a-f]{10}\|a=b c)$")
VALUE = re.compile(rb'"value":\d+\.\d\d[,}]')


def run_gen(args):
    p = subprocess.run([GEN, "--stdout", "--quiet"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300, check=False)
    if p.returncode != 0:
        raise AssertionError("smm-gen %s failed (%d): %s" % (args, p.returncode,
                                                            p.stderr.decode()))
    return p.stdout


def well_formed(line):
    """The event when the line is one the processor would count, else None."""
    try:
        e = json.loads(line)
    except ValueError:
        return None
    if not isinstance(e, dict) or not isinstance(e.get("ts"), int):
        return None
    for k in ("event_id", "type", "account_id", "user_id"):
        v = e.get(k)
        if not isinstance(v, str) or len(v) > 128 or any(ord(c) < 32 for c in v):
            return None
    if e["type"] == "teleport" or len(line) > 65536:
        return None
    return e


def source_ok(s):
    return s in SOURCES or CMP.match(s) is not None


class Families(unittest.TestCase):
    SEED = 11
    ARGS = ["--seed", "11", "--count", "150000", "--start-ms", str(START_MS), "--span-ms",
            str(DAY_MS), "--accounts", "40", "--users", "20000", "--families", "all"]

    @classmethod
    def setUpClass(cls):
        cls.out = run_gen(cls.ARGS)
        cls.lines = cls.out.splitlines()
        cls.events = [json.loads(l) for l in cls.lines]
        cls.by_type = collections.defaultdict(list)
        for n, e in enumerate(cls.events):
            cls.by_type[e["type"]].append((n, e))

    def test_ids_and_mix(self):
        """Ids are "<seed>-<n>" in stream order; impressions dominate; every family's type is
        there."""
        for n, e in enumerate(self.events):
            self.assertEqual(e["event_id"], "%d-%d" % (self.SEED, n))
            self.assertTrue(e["account_id"].startswith("acct-"))
            self.assertTrue(e["user_id"].startswith("u-"))
            self.assertIsInstance(e["ts"], int)
            self.assertGreaterEqual(e["ts"], START_MS)
        total = len(self.events)
        share = {t: len(v) / total for t, v in self.by_type.items()}
        self.assertEqual(max(share, key=share.get), "impression")
        self.assertGreater(share["impression"], 0.4)
        for t in ("message", "reply", "mention", "referral", "click", "conversion"):
            self.assertGreater(share.get(t, 0), 0.005, t)
        # care events stay a small share: ~2.5 %
        self.assertLess(share["message"] + share["reply"], 0.04)

    def test_care(self):
        """Threads: one brand and one customer each; replies 5 s..12 h after the message that
        opened the wait (median near --reply-median-s); some unanswered; some with a second
        message; ~5 % of replies written before their message, which follows within
        seconds."""
        threads = collections.defaultdict(list)
        for t in ("message", "reply"):
            for n, e in self.by_type[t]:
                self.assertRegex(e["thread_id"], r"^t-%d-\d+$" % self.SEED)
                self.assertNotIn("content_id", e)
                threads[e["thread_id"]].append((n, e))
        last_ts = self.events[-1]["ts"]
        answered = two = replies = early = 0
        delays = []
        for tid, evs in threads.items():
            self.assertEqual(len({e["account_id"] for _, e in evs}), 1, tid)
            self.assertEqual(len({e["user_id"] for _, e in evs}), 1, tid)
            msgs = [(n, e) for n, e in evs if e["type"] == "message"]
            reps = [(n, e) for n, e in evs if e["type"] == "reply"]
            self.assertLessEqual(len(msgs), 2, tid)
            self.assertLessEqual(len(reps), 2, tid)
            two += len(msgs) == 2
            answered += bool(reps)
            # In time order, as the processor matches them: a message opens a wait unless
            # one is open, a reply closes the open wait (its message: the one that opened it).
            opened = None
            for n, e in sorted(evs, key=lambda x: (x[1]["ts"], x[1]["type"] == "reply")):
                if e["type"] == "message":
                    opened = opened or (n, e)
                    continue
                if opened is None:
                    # its message was held back behind it and the stream ended first
                    self.assertGreater(e["ts"], last_ts - 60000, tid)
                    continue
                m, msg = opened
                opened = None
                d = e["ts"] - msg["ts"]
                self.assertGreaterEqual(d, 5000, tid)
                self.assertLessEqual(d, 12 * 3600 * 1000, tid)
                delays.append(d)
                replies += 1
                if n < m:
                    early += 1
                    self.assertLess(m - n, 20000, "held message too far behind its reply")
        self.assertGreater(len(threads), 1000)
        self.assertGreater(replies, 1000)
        self.assertTrue(0.80 <= answered / len(threads) <= 0.92, answered / len(threads))
        self.assertTrue(0.10 <= two / len(threads) <= 0.20, two / len(threads))
        self.assertTrue(0.03 <= early / replies <= 0.075, "%d of %d replies early" %
                        (early, replies))
        delays.sort()
        median_s = delays[len(delays) // 2] / 1000
        self.assertTrue(600 <= median_s <= 2000, median_s)  # --reply-median-s 1200
        self.assertLess(delays[len(delays) // 20], 300 * 1000, "no replies within minutes")
        self.assertGreater(delays[-1], 3 * 3600 * 1000, "no replies after hours")

    def test_care_order(self):
        """Only held-back messages arrive out of time order; everything else is in order."""
        high = 0
        for e in self.events:
            if e["ts"] < high:
                self.assertEqual(e["type"], "message", e["event_id"])
            high = max(high, e["ts"])

    def test_mentions(self):
        """Mentions name the competitor brands (skewed, acct-1 first) that --print-config
        lists, with heavy-tailed followers and integer engagement."""
        ments = [e for _, e in self.by_type["mention"]]
        for e in ments:
            self.assertNotIn("content_id", e)
            self.assertIsInstance(e["followers"], int)
            self.assertGreaterEqual(e["followers"], 0)
            self.assertIsInstance(e["engagement"], int)
            self.assertGreaterEqual(e["engagement"], 0)
        brands = collections.Counter(e["account_id"] for e in ments)
        comp = sum(brands[b] for b in COMPETITORS)
        self.assertTrue(0.85 <= comp / len(ments) <= 0.95, comp / len(ments))
        self.assertEqual(brands.most_common(1)[0][0], "acct-1")
        self.assertGreater(brands["acct-1"], brands["acct-5"])
        followers = sorted(e["followers"] for e in ments)
        self.assertGreater(followers[-1], 100 * followers[len(followers) // 2], "no heavy tail")
        self.assertTrue(any(e["engagement"] > 0 for e in ments))
        self.assertTrue(any(e["engagement"] == 0 for e in ments))
        # the printed settings cover exactly the competitor brands
        cfg = subprocess.run([GEN, "--print-config"], stdout=subprocess.PIPE, check=True,
                             timeout=30).stdout.decode().splitlines()
        self.assertEqual(cfg, ["sov.set.cat-1=acct-1,acct-2,acct-3,acct-4,acct-5",
                               "sov.set.cat-2=acct-5,acct-6,acct-7"])
        in_sets = set()
        for line in cfg:
            in_sets.update(line.split("=", 1)[1].split(","))
        self.assertEqual(in_sets, set(COMPETITORS))

    def test_referrals(self):
        """Referrals: a new visitor, usually a referrer (never themself), known sources plus
        one-off campaign ids, and chains A->B->C within an account."""
        refs = [e for _, e in self.by_type["referral"]]
        referred_by = {}
        cmp = 0
        for e in refs:
            self.assertTrue(source_ok(e["source"]), e["source"])
            cmp += CMP.match(e["source"]) is not None
            if "referrer_id" in e:
                self.assertTrue(e["referrer_id"].startswith("u-"))
                self.assertNotEqual(e["referrer_id"], e["user_id"])
                referred_by[(e["account_id"], e["user_id"])] = e["referrer_id"]
        with_ref = sum("referrer_id" in e for e in refs) / len(refs)
        self.assertTrue(0.85 <= with_ref <= 0.97, with_ref)
        self.assertTrue(0.02 <= cmp / len(refs) <= 0.09, cmp / len(refs))
        self.assertEqual(len({e["source"] for e in refs} & SOURCES), 4)

        def depth(acct, user):
            d = 0
            while (acct, user) in referred_by and d < 100:
                user = referred_by[(acct, user)]
                d += 1
            return d

        depths = collections.Counter(depth(a, u) for a, u in referred_by)
        self.assertGreater(sum(c for d, c in depths.items() if d >= 3), 20, depths)

    def test_funnel(self):
        """Clicks and impressions carry sources (the CTR differs by source); conversions have
        a user, a 2-decimal value, a source on some, and come from clickers and referred
        visitors."""
        clicks = [e for _, e in self.by_type["click"]]
        imps = [e for _, e in self.by_type["impression"]]
        convs = [e for _, e in self.by_type["conversion"]]
        for e in clicks + imps:
            self.assertIn("content_id", e)
            if "source" in e:
                self.assertTrue(source_ok(e["source"]), e["source"])
        self.assertTrue(0.8 <= sum("source" in e for e in clicks) / len(clicks) <= 0.9)
        self.assertTrue(0.45 <= sum("source" in e for e in imps) / len(imps) <= 0.55)
        ctr = {}
        for s in SOURCES:
            c = sum(e.get("source") == s for e in clicks)
            i = sum(e.get("source") == s for e in imps)
            ctr[s] = c / i
        self.assertGreater(max(ctr.values()), 1.5 * min(ctr.values()), ctr)

        for n, e in self.by_type["conversion"]:
            self.assertRegex(self.lines[n], VALUE)
            self.assertTrue(5.0 <= e["value"] <= 200.0, e["value"])
            if "source" in e:
                self.assertTrue(source_ok(e["source"]), e["source"])
        with_src = sum("source" in e for e in convs) / len(convs)
        self.assertTrue(0.2 <= with_src <= 0.8, with_src)
        clickers = {(e["account_id"], e["user_id"]) for e in clicks}
        visitors = {(e["account_id"], e["user_id"]) for _, e in self.by_type["referral"]}
        by_visitor = sum((e["account_id"], e["user_id"]) in visitors for e in convs)
        by_clicker = sum((e["account_id"], e["user_id"]) in clickers for e in convs)
        self.assertGreater(by_visitor / len(convs), 0.2)
        self.assertGreater(by_clicker / len(convs), 0.2)

    def test_segments(self):
        """region/segment on a share of events, per user, from 8 regions and 7 age bands, and
        1 % random one-off values."""
        total = len(self.events)
        region = collections.Counter(e.get("region") for e in self.events)
        segment = collections.Counter(e.get("segment") for e in self.events)
        for vals, known, share in ((region, REGIONS, 0.80), (segment, SEGMENTS, 0.65)):
            hostile = 0
            for v, c in vals.items():
                if v is None or v in known:
                    continue
                self.assertRegex(v, HOSTILE)
                hostile += c
            self.assertEqual(len(set(vals) & known), len(known))
            present = (total - vals[None]) / total
            self.assertTrue(share - 0.03 <= present <= share + 0.03, present)
            self.assertTrue(0.005 <= hostile / total <= 0.015, hostile / total)
            self.assertGreater(len(vals), len(known) + 500)  # one-off values: high cardinality
        # a user's known region never changes
        seen = {}
        for e in self.events:
            if e.get("region") in REGIONS:
                self.assertEqual(seen.setdefault(e["user_id"], e["region"]), e["region"])

    def test_deterministic(self):
        """The same seed and flags give the same bytes; another seed does not."""
        self.assertEqual(run_gen(self.ARGS), self.out)
        other = list(self.ARGS)
        other[1] = "12"
        self.assertNotEqual(run_gen(other), self.out)


class FamiliesEdges(unittest.TestCase):
    def test_malformed_never_orphans(self):
        """With malformed input and disorder, every well-formed reply answers a well-formed
        message of its thread written (in time) before it."""
        out = run_gen(["--seed", "5", "--count", "60000", "--start-ms", str(START_MS),
                       "--span-ms", str(3600000), "--families", "all", "--reply-median-s",
                       "60", "--malformed-rate", "0.05", "--disorder-ms", "2000"])
        lines = out.splitlines()
        good = [e for e in (well_formed(l) for l in lines) if e is not None]
        self.assertGreater(len(lines) - len(good), 1000)
        msgs = collections.defaultdict(list)
        for e in good:
            if e["type"] == "message":
                msgs[e["thread_id"]].append(e["ts"])
        last_ts = max(e["ts"] for e in good)
        replies = [e for e in good if e["type"] == "reply"]
        self.assertGreater(len(replies), 300)
        for r in replies:
            if not any(t < r["ts"] for t in msgs[r["thread_id"]]):
                self.assertGreater(r["ts"], last_ts - 60000, r)

    def test_only_named_families(self):
        """--families care changes care events only: no referrer_id, engagement, new regions
        or sources appear; the mix's regions stay."""
        out = run_gen(["--seed", "3", "--count", "20000", "--start-ms", str(START_MS),
                       "--span-ms", str(DAY_MS), "--families", "care"])
        events = [json.loads(l) for l in out.splitlines()]
        types = collections.Counter(e["type"] for e in events)
        self.assertGreater(types["reply"], 50)
        for e in events:
            self.assertNotIn("referrer_id", e)
            self.assertNotIn("engagement", e)
            if "region" in e:
                self.assertIn(e["region"], {"eu", "na", "apac", "latam", "mea"})
            if "source" in e:
                self.assertNotIn(e["source"], {"tiktok", "partner-x"})

    def test_default_unchanged(self):
        """No --families (or --families none): the stream earlier versions wrote."""
        args = ["--seed", "7", "--count", "3000", "--start-ms", str(START_MS)]
        base = run_gen(args)
        self.assertEqual(run_gen(args + ["--families", "none"]), base)
        for line in base.splitlines():
            e = json.loads(line)
            self.assertNotIn("referrer_id", e)
            self.assertNotIn("engagement", e)
            if "thread_id" in e:
                self.assertRegex(e["thread_id"], r"^t-\d+$")
        if platform.machine() != "x86_64":
            self.skipTest("golden hashes recorded on x86_64")
        for extra, want in GOLDEN.items():
            got = hashlib.sha256(run_gen(["--start-ms", str(START_MS)] + list(extra)))
            self.assertEqual(got.hexdigest(), want, " ".join(extra))

    def test_usage_errors(self):
        for args in (["--families", "bogus"], ["--reply-median-s", "30"],
                     ["--scenario", "viral", "--families", "all"],
                     ["--families", "care", "--mix", "reply=1"]):
            p = subprocess.run([GEN, "--stdout"] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30, check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertTrue(p.stderr.startswith(b"smm-gen: "), args)


if __name__ == "__main__":
    if not GEN or not os.access(GEN, os.X_OK):
        sys.exit("test_smm_gen_families.py: set SMMT_SMM_GEN to the smm-gen binary")
    unittest.main(verbosity=2)
