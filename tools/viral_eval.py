#!/usr/bin/env python3
"""tools/viral_eval.py - scores the viral detector's alerts against smm-gen's ground truth.

bench/viral_eval.sh runs the pipeline (smm-gen --scenario viral -> Kafka -> smm-processor ->
Redis) and then calls this to read `<prefix>alerts` and print the figures; the maths lives
here, apart from any process, so tests/tools/test_viral_eval.py checks it on a synthetic
truth/alerts pair. Python 3 standard library only (Redis is read with a small RESP client).

Definitions (the same in docs/viral.md, "Evaluation", and in the report):
- truth: one JSON object per post from `smm-gen --truth` (content_id, planted, style,
  crossing_ms = first event time at which the post's distinct viewers in the processor's 5m
  window reached the threshold, or null).
- positive: planted and crossing_ms is not null. Every other post of the truth is negative.
- flagged: at least one alert with kind "viral" and to "viral" for that content_id. Alerts
  for content that is not in the truth count as flagged negatives (false positives).
- precision = TP / flagged, recall = TP / positives (None when the denominator is 0).
- detection delay of a true positive = at_ms of its first to="viral" alert - crossing_ms
  (negative when it fired before the exact crossing, e.g. a HyperLogLog overestimate).
  Median = statistics.median; p90 = nearest rank (the ceil(0.9 n)-th smallest).
- early warning: the first alert with to "rising" for a positive, when its at_ms is before
  crossing_ms; lead time = crossing_ms - that at_ms.
- floors: precision >= 0.9, recall >= 0.9, median delay <= 2000 ms; an undefined figure
  fails its floor.
"""
import argparse
import json
import math
import socket
import statistics
import sys

FLOOR_PRECISION = 0.9
FLOOR_RECALL = 0.9
FLOOR_MEDIAN_DELAY_MS = 2000
PLANTED_STYLES = ("broadcast", "deep")


def load_truth(lines):
    """{content_id: record} from the JSON lines of smm-gen --truth (blank lines skipped)."""
    truth = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        for k in ("content_id", "planted", "style", "crossing_ms"):
            if k not in rec:
                raise ValueError("truth line %d: no %s" % (n, k))
        if rec["content_id"] in truth:
            raise ValueError("truth line %d: %s twice" % (n, rec["content_id"]))
        truth[rec["content_id"]] = rec
    return truth


def alerts_from_stream(entries):
    """Alert objects from XRANGE entries [(id, {field: value})]: each entry's `json` field.
    Entries without a parseable json field are returned separately as (id, reason)."""
    alerts, bad = [], []
    for entry_id, fields in entries:
        raw = fields.get("json")
        if raw is None:
            bad.append((entry_id, "no json field"))
            continue
        try:
            a = json.loads(raw)
        except ValueError as e:
            bad.append((entry_id, "json: %s" % e))
            continue
        if not isinstance(a, dict) or not isinstance(a.get("at_ms"), (int, float)):
            bad.append((entry_id, "no numeric at_ms"))
            continue
        alerts.append(a)
    return alerts, bad


def percentile_nearest_rank(values, q):
    """The ceil(q n)-th smallest value (q in (0, 1]); None for no values."""
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def _median(values):
    return statistics.median(values) if values else None


