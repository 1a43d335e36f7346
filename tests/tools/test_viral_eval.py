#!/usr/bin/env python3
"""tests/tools/test_viral_eval.py - the evaluator's maths (tools/viral_eval.py) on a small
synthetic truth/alerts pair whose answers are worked out by hand below, plus its RESP reader
and command line. No services."""
import io
import json
import os
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import viral_eval as ve  # noqa: E402


def rec(cid, style, crossing, **kw):
    r = {"content_id": cid, "planted": style in ("broadcast", "deep"), "style": style,
         "crossing_ms": crossing, "first_ms": 1000, "peak_reach_5m": 0}
    r.update(kw)
    return r


TRUTH = [
    rec("post-1", "broadcast", 10000),
    rec("post-2", "deep", 20000),
    rec("post-3", "broadcast", 30000),
    rec("post-4", "deep", None),       # planted, never crossed: not a positive
    rec("post-5", "near_miss", None),
    rec("post-6", "organic", None),
    rec("post-7", "organic", None),
]


def alert(cid, frm, to, at, kind="viral"):
    return {"alert_id": "viral:%s:%d" % (cid, at), "kind": kind, "content_id": cid,
            "account_id": "acct-1", "from": frm, "to": to, "at_ms": at}


ALERTS = [
    alert("post-1", "normal", "rising", 7000),     # early, lead 3000
    alert("post-1", "rising", "viral", 10500),     # delay 500
    alert("post-2", "normal", "viral", 23000),     # delay 3000
    alert("post-2", "viral", "rising", 25000),     # after crossing: not an early warning
    alert("post-1", "viral", "cooling", 60000),
    alert("post-1", "cooling", "viral", 62000),    # a second viral alert: the first one counts
    alert("post-3", "normal", "rising", 28000),    # early, lead 2000; never flagged: FN
    alert("post-5", "normal", "rising", 39000),    # rising on a negative
    alert("post-5", "rising", "viral", 40000),     # FP
    alert("post-4", "normal", "viral", 50000),     # FP: planted but never crossed
    alert("post-99", "normal", "viral", 51000),    # FP, not in the truth
    alert("post-6", "normal", "viral", 52000, kind="sla_breach"),  # other kinds: ignored
]


class Maths(unittest.TestCase):
    def setUp(self):
        self.truth = ve.load_truth(json.dumps(r) for r in TRUTH)
        self.res = ve.evaluate(self.truth, ALERTS)

    def test_confusion(self):
        r = self.res
        self.assertEqual(r["positives"], 3)
        self.assertEqual(r["flagged"], 5)
        self.assertEqual((r["tp"], r["fp"], r["fn"]), (2, 3, 1))
        self.assertEqual(r["fp_ids"], ["post-4", "post-5", "post-99"])
        self.assertEqual(r["fn_ids"], ["post-3"])
        self.assertEqual(r["unknown_flagged"], ["post-99"])
        self.assertEqual(r["planted_not_crossed"], ["post-4"])
        self.assertAlmostEqual(r["precision"], 2 / 5)
        self.assertAlmostEqual(r["recall"], 2 / 3)

    def test_delays(self):
        r = self.res
        self.assertEqual(r["delays_ms"], {"post-1": 500, "post-2": 3000})
        self.assertEqual(r["delay_median_ms"], 1750)
        self.assertEqual(r["delay_p90_ms"], 3000)  # ceil(0.9 * 2) = 2nd smallest

    def test_early_warning(self):
        r = self.res
        self.assertEqual(r["early"], 2)
        self.assertEqual(r["early_lead_ms"], {"post-1": 3000, "post-3": 2000})
        self.assertEqual(r["lead_median_ms"], 2500)
        self.assertEqual(r["false_rising"], ["post-5"])

    def test_by_style(self):
        b = self.res["by_style"]
        self.assertEqual((b["broadcast"]["positives"], b["broadcast"]["tp"]), (2, 1))
        self.assertEqual(b["broadcast"]["delay_median_ms"], 500)
        self.assertEqual(b["broadcast"]["early"], 2)
        self.assertEqual((b["deep"]["positives"], b["deep"]["tp"]), (1, 1))
        self.assertEqual(b["deep"]["early"], 0)
        self.assertIsNone(b["deep"]["lead_median_ms"])

    def test_floors(self):
        self.assertEqual([ok for _, _, ok in ve.floors(self.res)], ["FAIL", "FAIL", "PASS"])

    def test_perfect_detector(self):
        alerts = [alert("post-1", "rising", "viral", 10100),
                  alert("post-2", "rising", "viral", 19900),  # before the crossing: -100
                  alert("post-3", "rising", "viral", 32000)]
        r = ve.evaluate(self.truth, alerts)
        self.assertEqual((r["precision"], r["recall"]), (1.0, 1.0))
        self.assertEqual(r["delays_ms"]["post-2"], -100)
        self.assertEqual(r["delay_median_ms"], 100)
        self.assertEqual([ok for _, _, ok in ve.floors(r)], ["PASS", "PASS", "PASS"])

    def test_nothing_flagged(self):
        r = ve.evaluate(self.truth, [])
        self.assertIsNone(r["precision"])
        self.assertEqual(r["recall"], 0.0)
        self.assertIsNone(r["delay_median_ms"])
        self.assertEqual([ok for _, _, ok in ve.floors(r)], ["FAIL", "FAIL", "FAIL"])
        self.assertIn("n/a", ve.render_markdown(r))

    def test_percentile(self):
        self.assertEqual(ve.percentile_nearest_rank(list(range(1, 11)), 0.9), 9)
        self.assertEqual(ve.percentile_nearest_rank(list(range(1, 12)), 0.9), 10)
        self.assertEqual(ve.percentile_nearest_rank([5], 0.9), 5)
        self.assertIsNone(ve.percentile_nearest_rank([], 0.9))

    def test_truth_errors(self):
        with self.assertRaises(ValueError):
            ve.load_truth([json.dumps(TRUTH[0]), json.dumps(TRUTH[0])])
        with self.assertRaises(ValueError):
            ve.load_truth(['{"content_id":"post-1"}'])

    def test_markdown(self):
        md = ve.render_markdown(self.res, [("Threshold", "1000")])
        self.assertIn("| precision of the viral flag (TP / flagged) | 0.400 (2 / 5) |", md)
        self.assertIn("| median detection delay (viral alert at_ms - crossing_ms) | 1750 ms |",
                      md)
        self.assertIn("| early warning (rising before crossing) | 2 of 3 planted | |", md)
        self.assertIn("| post-3 | broadcast | 0 | 29.0 | no | - | 2.0 s |", md)
        self.assertIn("- **Threshold:** 1000", md)


