/* connectors/web/market.js - the dashboard's marketing view: one account in one window.
 *
 * DESIGN
 * - Reads only the JSON API (docs/api.md), never Redis layout: the account list from
 *   /api/v1/accounts, the KPI tiles from /api/v1/kpis, the charts from /api/v1/series, the
 *   insight panels from /api/v1/sets + /sov, /sources, /segments, /goals, /customers, the
 *   account's posts from /api/v1/viral and /api/v1/alerts, a post's view from
 *   /api/v1/content/<id> and /api/v1/alerts. Everything is refetched every 15 s and when
 *   the account or the window changes.
 * - A figure the API answers null (its buckets or reach sketches are no longer kept) is
 *   shown as "n/a" with the API's reason as tooltip: never a zero or a guess. Estimates
 *   (reach) carry "≈".
 * - The insight panels (share of voice, sources, regions, segments) are asked for the
 *   chosen window, 7 d included (the API sums it from the hour buckets, kept 8 days).
 * - The account: ?account= of the page URL, else the viral leaderboard's top account, else
 *   the first of /api/v1/accounts; changed with the picker or a click on an account in the
 *   viral leaderboard (document event smm:pick-account from app.js). The choice is
 *   announced as smm:account so app.js's response panel follows it.
 * - Charts are inline SVG drawn here (no library); each carries data-values (the API's
 *   numbers, comma-separated) for tests/browser/test_dashboard.py, as tiles carry
 *   data-value / data-previous / data-change and table cells data-key / data-value.
 * - CSV: every table.list gets a "CSV" button; the file is built in the page (Blob),
 *   RFC 4180 quoting, raw numbers (data-value) rather than formatted text.
 * - Data (ids, brand names, messages) is written with textContent, never as HTML. */