def evaluate(truth, alerts):
    """Scores alerts (alert objects, in stream order) against truth ({content_id: record}).
    Returns a dict of the figures and one row per interesting post."""
    first_viral, first_rising = {}, {}
    for a in alerts:
        if a.get("kind") != "viral":
            continue
        cid = a.get("content_id") or ""
        at = a["at_ms"]
        if a.get("to") == "viral" and (cid not in first_viral or at < first_viral[cid]):
            first_viral[cid] = at
        if a.get("to") == "rising" and (cid not in first_rising or at < first_rising[cid]):
            first_rising[cid] = at

    positives = {c for c, r in truth.items() if r["planted"] and r["crossing_ms"] is not None}
    flagged = set(first_viral)
    tp = positives & flagged
    fp = flagged - positives
    fn = positives - flagged
    unknown = sorted(c for c in flagged if c not in truth)

    delays = {c: first_viral[c] - truth[c]["crossing_ms"] for c in tp}
    early = {c: truth[c]["crossing_ms"] - first_rising[c] for c in positives
             if c in first_rising and first_rising[c] < truth[c]["crossing_ms"]}
    false_rising = sorted(c for c in first_rising if c not in positives)

    def ratio(num, den):
        return num / den if den else None

    res = {
        "posts": len(truth),
        "planted": sum(1 for r in truth.values() if r["planted"]),
        "planted_not_crossed": sorted(c for c, r in truth.items()
                                      if r["planted"] and r["crossing_ms"] is None),
        "positives": len(positives),
        "flagged": len(flagged),
        "tp": len(tp),
        "fp": len(fp),
        "fn": len(fn),
        "fp_ids": sorted(fp),
        "fn_ids": sorted(fn),
        "unknown_flagged": unknown,
        "precision": ratio(len(tp), len(flagged)),
        "recall": ratio(len(tp), len(positives)),
        "delays_ms": delays,
        "delay_median_ms": _median(list(delays.values())),
        "delay_p90_ms": percentile_nearest_rank(list(delays.values()), 0.9),
        "early": len(early),
        "early_lead_ms": early,
        "lead_median_ms": _median(list(early.values())),
        "false_rising": false_rising,
        "alerts": len(alerts),
    }
    by_style = {}
    for style in PLANTED_STYLES:
        pos = {c for c in positives if truth[c]["style"] == style}
        d = [delays[c] for c in pos if c in delays]
        by_style[style] = {
            "positives": len(pos),
            "tp": len(pos & tp),
            "recall": ratio(len(pos & tp), len(pos)),
            "delay_median_ms": _median(d),
            "early": sum(1 for c in pos if c in early),
            "lead_median_ms": _median([early[c] for c in pos if c in early]),
        }
    res["by_style"] = by_style

    rows = []
    start = min((r["first_ms"] for r in truth.values() if r.get("first_ms") is not None),
                default=None)
    interesting = {c for c, r in truth.items() if r["style"] != "organic"} | flagged | set(
        first_rising)
    for c in sorted(interesting, key=_natural_key):
        r = truth.get(c, {})
        rows.append({
            "content_id": c,
            "style": r.get("style", "(not in truth)"),
            "planted": bool(r.get("planted")),
            "peak_reach_5m": r.get("peak_reach_5m"),
            "crossing_s": (None if r.get("crossing_ms") is None or start is None
                           else (r["crossing_ms"] - start) / 1000.0),
            "viral_delay_ms": delays.get(c),
            "flagged": c in flagged,
            "rising_lead_ms": (r["crossing_ms"] - first_rising[c]
                               if c in first_rising and r.get("crossing_ms") is not None
                               else None),
            "rising": c in first_rising,
        })
    res["rows"] = rows
    return res


def _natural_key(cid):
    head = cid.rstrip("0123456789")
    tail = cid[len(head):]
    return (head, int(tail) if tail else -1, cid)


def floors(res):
    """[(name, value text, PASS|FAIL)] for the three floors."""
    def check(v, ok):
        return "PASS" if v is not None and ok(v) else "FAIL"

    return [
        ("precision >= %.1f" % FLOOR_PRECISION, _fmt_ratio(res["precision"]),
         check(res["precision"], lambda v: v >= FLOOR_PRECISION)),
        ("recall >= %.1f" % FLOOR_RECALL, _fmt_ratio(res["recall"]),
         check(res["recall"], lambda v: v >= FLOOR_RECALL)),
        ("median detection delay <= %d ms" % FLOOR_MEDIAN_DELAY_MS,
         _fmt_ms(res["delay_median_ms"]),
         check(res["delay_median_ms"], lambda v: v <= FLOOR_MEDIAN_DELAY_MS)),
    ]


def _fmt_ratio(v):
    return "n/a" if v is None else "%.3f" % v


def _fmt_ms(v):
    return "n/a" if v is None else "%.0f ms" % v


def _fmt_s(v):
    return "-" if v is None else "%.1f s" % (v / 1000.0)