class StreamReading(unittest.TestCase):
    def test_alerts_from_stream(self):
        entries = [("1-0", {"alert_id": "a", "json": json.dumps(ALERTS[0])}),
                   ("1-1", {"alert_id": "b"}),
                   ("1-2", {"json": "{not json"}),
                   ("1-3", {"json": '{"kind":"viral"}'})]
        alerts, bad = ve.alerts_from_stream(entries)
        self.assertEqual(alerts, [ALERTS[0]])
        self.assertEqual([b[0] for b in bad], ["1-1", "1-2", "1-3"])

    def test_resp_reader(self):
        reply = (b"*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$4\r\njson\r\n$2\r\n{}\r\n$4\r\nkind\r\n"
                 b"$-1\r\n*2\r\n$3\r\n2-0\r\n*0\r\n")
        got = ve._read_reply(io.BytesIO(reply))
        self.assertEqual(got, [["1-0", ["json", "{}", "kind", None]], ["2-0", []]])
        with self.assertRaises(ve.RespError):
            ve._read_reply(io.BytesIO(b"-ERR no\r\n"))

    def test_xrange_paging(self):
        """read_alert_stream pages with COUNT and an exclusive start, against a fake server
        holding 5 entries, read 2 at a time."""
        entries = [("%d-0" % i, ["json", json.dumps(alert("post-1", "normal", "viral", i))])
                   for i in range(1, 6)]
        seen = []
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)

        def serve():
            conn, _ = srv.accept()
            f = conn.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    break
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2].decode())
                seen.append(args)
                start, count = args[2], int(args[5])
                lo = 0 if start == "-" else int(start.split("-")[0]) + (start.split("-")[1] != "0")
                page = [e for e in entries if int(e[0].split("-")[0]) >= lo][:count]
                out = [b"*%d\r\n" % len(page)]
                for eid, flat in page:
                    out.append(b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(eid), eid.encode(), len(flat)))
                    for v in flat:
                        out.append(b"$%d\r\n%s\r\n" % (len(v.encode()), v.encode()))
                conn.sendall(b"".join(out))
            conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        got = ve.read_alert_stream("127.0.0.1", srv.getsockname()[1], "smm:alerts", batch=2)
        t.join(5)
        srv.close()
        self.assertEqual([e[0] for e in got], ["1-0", "2-0", "3-0", "4-0", "5-0"])
        self.assertEqual([a[2] for a in seen], ["-", "2-1", "4-1"])
        self.assertEqual(seen[0][:2], ["XRANGE", "smm:alerts"])


class CommandLine(unittest.TestCase):
    def test_files_and_check(self):
        with tempfile.TemporaryDirectory() as d:
            tp, ap, out = (os.path.join(d, n) for n in ("truth", "alerts", "out.md"))
            with open(tp, "w") as f:
                f.write("".join(json.dumps(r) + "\n" for r in TRUTH))
            with open(ap, "w") as f:
                f.write("".join(json.dumps(a) + "\n" for a in ALERTS))
            sys.stdout, saved = io.StringIO(), sys.stdout
            try:
                rc_plain = ve.main(["--truth", tp, "--alerts-file", ap, "--out", out])
                rc_check = ve.main(["--truth", tp, "--alerts-file", ap, "--check"])
            finally:
                sys.stdout = saved
            self.assertEqual((rc_plain, rc_check), (0, 3))
            with open(out) as f:
                self.assertIn("**FAIL**", f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
