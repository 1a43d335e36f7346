#!/usr/bin/env python3
"""tests/tools/test_smm_gen_viral.py - `smm-gen --scenario viral` against an independent
recomputation of its ground truth from the JSON lines it wrote.

The recomputation shares no code with the generator: it replays the events in order and, at
every content event (seen or acted on: impression, view, like, unlike, comment,
comment_delete, share, click: everyone reached), counts the post's distinct user_ids whose
latest such minute lies in (m - 5, m], m = ts // 60000 (the processor's "5m" window), straight from a dict. It also
checks the event contract of the scenario (author_followers everywhere, followers and
parent_id on shares) and the shape every style promises. ctest passes the binary in
SMMT_SMM_GEN (or give it as the first argument).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

GEN = os.environ.get("SMMT_SMM_GEN") or (sys.argv.pop(1) if len(sys.argv) > 1 else "")
START_MS = 1767225600000  # 2026-01-01T00:00:00Z
CONTENT_TYPES = {"impression", "view", "like", "comment", "click", "share"}
# The types whose user_id counts as reached (written here, not taken from the generator).
REACH_TYPES = {"impression", "view", "like", "unlike", "comment", "comment_delete", "share",
               "click"}


def run_gen(args, truth_path):
    p = subprocess.run([GEN, "--scenario", "viral", "--stdout", "--quiet", "--truth",
                        truth_path] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300, check=False)
    if p.returncode != 0:
        raise AssertionError("smm-gen failed (%d): %s" % (p.returncode, p.stderr.decode()))
    return p.stdout


def recompute(events, threshold):
    """{content_id: figures} computed from the events alone."""
    posts = {}
    latest = {}  # (content, user) -> latest view minute
    share_depth = {}  # event_id -> depth
    for e in events:
        c = e["content_id"]
        p = posts.setdefault(c, {"events": 0, "first_ms": e["ts"], "last_ms": e["ts"],
                                 "viewers": set(), "peak": 0, "crossing": None, "shares": 0,
                                 "max_depth": 0, "account": e["account_id"]})
        p["events"] += 1
        p["last_ms"] = e["ts"]
        if e["type"] in REACH_TYPES:
            m = e["ts"] // 60000
            latest[(c, e["user_id"])] = m
            p["viewers"].add(e["user_id"])
            in_window = sum(1 for u in p["viewers"] if latest[(c, u)] > m - 5)
            p["peak"] = max(p["peak"], in_window)
            if p["crossing"] is None and in_window >= threshold:
                p["crossing"] = e["ts"]
        if e["type"] == "share":
            d = 1 + share_depth[e["parent_id"]] if "parent_id" in e else 1
            share_depth[e["event_id"]] = d
            p["shares"] += 1
            p["max_depth"] = max(p["max_depth"], d)
    return posts


class ViralScenario(unittest.TestCase):
    def generate(self, args, threshold):
        with tempfile.TemporaryDirectory() as d:
            tpath = os.path.join(d, "truth.jsonl")
            out = run_gen(args + ["--viral-threshold", str(threshold)], tpath)
            with open(tpath) as f:
                truth = [json.loads(l) for l in f]
        events = [json.loads(l) for l in out.decode().splitlines()]
        return out, events, truth

    def check_contract(self, events, seed):
        ids = set()
        followers_of = {}
        share_of = {}
        prev_ts = 0
        for n, e in enumerate(events):
            self.assertEqual(e["event_id"], "%d-%d" % (seed, n))
            self.assertIn(e["type"], CONTENT_TYPES)
            self.assertTrue(e["account_id"].startswith("acct-"))
            self.assertTrue(e["content_id"].startswith("post-"))
            self.assertTrue(e["user_id"].startswith("u-"))
            self.assertIsInstance(e["ts"], int)
            self.assertGreaterEqual(e["ts"], prev_ts, "ts must not go back")
            prev_ts = e["ts"]
            # author_followers on every content event, one value per account
            self.assertIsInstance(e["author_followers"], int)
            self.assertGreaterEqual(e["author_followers"], 0)
            self.assertEqual(followers_of.setdefault(e["account_id"], e["author_followers"]),
                             e["author_followers"])
            if e["type"] in ("impression", "view"):
                self.assertIsInstance(e["follows_author"], bool)
            else:
                self.assertNotIn("follows_author", e)
            if e["type"] == "share":
                self.assertIsInstance(e["followers"], int)
                if "parent_id" in e:
                    # an earlier share of the same post
                    self.assertEqual(share_of.get(e["parent_id"]), e["content_id"])
                share_of[e["event_id"]] = e["content_id"]
            else:
                self.assertNotIn("parent_id", e)
                self.assertNotIn("followers", e)
            ids.add(e["event_id"])
        self.assertEqual(len(ids), len(events))
        return followers_of

    def check_truth(self, events, truth, threshold):
        got = recompute(events, threshold)
        by_id = {t["content_id"]: t for t in truth}
        self.assertEqual(set(got), {c for c, t in by_id.items() if t["events"] > 0})
        for c, t in by_id.items():
            self.assertEqual(t["threshold"], threshold)
            self.assertEqual(t["planted"], t["style"] in ("broadcast", "deep"), c)
            if t["events"] == 0:
                self.assertIsNone(t["crossing_ms"], c)
                continue
            g = got[c]
            self.assertEqual(t["crossing_ms"], g["crossing"], c)
            self.assertEqual(t["peak_reach_5m"], g["peak"], c)
            self.assertEqual(t["reach"], len(g["viewers"]), c)
            self.assertEqual(t["events"], g["events"], c)
            self.assertEqual(t["shares"], g["shares"], c)
            self.assertEqual(t["max_depth"], g["max_depth"], c)
            self.assertEqual(t["first_ms"], g["first_ms"], c)
            self.assertEqual(t["last_ms"], g["last_ms"], c)
            self.assertEqual(t["account_id"], g["account"], c)
        return by_id

    def test_default_shape(self):
        """Default timing, a threshold of 200: styles keep their promises, truth is exact,
        the output repeats byte for byte."""
        thr = 200
        args = ["--seed", "7", "--start-ms", str(START_MS), "--posts", "120", "--cascades", "6",
                "--near-misses", "6"]
        out, events, truth = self.generate(args, thr)
        self.check_contract(events, 7)
        by_id = self.check_truth(events, truth, thr)
        styles = [t["style"] for t in truth]
        self.assertEqual(styles.count("broadcast"), 3)
        self.assertEqual(styles.count("deep"), 3)
        self.assertEqual(styles.count("near_miss"), 6)
        self.assertEqual(styles.count("organic"), 120)
        for c, t in by_id.items():
            if t["planted"]:
                self.assertIsNotNone(t["crossing_ms"], c)
                self.assertGreaterEqual(t["peak_reach_5m"], 1.5 * thr, c)
            else:
                self.assertIsNone(t["crossing_ms"], c)
            if t["style"] == "deep":
                self.assertGreaterEqual(t["max_depth"], 6, c)
            if t["style"] == "broadcast":
                self.assertLessEqual(t["max_depth"], 4, c)
                self.assertGreater(t["hub_followers"], 20 * thr, c)
            if t["style"] == "near_miss":
                self.assertGreaterEqual(t["peak_reach_5m"], 0.6 * thr, c)
                self.assertLessEqual(t["peak_reach_5m"], 0.9 * thr, c)
            if t["style"] == "organic":
                self.assertLessEqual(t["peak_reach_5m"], 0.45 * thr, c)
        # near misses and shares without a parent exist; re-shares too
        shares = [e for e in events if e["type"] == "share"]
        self.assertTrue(any("parent_id" in e for e in shares))
        self.assertTrue(any("parent_id" not in e for e in shares))
        self.assertTrue(any(e.get("follows_author") is False for e in events))
        # the duration holds: every event within --duration-s (180 s default)
        self.assertLess(events[-1]["ts"] - START_MS, 180000)
        again, _, _ = self.generate(args, thr)
        self.assertEqual(out, again)

    def test_sliding_window(self):
        """Cascades spread over 15-20 min, so views leave the 5 min window before others
        arrive: the truth must follow the window, not the lifetime reach."""
        thr = 60
        args = ["--seed", "3", "--start-ms", str(START_MS + 12345), "--posts", "40",
                "--cascades", "4", "--near-misses", "3", "--duration-s", "1500",
                "--cascade-s", "1200"]
        _, events, truth = self.generate(args, thr)
        self.check_contract(events, 3)
        self.check_truth(events, truth, thr)
        self.assertTrue(any(t["peak_reach_5m"] < t["reach"] for t in truth),
                        "no post outlived the window; the test would not test it")

    def test_real_time(self):
        """Without --start-ms the scenario runs on the wall clock: ts is when it was written."""
        thr = 40
        t0 = int(time.time() * 1000)
        _, events, truth = self.generate(
            ["--seed", "11", "--posts", "20", "--cascades", "2", "--near-misses", "2",
             "--duration-s", "3", "--cascade-s", "2"], thr)
        t1 = int(time.time() * 1000)
        self.check_contract(events, 11)
        self.check_truth(events, truth, thr)
        self.assertGreaterEqual(events[0]["ts"], t0)
        self.assertLessEqual(events[-1]["ts"], t1)
        self.assertGreater(events[-1]["ts"] - events[0]["ts"], 1000, "not spread in time")


if __name__ == "__main__":
    if not GEN or not os.access(GEN, os.X_OK):
        sys.exit("test_smm_gen_viral.py: set SMMT_SMM_GEN to the smm-gen binary")
    unittest.main(verbosity=2)