def render_markdown(res, meta=(), title="Viral detection evaluation"):
    L = ["# %s" % title, ""]
    for k, v in meta:
        L.append("- **%s:** %s" % (k, v))
    if meta:
        L.append("")
    L.append("| Figure | Value | Floor |")
    L.append("|---|---|---|")
    fl = [ok for _, _, ok in floors(res)]  # precision, recall, median delay
    L.append("| precision of the viral flag (TP / flagged) | %s (%d / %d) | >= %.1f: **%s** |" % (
        _fmt_ratio(res["precision"]), res["tp"], res["flagged"], FLOOR_PRECISION, fl[0]))
    L.append("| recall (TP / planted cascades that crossed) | %s (%d / %d) | >= %.1f: **%s** |" % (
        _fmt_ratio(res["recall"]), res["tp"], res["positives"], FLOOR_RECALL, fl[1]))
    L.append("| median detection delay (viral alert at_ms - crossing_ms) | %s | <= %d ms: "
             "**%s** |" % (_fmt_ms(res["delay_median_ms"]), FLOOR_MEDIAN_DELAY_MS,
                           fl[2]))
    L.append("| p90 detection delay (nearest rank) | %s | |" % _fmt_ms(res["delay_p90_ms"]))
    L.append("| early warning (rising before crossing) | %d of %d planted | |" % (
        res["early"], res["positives"]))
    L.append("| median lead time of the early warning | %s | |" % _fmt_s(res["lead_median_ms"]))
    L.append("| rising alerts on content that is not a positive | %d | |" % len(
        res["false_rising"]))
    L.append("| alerts read | %d | |" % res["alerts"])
    L.append("")
    L.append("| Style | planted that crossed | flagged | median delay | early warnings | "
             "median lead |")
    L.append("|---|---|---|---|---|---|")
    for style, s in res["by_style"].items():
        L.append("| %s | %d | %d | %s | %d | %s |" % (
            style, s["positives"], s["tp"], _fmt_ms(s["delay_median_ms"]), s["early"],
            _fmt_s(s["lead_median_ms"])))
    L.append("")
    notes = []
    if res["planted_not_crossed"]:
        notes.append("planted but never crossed the threshold (not counted as positives): %s"
                     % ", ".join(res["planted_not_crossed"]))
    if res["fp_ids"]:
        notes.append("false positives: %s" % ", ".join(res["fp_ids"]))
    if res["unknown_flagged"]:
        notes.append("flagged content that is not in the truth: %s"
                     % ", ".join(res["unknown_flagged"]))
    if res["fn_ids"]:
        notes.append("missed: %s" % ", ".join(res["fn_ids"]))
    for n in notes:
        L.append("- %s" % n)
    if notes:
        L.append("")
    L.append("Per post (planted, near misses, and anything that got an alert):")
    L.append("")
    L.append("| content | style | peak 5m reach | crossing (s into run) | viral flag | delay | "
             "rising lead |")
    L.append("|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            r["content_id"], r["style"],
            "-" if r["peak_reach_5m"] is None else r["peak_reach_5m"],
            "-" if r["crossing_s"] is None else "%.1f" % r["crossing_s"],
            "yes" if r["flagged"] else "no",
            _fmt_ms(r["viral_delay_ms"]) if r["viral_delay_ms"] is not None else "-",
            ("-" if not r["rising"] else
             "%.1f s" % (r["rising_lead_ms"] / 1000.0) if r["rising_lead_ms"] is not None
             else "yes")))
    L.append("")
    L.append("Positive = planted and crossed (its distinct viewers in the 5 min window reached "
             "the threshold); flagged = an alert with to=\"viral\". Delays are wall-clock: "
             "event ts is the generator's clock when it wrote the event, at_ms the "
             "processor's when it alerted.")
    return "\n".join(L) + "\n"


# ---- a minimal RESP2 client: enough for AUTH and XRANGE ----

class RespError(Exception):
    pass


def _read_reply(f):
    line = f.readline()
    if not line:
        raise RespError("connection closed")
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RespError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RespError("unexpected reply type %r" % t)


def redis_command(f, sock, *args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    sock.sendall(b"".join(out))
    return _read_reply(f)


def read_alert_stream(host, port, key, password=None, batch=1000):
    """Every entry of stream `key` as [(id, {field: value})], oldest first."""
    with socket.create_connection((host, port), timeout=30) as sock:
        f = sock.makefile("rb")
        if password:
            redis_command(f, sock, "AUTH", password)
        entries, start = [], "-"
        while True:
            page = redis_command(f, sock, "XRANGE", key, start, "+", "COUNT", batch) or []
            for entry_id, flat in page:
                entries.append((entry_id, dict(zip(flat[0::2], flat[1::2]))))
            if len(page) < batch:
                return entries
            ms, seq = page[-1][0].split("-")
            start = "%s-%d" % (ms, int(seq) + 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Score viral alerts against smm-gen ground truth.")
    ap.add_argument("--truth", required=True, help="smm-gen --truth file (JSON lines)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--redis-port", type=int, help="read <prefix>alerts from this Redis")
    src.add_argument("--alerts-file",
                     help="alert JSON objects, one per line (instead of Redis)")
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--prefix", default="smm:")
    ap.add_argument("--out", help="also write the markdown here")
    ap.add_argument("--json-out", help="write the figures as JSON here")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                    help="a line for the report's header (repeatable)")
    ap.add_argument("--check", action="store_true", help="exit 3 when a floor fails")
    a = ap.parse_args(argv)

    with open(a.truth) as f:
        truth = load_truth(f)
    if a.alerts_file:
        with open(a.alerts_file) as f:
            alerts = [json.loads(l) for l in f if l.strip()]
        bad = []
    else:
        entries = read_alert_stream(a.redis_host, a.redis_port, a.prefix + "alerts")
        alerts, bad = alerts_from_stream(entries)
    res = evaluate(truth, alerts)
    meta = [tuple(m.split("=", 1)) if "=" in m else (m, "") for m in a.meta]
    if bad:
        meta.append(("Unreadable alert entries", "%d (first: %s %s)" % (len(bad), *bad[0])))
    text = render_markdown(res, meta)
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({k: v for k, v in res.items() if k != "rows"}, f, indent=1, sort_keys=True)
    if a.check and any(ok == "FAIL" for _, _, ok in floors(res)):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