(function () {
  "use strict";

  var REFRESH_MS = 15000;
  var WINDOWS = ["5m", "1h", "24h", "7d"];
  var WINDOW_TEXT = { "5m": "last 5 min", "1h": "last hour", "24h": "last 24 h", "7d": "last 7 days" };
  /* chart step per window: per minute for the last hours, per hour / day for days */
  var CHART = { "5m": ["minute", 60], "1h": ["minute", 180], "24h": ["hour", 24], "7d": ["day", 14] };
  var KPIS = [
    ["impression", "Impressions", "int"], ["reach", "Reach", "int"],
    ["engagement", "Engagement", "int"], ["er_impr", "Eng. rate / impressions", "pct"],
    ["er_reach", "Eng. rate / reach", "pct"], ["share", "Shares", "int"], ["click", "Clicks", "int"]
  ];
  var CHARTS = [["impression", "Impressions"], ["engagement", "Engagement"],
                ["share", "Shares"], ["click", "Clicks"], ["er_impr", "Eng. rate / impressions (%)"]];
  var NS = "http://www.w3.org/2000/svg";

  var query = new URLSearchParams(window.location.search);
  var token = query.get("token") || "";
  var $ = function (id) { return document.getElementById(id); };
  var intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  var dec2 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var dec1 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  var money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var dtFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", hour12: false });
  var dayFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });

  var st = {
    account: query.get("account") || "",
    window: WINDOWS.indexOf(query.get("window")) >= 0 ? query.get("window") : "1h",
    accounts: [], sets: null, gen: 0, post: ""
  };

  /* ---- helpers ---- */

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function fmt(v, kind) {
    if (!isNum(v)) return "n/a";
    if (kind === "pct") return dec2.format(v) + " %";
    if (kind === "money") return money.format(v);
    if (kind === "dec") return dec2.format(v);
    return intFmt.format(v);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(n) { while (n.firstChild) n.removeChild(n.firstChild); return n; }

  /* A table cell holding a number: formatted text, raw data-value, data-key. */
  function numCell(key, v, kind, why) {
    var td = el("td", "num", fmt(v, kind));
    td.dataset.key = key;
    td.dataset.value = isNum(v) ? String(v) : "";
    if (!isNum(v)) { td.classList.add("na"); td.title = why || "no value: the denominator is 0"; }
    return td;
  }

  function textCell(key, v, cls) {
    var td = el("td", cls || "", v);
    td.dataset.key = key;
    td.dataset.value = v === undefined || v === null ? "" : String(v);
    return td;
  }

  function api(path) {
    var headers = { "Accept": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch(path, { headers: headers, cache: "no-store" }).then(function (r) {
      if (r.status !== 200) return { status: r.status, body: null };
      return r.json().then(function (b) { return { status: 200, body: b }; });
    });
  }

  function enc(s) { return encodeURIComponent(s); }

  /* The window the insight routes are asked for: the chosen one (7 d included). */
  function insightWindow() { return st.window; }

  function postButton(id) {
    var b = el("button", "post-link", id);
    b.type = "button";
    b.dataset.contentId = id;
    b.title = "open the post view of " + id;
    b.addEventListener("click", function () { openPost(id); });
    return b;
  }

  function badge(s) {
    var b = el("span", "badge", s || "normal");
    b.dataset.state = s || "normal";
    return b;
  }

  /* ---- CSV export (client side) ---- */

  function csvField(s) {
    s = String(s === undefined || s === null ? "" : s);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  /* The CSV text of a table: header row from thead, then one line per body row; a cell
   * gives its raw data-value when it has one, else its text. */
  function tableCsv(table) {
    if (typeof table === "string") table = $(table);
    var lines = [];
    var head = table.querySelectorAll("thead th");
    lines.push(Array.prototype.map.call(head, function (th) { return csvField(th.textContent.trim()); }).join(","));
    Array.prototype.forEach.call(table.querySelectorAll("tbody tr"), function (tr) {
      lines.push(Array.prototype.map.call(tr.children, function (td) {
        var v = td.dataset.value !== undefined && td.dataset.value !== "" ? td.dataset.value
                                                                          : td.textContent.trim();
        return csvField(v);
      }).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }

  function download(name, text) {
    var url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
    var a = el("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  function addCsvButton(table) {
    if (!table.id || table.dataset.csv) return;
    table.dataset.csv = "1";
    var b = el("button", "csv", "CSV");
    b.type = "button";
    b.dataset.csvFor = table.id;
    b.title = "download this table as CSV";
    b.addEventListener("click", function () {
      var name = [table.id, st.account, st.window].filter(Boolean).join("-")
        .replace(/[^A-Za-z0-9._-]+/g, "_") + ".csv";
      download(name, tableCsv(table));
    });
    table.parentNode.insertBefore(b, table);
  }

  function csvButtons() {
    Array.prototype.forEach.call(document.querySelectorAll("table.list"), addCsvButton);
  }

  /* ---- charts ---- */

  /* A line chart of values (oldest first, null = no figure) in a 300 x 120 viewBox with
   * the max and the two end times as labels. */
  function chart(fig, title, values, startMs, stepMs) {
    clear(fig);
    var cap = el("figcaption", "", title);
    fig.appendChild(cap);
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 300 120");
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    svg.dataset.values = values.map(function (v) { return isNum(v) ? String(v) : ""; }).join(",");
    svg.dataset.startMs = String(startMs);
    svg.dataset.stepMs = String(stepMs);
    var nums = values.filter(isNum);
    var max = nums.length ? Math.max.apply(null, nums) : 0;
    var top = max > 0 ? max : 1;
    var L = 34, R = 296, T = 8, B = 100;
    function x(i) { return L + (values.length > 1 ? i / (values.length - 1) : 0.5) * (R - L); }
    function y(v) { return B - (v / top) * (B - T); }
    var axis = document.createElementNS(NS, "path");
    axis.setAttribute("class", "axis");
    axis.setAttribute("d", "M" + L + "," + T + "V" + B + "H" + R);
    svg.appendChild(axis);
    function label(txt, lx, ly, anchor) {
      var t = document.createElementNS(NS, "text");
      t.setAttribute("x", lx); t.setAttribute("y", ly);
      t.setAttribute("text-anchor", anchor);
      t.textContent = txt;
      svg.appendChild(t);
    }
    label(intFmt.format(max), L - 3, T + 8, "end");
    label("0", L - 3, B, "end");
    var day = stepMs >= 86400000;
    var f = function (ms) { return day ? dayFmt.format(new Date(ms)) : dtFmt.format(new Date(ms)); };
    label(f(startMs), L, B + 14, "start");
    label(f(startMs + (values.length - 1) * stepMs), R, B + 14, "end");
    /* one polyline per run of known values */
    var run = [];
    function flush() {
      if (run.length === 1) {
        var c = document.createElementNS(NS, "circle");
        c.setAttribute("cx", run[0][0]); c.setAttribute("cy", run[0][1]); c.setAttribute("r", 1.8);
        c.setAttribute("class", "dot");
        svg.appendChild(c);
      } else if (run.length > 1) {
        var pl = document.createElementNS(NS, "polyline");
        pl.setAttribute("class", "line");
        pl.setAttribute("points", run.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" "));
        svg.appendChild(pl);
      }
      run = [];
    }
    values.forEach(function (v, i) { if (isNum(v)) run.push([x(i), y(v)]); else flush(); });
    flush();
    var sum = nums.reduce(function (a, b) { return a + b; }, 0);
    svg.setAttribute("aria-label", title + ": " + values.length + " points, max " +
      intFmt.format(max) + ", total " + intFmt.format(sum));
    fig.appendChild(svg);
  }

  /* ---- account picker and window ---- */

  function announce() {
    st.announced = true;
    var v = $("account-view");
    v.dataset.account = st.account;
    v.dataset.window = st.window;
    document.dispatchEvent(new CustomEvent("smm:account", { detail: st.account }));
  }

  function fillPicker() {
    var sel = $("account-select");
    var ids = st.accounts.map(function (a) { return a.account; });
    if (st.account && ids.indexOf(st.account) < 0) ids.unshift(st.account);
    var have = Array.prototype.map.call(sel.options, function (o) { return o.value; });
    if (have.join("\n") !== ids.join("\n")) {
      clear(sel);
      ids.forEach(function (id) {
        var o = el("option", "", id);
        o.value = id;
        sel.appendChild(o);
      });
    }
    sel.value = st.account;
  }

  function choose(account, win) {
    var changed = false;
    if (account && account !== st.account) { st.account = account; changed = true; }
    if (win && win !== st.window) { st.window = win; changed = true; }
    Array.prototype.forEach.call(document.querySelectorAll("#window-pick button"), function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.window === st.window));
    });
    fillPicker();
    if (changed) { announce(); refresh(); }
  }

  function loadAccounts() {
    return api("api/v1/accounts?limit=200").then(function (r) {
      if (r.status === 200 && r.body && Array.isArray(r.body.accounts)) st.accounts = r.body.accounts;
      if (st.account) return null;
      /* no ?account=: the viral leaderboard's top account, else the most engaged one */
      return api("api/v1/viral?by=velocity&limit=1").then(function (v) {
        var it = v.status === 200 && v.body && v.body.items && v.body.items[0];
        return (it && it.account) || (st.accounts[0] && st.accounts[0].account) || "";
      });
    }).then(function (pick) {
      if (pick) st.account = pick;
      if (!st.announced && st.account) { st.announced = true; announce(); }
      fillPicker();
    });
  }

  /* ---- KPI tiles ---- */

  function renderKpis(b) {
    var box = clear($("kpi-tiles"));
    var k = b.kpis || {};
    KPIS.forEach(function (def) {
      var t = k[def[0]] || {};
      var art = el("article", "tile");
      art.dataset.kpi = def[0];
      art.dataset.value = isNum(t.value) ? String(t.value) : "";
      art.dataset.previous = isNum(t.previous) ? String(t.previous) : "";
      art.dataset.change = isNum(t.change_pct) ? String(t.change_pct) : "";
      art.dataset.exact = String(!!t.exact);
      art.appendChild(el("h3", "", def[1]));
      var val = el("p", "big val", (isNum(t.value) && !t.exact ? "≈ " : "") + fmt(t.value, def[2]));
      if (!isNum(t.value)) { val.classList.add("na"); val.title = t.reason || "not available"; }
      else if (!t.exact) val.title = "an estimate (HyperLogLog, about 0.8 % error)";
      art.appendChild(val);
      var cmp = el("p", "cmp");
      if (isNum(t.change_pct)) {
        var ch = el("span", "chg " + (t.change_pct > 0 ? "up" : t.change_pct < 0 ? "down" : "flat"),
          (t.change_pct > 0 ? "▲ +" : t.change_pct < 0 ? "▼ " : "") + dec1.format(t.change_pct) + " %");
        cmp.appendChild(ch);
        cmp.appendChild(document.createTextNode(" vs " + fmt(t.previous, def[2])));
      } else if (isNum(t.previous)) {
        var pv = el("span", "", "previous " + fmt(t.previous, def[2]));
        pv.title = "no change in % from 0";
        cmp.appendChild(pv);
      } else {
        var na = el("span", "na", "previous n/a");
        na.title = t.previous_reason || "not available";
        cmp.appendChild(na);
      }
      art.appendChild(cmp);
      box.appendChild(art);
    });
    box.dataset.tsMs = String(Date.now());
    box.dataset.window = b.window || "";
    box.dataset.account = b.account || "";
    var span = (b.granularity === "day" ? "whole UTC days, " : "") +
      dtFmt.format(new Date(b.from_ms)) + " – " + dtFmt.format(new Date(b.to_ms)) +
      " vs the " + WINDOW_TEXT[st.window].replace("last ", "") + " before";
    $("kpi-span").textContent = span;
  }

  function renderCharts(b) {
    var box = clear($("charts"));
    var s = b.series || {};
    CHARTS.forEach(function (c) {
      var fig = el("figure", "fig");
      fig.dataset.metric = c[0];
      box.appendChild(fig);
      chart(fig, c[1], Array.isArray(s[c[0]]) ? s[c[0]] : [], b.start_ms, b.step_ms);
    });
    box.dataset.tsMs = String(Date.now());
    box.dataset.step = b.step;
    $("chart-range").textContent = "per " + b.step + ", last " + b.points + " " + b.step + "s";
  }

  /* ---- insight panels ---- */

  function winLabels(w) {
    var t = w === "total" ? "lifetime" : WINDOW_TEXT[w] || w;
    Array.prototype.forEach.call(document.querySelectorAll(".win-label"), function (s) { s.textContent = t; });
  }

  function renderSov(list) {
    var box = clear($("sov-sets"));
    list.forEach(function (item, i) {
      var set = item.set, b = item.body;
      var div = el("div", "sov-set");
      div.dataset.set = set;
      div.appendChild(el("h3", "sub", "set " + set));
      var bar = el("div", "stack");
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", "share of mentions in " + set);
      var tid = "sov-" + i;
      var table = el("table", "list");
      table.id = tid;
      table.dataset.set = set;
      var thead = el("thead"), hr = el("tr");
      ["brand", "mentions", "share of mentions", "share of reach", "share of engagement"].forEach(function (h, k) {
        var th = el("th", k ? "num" : "", h); th.scope = "col"; hr.appendChild(th);
      });
      thead.appendChild(hr);
      table.appendChild(thead);
      var tb = el("tbody");
      (b.brands || []).forEach(function (br, k) {
        var seg = el("span", "seg-" + (k % 8));
        seg.style.width = (isNum(br.share_mentions) ? br.share_mentions : 0) + "%";
        seg.title = br.brand + ": " + fmt(br.share_mentions, "pct") + " of mentions";
        seg.dataset.brand = br.brand;
        seg.dataset.value = String(br.share_mentions);
        if (br.brand === st.account) seg.classList.add("me");
        bar.appendChild(seg);
        var tr = el("tr");
        tr.dataset.brand = br.brand;
        if (br.brand === st.account) tr.dataset.selected = "true";
        var name = textCell("brand", br.brand, "id");
        var sw = el("span", "swatch seg-" + (k % 8));
        name.insertBefore(sw, name.firstChild);
        tr.appendChild(name);
        tr.appendChild(numCell("mentions", br.mentions, "int"));
        tr.appendChild(numCell("share_mentions", br.share_mentions, "pct"));
        tr.appendChild(numCell("share_reach", br.share_reach, "pct"));
        tr.appendChild(numCell("share_engagement", br.share_engagement, "pct"));
        tb.appendChild(tr);
      });
      table.appendChild(tb);
      div.appendChild(bar);
      div.appendChild(table);
      box.appendChild(div);
      addCsvButton(table);
    });
    box.dataset.count = String(list.length);
    $("sov-empty").hidden = list.length > 0;
  }

  function renderSources(b) {
    var tb = clear($("sources-list"));
    var tot = { clicks: 0, referrals: 0, conversions: 0, value: 0 };
    (b.sources || []).forEach(function (s) {
      var tr = el("tr");
      tr.dataset.source = s.source;
      tr.appendChild(textCell("source", s.source, "id"));
      tr.appendChild(numCell("impressions", s.impressions, "int"));
      tr.appendChild(numCell("clicks", s.clicks, "int"));
      tr.appendChild(numCell("ctr", s.ctr, "pct", "no impressions"));
      tr.appendChild(numCell("referrals", s.referrals, "int"));
      tr.appendChild(numCell("conversions", s.conversions, "int"));
      tr.appendChild(numCell("conversion_rate", s.conversion_rate, "pct", "no clicks"));
      tr.appendChild(numCell("value", s.value, "money"));
      tb.appendChild(tr);
      Object.keys(tot).forEach(function (k) { if (isNum(s[k])) tot[k] += s[k]; });
    });
    tb.dataset.count = String((b.sources || []).length);
    var f = clear($("funnel"));
    var top = Math.max(tot.clicks, tot.referrals, tot.conversions, 1);
    [["clicks", "clicks"], ["referrals", "referrals"], ["conversions", "conversions"]].forEach(function (s) {
      var row = el("div", "step");
      row.dataset.key = s[0];
      row.dataset.value = String(tot[s[0]]);
      row.appendChild(el("span", "lbl", s[1]));
      var bar = el("span", "fbar");
      var fill = el("span", "fill");
      fill.style.width = (tot[s[0]] / top * 100).toFixed(1) + "%";
      bar.appendChild(fill);
      row.appendChild(bar);
      row.appendChild(el("span", "num", intFmt.format(tot[s[0]])));
      f.appendChild(row);
    });
    var v = el("div", "step");
    v.dataset.key = "value";
    v.dataset.value = String(Math.round(tot.value * 100) / 100);
    v.appendChild(el("span", "lbl", "value"));
    v.appendChild(el("span", "fbar"));
    v.appendChild(el("span", "num", money.format(tot.value)));
    f.appendChild(v);
  }

  function renderSegments(id, b) {
    var tb = clear($(id + "-list"));
    (b.segments || []).forEach(function (s) {
      var tr = el("tr");
      tr.dataset.name = s.name;
      tr.appendChild(textCell("name", s.name, "id"));
      tr.appendChild(numCell("impression", s.impression, "int"));
      tr.appendChild(numCell("engagement", s.engagement, "int"));
      tr.appendChild(numCell("er_impr", s.er_impr, "pct", "no impressions"));
      tr.appendChild(numCell("reach", s.reach, "int"));
      tr.appendChild(numCell("conversion", s.conversion, "int"));
      tr.appendChild(numCell("value", s.value, "money"));
      tb.appendChild(tr);
    });
    tb.dataset.count = String((b.segments || []).length);
  }

  function renderGoals(b) {
    var tb = clear($("goals-list"));
    var today = Math.floor(Date.now() / 86400000);
    var goals = (b.goals || []).slice();
    /* the chosen account's goals first */
    goals.sort(function (x, y) { return (y.account === st.account) - (x.account === st.account); });
    goals.forEach(function (g) {
      var tr = el("tr");
      tr.dataset.goal = g.id;
      if (g.account === st.account) tr.dataset.selected = "true";
      tr.appendChild(textCell("id", g.id, "id"));
      if (!g.evaluated) {
        var td = el("td", "muted", "not evaluated yet");
        td.colSpan = 7;
        tr.appendChild(td);
        tb.appendChild(tr);
        return;
      }
      tr.appendChild(textCell("account", g.account, "id"));
      tr.appendChild(textCell("metric", g.metric + (g.kind === "increase" ? " (increase)" : "")));
      tr.appendChild(numCell("current", g.current, "int"));
      tr.appendChild(numCell("target", g.target, "int"));
      var pc = el("td", "progress");
      pc.dataset.key = "progress_pct";
      pc.dataset.value = isNum(g.progress_pct) ? String(g.progress_pct) : "";
      var bar = el("span", "pbar");
      var fill = el("span", "fill");
      fill.style.width = Math.max(0, Math.min(100, g.progress_pct || 0)) + "%";
      bar.appendChild(fill);
      if (isNum(g.expected) && isNum(g.target) && g.target > 0) {
        /* where the goal should be by now, on the scale of progress_pct (current / target) */
        var mark = el("span", "expected");
        mark.style.left = Math.max(0, Math.min(100, g.expected / g.target * 100)) + "%";
        mark.title = "expected by now: " + fmt(g.expected, "int");
        bar.appendChild(mark);
      }
      pc.appendChild(bar);
      pc.appendChild(el("span", "num", fmt(g.progress_pct, "pct")));
      tr.appendChild(pc);
      var left = g.end_day - today;
      var dl = textCell("end_day", dayFmt.format(new Date(g.end_day * 86400000)), "num");
      dl.dataset.value = String(g.end_day);
      dl.title = left >= 0 ? left + " days left" : "ended";
      tr.appendChild(dl);
      var status = g.reached ? "reached" : left < 0 ? "missed" : g.on_track ? "on track" : "behind";
      var sc = textCell("status", status);
      sc.dataset.status = status.replace(" ", "-");
      tr.appendChild(sc);
      tb.appendChild(tr);
    });
    tb.dataset.count = String(goals.length);
    $("goals-empty").hidden = goals.length > 0;
  }

  function renderCustomers(b) {
    var tb = clear($("customers-list"));
    var n = 0;
    [["direct", "own conversions"], ["indirect", "referred"]].forEach(function (k) {
      (b[k[0]] || []).forEach(function (c) {
        var tr = el("tr");
        tr.dataset.kind = k[0];
        tr.appendChild(textCell("user_id", c.user_id, "id"));
        tr.appendChild(textCell("credit", k[1]));
        tr.appendChild(numCell("value", c.value, "money"));
        tb.appendChild(tr);
        n++;
      });
    });
    tb.dataset.count = String(n);
    $("customers-empty").hidden = n > 0;
  }

  function renderPosts(viral, alerts) {
    var tb = clear($("posts-list"));
    var rows = new Map();
    viral.forEach(function (it) {
      if (it.account === st.account) rows.set(it.content_id, { state: it.state, spm: it.score, alerts: 0 });
    });
    alerts.forEach(function (a) {
      if (a.account_id !== st.account || !a.content_id) return;
      var r = rows.get(a.content_id) || { state: null, spm: null, alerts: 0 };
      r.alerts++;
      rows.set(a.content_id, r);
    });
    rows.forEach(function (r, id) {
      var tr = el("tr");
      tr.dataset.contentId = id;
      var td = el("td", "id");
      td.dataset.value = id;
      td.appendChild(postButton(id));
      tr.appendChild(td);
      var s = el("td");
      s.dataset.value = r.state || "";
      s.appendChild(r.state ? badge(r.state) : el("span", "muted", "–"));
      tr.appendChild(s);
      tr.appendChild(numCell("spm_5m", r.spm, "dec", "not among the posts spreading now"));
      tr.appendChild(numCell("alerts", r.alerts, "int"));
      tb.appendChild(tr);
    });
    tb.dataset.count = String(rows.size);
    $("posts-empty").hidden = rows.size > 0;
  }

  /* ---- refresh ---- */

  function refresh() {
    var acct = st.account, win = st.window, gen = ++st.gen;
    if (!acct) return Promise.resolve();
    var iw = insightWindow();
    var cur = function () { return gen === st.gen; };
    var a = enc(acct);
    var jobs = [];
    jobs.push(api("api/v1/kpis?account=" + a + "&window=" + win).then(function (r) {
      if (cur() && r.status === 200) renderKpis(r.body);
    }));
    jobs.push(api("api/v1/series?account=" + a + "&step=" + CHART[win][0] + "&points=" + CHART[win][1])
      .then(function (r) { if (cur() && r.status === 200) renderCharts(r.body); }));
    var sets = st.sets ? Promise.resolve(st.sets) : api("api/v1/sets").then(function (r) {
      st.sets = r.status === 200 && r.body && Array.isArray(r.body.sets) ? r.body.sets : [];
      return st.sets;
    });
    jobs.push(sets.then(function (list) {
      return Promise.all(list.map(function (s) {
        return api("api/v1/sov?set=" + enc(s.set) + "&window=" + iw).then(function (r) {
          return r.status === 200 ? { set: s.set, body: r.body } : null;
        });
      }));
    }).then(function (res) { if (cur()) renderSov(res.filter(Boolean)); }));
    jobs.push(api("api/v1/sources?account=" + a + "&window=" + iw).then(function (r) {
      if (cur() && r.status === 200) renderSources(r.body);
    }));
    ["region", "segment"].forEach(function (d) {
      jobs.push(api("api/v1/segments?account=" + a + "&dim=" + d + "&window=" + iw).then(function (r) {
        if (cur() && r.status === 200) renderSegments(d === "region" ? "regions" : "segments", r.body);
      }));
    });
    jobs.push(api("api/v1/goals").then(function (r) {
      if (cur() && r.status === 200) renderGoals(r.body);
    }));
    jobs.push(api("api/v1/customers?account=" + a + "&limit=10").then(function (r) {
      if (cur() && r.status === 200) renderCustomers(r.body);
    }));
    jobs.push(Promise.all([api("api/v1/viral?by=velocity&limit=1000"), api("api/v1/alerts?limit=1000")])
      .then(function (rs) {
        if (!cur()) return;
        renderPosts(rs[0].status === 200 ? rs[0].body.items || [] : [],
                    rs[1].status === 200 ? rs[1].body.items || [] : []);
      }));
    winLabels(iw);
    return Promise.all(jobs).then(function () {
      if (cur()) $("account-view").dataset.tsMs = String(Date.now());
    });
  }

  /* ---- post view ---- */

  function facts(dl, list) {
    clear(dl);
    list.forEach(function (f) {
      var dt = el("dt", "", f[0]);
      var dd = el("dd", "num", f[2] === "text" ? (f[1] || "–") : fmt(f[1], f[2]));
      dd.dataset.key = f[3];
      dd.dataset.value = f[1] === undefined || f[1] === null ? "" : String(f[1]);
      if (f[2] !== "text" && !isNum(f[1])) { dd.classList.add("na"); dd.title = f[4] || "not recorded for this post"; }
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
  }

  function renderPost(id, c, alerts) {
    var v = $("post-view");
    v.dataset.contentId = id;
    $("post-id").textContent = id;
    var vr = c.viral || {};
    var sb = clear($("post-state"));
    if (vr.state) sb.appendChild(badge(vr.state));
    $("post-owner").textContent = (vr.account ? "account " + vr.account : "account unknown (not tracked)") +
      (isNum(vr.state_since_ms) ? " · " + (vr.state || "normal") + " since " + dtFmt.format(new Date(vr.state_since_ms)) : "") +
      (isNum(vr.first_ms) ? " · first seen " + dtFmt.format(new Date(vr.first_ms)) : "");
    var tb = clear($("post-kpi-list"));
    var cols = [(c.windows || {})["5m"], (c.windows || {})["1h"], (c.windows || {})["24h"], c.lifetime];
    [["impression", "impressions", "int"], ["reach", "reach", "int"], ["engagement", "engagement", "int"],
     ["er_impr", "eng. rate / impressions", "pct"], ["er_reach", "eng. rate / reach", "pct"],
     ["share", "shares", "int"], ["click", "clicks", "int"]].forEach(function (m) {
      var tr = el("tr");
      tr.dataset.metric = m[0];
      tr.appendChild(el("td", "", m[1]));
      cols.forEach(function (o, i) {
        var val = o ? o[m[0]] : undefined;
        var why = "";
        if (!isNum(val)) {
          if ((m[0] === "reach" || m[0] === "er_reach") && i < 3) {
            why = "per-post unique reach is kept for the lifetime only (and reach_5m/1h below)";
          } else if (m[0].indexOf("er_") === 0) {
            why = "no impressions (or reach) yet";
          } else {
            val = 0; /* counters Redis does not hold are 0 (docs/api.md) */
          }
        }
        tr.appendChild(numCell(["5m", "1h", "24h", "lifetime"][i], val, m[2], why));
      });
      tb.appendChild(tr);
    });
    var s = c.series || {};
    var start = (Math.floor(Date.now() / 60000) - 29) * 60000;
    var box = clear($("post-charts"));
    [["engagement", "Engagement"], ["impression", "Impressions"]].forEach(function (m) {
      var fig = el("figure", "fig");
      fig.dataset.metric = m[0];
      box.appendChild(fig);
      chart(fig, m[1], s[m[0]] || [], start, 60000);
    });
    var untracked = "the viral tracker has no record of this post (no shares yet)";
    facts($("post-cascade"), [
      ["shares (size)", vr.size, "int", "size", untracked], ["depth", vr.depth, "int", "depth", untracked],
      ["breadth", vr.breadth, "int", "breadth", untracked],
      ["structural virality", vr.virality, "dec", "virality", untracked],
      ["sharers' followers", vr.exposure, "int", "exposure", untracked],
      ["predicted final size", vr.predicted_final, "int", "predicted_final",
       vr.supercritical ? "supercritical: predicted to keep growing" : untracked]]);
    facts($("post-reach"), [
      ["author's followers", vr.author_followers, "int", "author_followers", untracked],
      ["reach, 5 min", vr.reach_5m, "int", "reach_5m", untracked],
      ["beyond followers, 5 min", vr.nf_reach_5m, "int", "nf_reach_5m", untracked],
      ["share beyond, 5 min", vr.nf_share_5m, "pct", "nf_share_5m", untracked],
      ["reach, 1 h", vr.reach_1h, "int", "reach_1h", untracked],
      ["beyond followers, 1 h", vr.nf_reach_1h, "int", "nf_reach_1h", untracked],
      ["share beyond, 1 h", vr.nf_share_1h, "pct", "nf_share_1h", untracked]]);
    var ol = clear($("post-alerts"));
    var mine = alerts.filter(function (a) { return a.content_id === id; })
      .sort(function (x, y) { return (x.at_ms || 0) - (y.at_ms || 0); });
    mine.forEach(function (a) {
      var li = el("li");
      li.dataset.alertId = a.alert_id;
      if (isNum(a.at_ms)) li.appendChild(el("time", "when", dtFmt.format(new Date(a.at_ms))));
      if (a.from) { li.appendChild(badge(a.from)); li.appendChild(document.createTextNode(" → ")); }
      if (a.to) li.appendChild(badge(a.to));
      if (!a.to) li.appendChild(el("strong", "", (a.kind || "alert").replace(/_/g, " ")));
      var m = el("span", "reasons", a.message || (a.reasons || []).join("; "));
      if (a.reasons && a.message) m.title = a.reasons.join("; ");
      li.appendChild(m);
      ol.appendChild(li);
    });
    ol.dataset.count = String(mine.length);
    $("post-alerts-empty").hidden = mine.length > 0;
    v.dataset.tsMs = String(Date.now());
  }

  function openPost(id) {
    st.post = id;
    var v = $("post-view");
    v.hidden = false;
    v.dataset.contentId = id;
    v.dataset.status = "loading";
    $("post-id").textContent = id;
    return Promise.all([api("api/v1/content/" + enc(id)), api("api/v1/alerts?limit=1000")])
      .then(function (rs) {
        if (st.post !== id) return;
        v.dataset.status = String(rs[0].status);
        renderPost(id, rs[0].body || {}, rs[1].status === 200 ? rs[1].body.items || [] : []);
        $("post-close").focus();
      });
  }

  function closePost() {
    st.post = "";
    $("post-view").hidden = true;
  }

  /* ---- start ---- */

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("#window-pick button"), function (b) {
      b.addEventListener("click", function () { choose("", b.dataset.window); });
    });
    $("account-select").addEventListener("change", function (e) { choose(e.target.value, ""); });
    document.addEventListener("smm:pick-account", function (e) { choose(e.detail, ""); });
    document.addEventListener("smm:post", function (e) { openPost(e.detail); });
    $("post-close").addEventListener("click", closePost);
    $("post-view").addEventListener("click", function (e) { if (e.target === $("post-view")) closePost(); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") closePost(); });
    csvButtons();
    choose("", st.window);
    loadAccounts().then(refresh).catch(function () { /* app.js shows lost contact */ });
    setInterval(function () {
      if (document.hidden) return;
      loadAccounts().then(refresh).catch(function () {});
    }, REFRESH_MS);
    /* for tests and the console */
    window.smmDash = { csv: tableCsv, openPost: openPost, choose: choose, refresh: refresh };
  }

  start();
})();
