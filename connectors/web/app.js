/* connectors/web/app.js - the dashboard's only script: no framework, no external requests.
 *
 * DESIGN
 * - Live numbers come from the server-sent events of /events (`summary` once a second,
 *   `alert` per new alert). When that stream is down (or the server does not offer it)
 *   the page polls /api/v1/summary every 2 s instead, so it never shows stale numbers
 *   for long. The lists (top content, viral leaderboard, response times) are fetched
 *   every 5 s; the alert feed is loaded once and then merged by alert_id, from the stream
 *   and from a slower refetch that covers gaps in the stream.
 * - Response times are per account: the one chosen in the account view (market.js: the
 *   ?account= of the page URL, the picker, or a click on an account in the viral
 *   leaderboard; it announces it with the document event smm:account), else the account
 *   at the top of the viral leaderboard; over the account view's window (the same event
 *   follows a change of window), lifetime without one.
 * - Content ids (top content, viral leaderboard, alerts) are buttons that send the
 *   document event smm:post: market.js opens that post's view.
 *   The panel shows while /api/v1/response answers 200 for it (hidden without an account,
 *   or on a server without the route). A business-hours row with no reply in business
 *   hours (n 0) says so in words rather than showing empty figures.
 * - Alerts show their `message` (the sentence for people); the machine `reasons` are its
 *   tooltip.
 * - Auth: a bearer token given as ?token= in the page URL is sent as an Authorization
 *   header on every fetch(); EventSource cannot send headers, so /events gets ?token=.
 * - Everything that comes from data (ids, reasons) is written with textContent, never as
 *   HTML: content ids are user input of the event stream.
 * - Test hooks: key numbers carry stable ids and data-value (the raw number; the text is
 *   formatted for the locale); lists carry data-count and data-ts-ms (when they were
 *   fetched); rows carry data-content-id / data-value / data-state; the response panel
 *   carries data-account / data-window / data-status (the account and window asked for,
 *   the HTTP status). Read by
 *   tests/browser/test_dashboard.py.
 * - Sparklines are inline SVG polylines drawn here (a few lines; no chart library). */
(function () {
  "use strict";

  var HISTORY = 120;          /* summary points kept for the throughput/lag history (1/s) */
  var LIST_MS = 5000;         /* top, viral refresh */
  var ALERTS_MS = 15000;      /* alert feed refetch (the stream delivers them live) */
  var POLL_MS = 2000;         /* summary polling while the stream is not open... */
  var STALE_MS = 3500;        /* ...or silent for this long */
  var SERIES_TTL_MS = 15000;  /* per-content series cache (minute buckets) */
  var ALERTS_MAX = 100;

  var query = new URLSearchParams(window.location.search);
  var token = query.get("token") || "";
  var $ = function (id) { return document.getElementById(id); };
  var intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  var oneFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  var timeFmt = new Intl.DateTimeFormat(undefined,
    { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

  var state = {
    rate: [], lag: [], lastTs: 0, lastSummaryAt: 0, updates: 0,
    es: null, esRetry: null,
    series: new Map(),       /* content_id -> {at, values} */
    account: query.get("account") || "", /* chosen for the response panel ("" = none) */
    topAccount: "",          /* account of the viral leaderboard's first row */
    alerts: new Map()        /* alert_id -> at_ms */
  };

  /* ---- helpers ---- */

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function fmtRate(v) { return v < 100 ? oneFmt.format(v) : intFmt.format(v); }

  function fmtPct(v) { return oneFmt.format(v) + " %"; }

  /* A duration in ms in the largest unit that keeps it >= 1 (a percentile is good to 2 %). */
  function fmtMs(v) {
    if (v < 1000) return intFmt.format(v) + " ms";
    if (v < 60000) return oneFmt.format(v / 1000) + " s";
    if (v < 3600000) return oneFmt.format(v / 60000) + " min";
    if (v < 86400000) return oneFmt.format(v / 3600000) + " h";
    return oneFmt.format(v / 86400000) + " d";
  }

  /* Writes a number as text (formatted) and as data-value (raw). */
  function setNum(id, v, fmt) {
    var el = $(id);
    if (!isNum(v)) { el.textContent = "–"; el.dataset.value = ""; return; }
    el.textContent = (fmt || intFmt.format)(v);
    el.dataset.value = String(v);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  /* A content id as a button opening its post view (connectors/web/market.js listens). */
  function postCell(id, tag) {
    var td = el(tag || "td", "id");
    var b = el("button", "post-link", id);
    b.type = "button";
    b.dataset.contentId = id;
    b.title = "open the post view of " + id;
    b.addEventListener("click", function () {
      document.dispatchEvent(new CustomEvent("smm:post", { detail: id }));
    });
    td.appendChild(b);
    return td;
  }

  function showError(msg) {
    var e = $("error");
    if (msg) { e.textContent = msg; e.hidden = false; } else { e.hidden = true; e.textContent = ""; }
  }

  function setPill(id, st, text) {
    var p = $(id);
    p.dataset.state = st;
    p.textContent = text;
  }

  /* GET a JSON route; resolves to {status, body}. body is null unless 200. */
  function api(path) {
    var headers = { "Accept": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch(path, { headers: headers, cache: "no-store" }).then(function (r) {
      if (r.status === 401) {
        showError(token ? "The server refused the token (401). Check ?token= in the address " +
                          "(write a + of the token as %2B)."
                        : "This server needs a token: open the page as /?token=<http.token>.");
      }
      if (r.status !== 200) return { status: r.status, body: null };
      showError(null);
      return r.json().then(function (b) { return { status: 200, body: b }; });
    });
  }

  /* ---- sparklines ---- */

  /* Draws values (oldest first) into svg as a line over a filled area, scaled to the
   * viewBox. The y axis starts at 0 so a flat line near the top means "steady and high". */
  function spark(svg, values, label) {
    var vb = svg.viewBox.baseVal, w = vb.width, h = vb.height;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var vals = values.filter(isNum);
    if (vals.length < 2) {
      svg.setAttribute("aria-label", label + ": not enough data yet");
      return;
    }
    var max = Math.max.apply(null, vals), min = Math.min(0, Math.min.apply(null, vals));
    var span = max - min || 1, pad = 1.5;
    var pts = vals.map(function (v, i) {
      var x = (i / (vals.length - 1)) * w;
      var y = pad + (h - 2 * pad) * (1 - (v - min) / span);
      return x.toFixed(2) + "," + y.toFixed(2);
    });
    var ns = "http://www.w3.org/2000/svg";
    var area = document.createElementNS(ns, "polygon");
    area.setAttribute("class", "area");
    area.setAttribute("points", "0," + h + " " + pts.join(" ") + " " + w + "," + h);
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(area);
    svg.appendChild(line);
    svg.setAttribute("aria-label", label + ": " + vals.length + " points, min " +
      intFmt.format(Math.min.apply(null, vals)) + ", max " + intFmt.format(max) +
      ", last " + intFmt.format(vals[vals.length - 1]));
  }

  function rangeText(vals, fmt) {
    var v = vals.filter(isNum);
    if (!v.length) return "last 2 min";
    var secs = v.length;
    return "last " + (secs >= 120 ? "2 min" : secs + " s") + " · min " +
      fmt(Math.min.apply(null, v)) + " · max " + fmt(Math.max.apply(null, v));
  }

  /* ---- summary ---- */

  function applySummary(s) {
    if (!s || typeof s !== "object") return;
    state.lastSummaryAt = Date.now();
    state.updates++;
    setNum("events-per-sec", s.events_per_sec, fmtRate);
    setNum("lag", s.lag);
    setNum("consumed", s.consumed);
    setNum("counted", s.counted);
    setNum("dead-lettered", s.dead_lettered);
    setNum("flush-ms", s.flush_ms_avg, oneFmt.format);
    setNum("partitions", s.partitions);
    if (s.redis) setPill("redis", s.redis === "up" ? "up" : "down", "Redis " + s.redis);
    if (typeof s.ready === "boolean") {
      setPill("ready", s.ready ? "yes" : "no", s.ready ? "ready" : "not ready");
    }
    var ts = isNum(s.ts_ms) ? s.ts_ms : Date.now();
    var u = $("updated");
    u.dataset.tsMs = String(ts);
    u.dateTime = new Date(ts).toISOString();
    u.textContent = timeFmt.format(new Date(ts));
    document.body.dataset.updates = String(state.updates);
    document.body.dataset.state = "ok";
    /* One history point per distinct server timestamp (polling may repeat one). */
    if (ts !== state.lastTs) {
      state.lastTs = ts;
      state.rate.push(isNum(s.events_per_sec) ? s.events_per_sec : NaN);
      state.lag.push(isNum(s.lag) ? s.lag : NaN);
      if (state.rate.length > HISTORY) state.rate.shift();
      if (state.lag.length > HISTORY) state.lag.shift();
      spark($("rate-spark"), state.rate, "throughput history");
      spark($("lag-spark"), state.lag, "lag history");
      $("rate-range").textContent = rangeText(state.rate, fmtRate);
      $("lag-range").textContent = rangeText(state.lag, intFmt.format);
    }
  }

  function pollSummary() {
    if (document.hidden) return;
    var open = state.es && state.es.readyState === EventSource.OPEN;
    if (open && Date.now() - state.lastSummaryAt < STALE_MS) return;
    api("api/v1/summary").then(function (r) {
      if (r.status === 200) {
        applySummary(r.body);
        if (!state.es || state.es.readyState !== EventSource.OPEN) {
          setPill("conn", "polling", "polling");
        }
      }
    }).catch(function (e) { lostContact(e); });
  }

  function lostContact(e) {
    setPill("conn", "error", "offline");
    document.body.dataset.state = "error";
    showError("Lost contact with the server (" + (e && e.message ? e.message : e) + "); retrying.");
  }

  /* ---- the event stream ---- */

  function connectEvents() {
    if (!window.EventSource) return;
    var url = "events" + (token ? "?token=" + encodeURIComponent(token) : "");
    var es = new EventSource(url);
    state.es = es;
    es.addEventListener("open", function () { setPill("conn", "live", "live"); });
    es.addEventListener("summary", function (ev) {
      try { applySummary(JSON.parse(ev.data)); } catch (err) { return; }
      setPill("conn", "live", "live");
      showError(null);
    });
    es.addEventListener("alert", function (ev) {
      try { addAlert(JSON.parse(ev.data), true); } catch (err) { /* ignore a bad event */ }
    });
    es.addEventListener("error", function () {
      /* The browser reconnects by itself unless the server answered with an error status
       * (CLOSED); then try again later, and let polling keep the numbers fresh. */
      if (es.readyState === EventSource.CLOSED) {
        setPill("conn", "polling", "polling");
        if (!state.esRetry) {
          state.esRetry = setTimeout(function () { state.esRetry = null; connectEvents(); }, 15000);
        }
      }
    });
  }

  /* ---- top content ---- */

  function contentSeries(id) {
    var c = state.series.get(id);
    if (c && Date.now() - c.at < SERIES_TTL_MS) return Promise.resolve(c.values);
    return api("api/v1/content/" + encodeURIComponent(id)).then(function (r) {
      var vals = r.body && r.body.series && Array.isArray(r.body.series.engagement)
        ? r.body.series.engagement : [];
      state.series.set(id, { at: Date.now(), values: vals });
      return vals;
    });
  }

  function renderTop(items) {
    var tb = $("top-list");
    var rows = document.createDocumentFragment();
    var seen = new Set();
    items.forEach(function (it, i) {
      var tr = el("tr");
      tr.dataset.contentId = it.content_id;
      tr.dataset.value = String(it.value);
      tr.appendChild(el("td", "num", i + 1));
      tr.appendChild(postCell(it.content_id));
      tr.appendChild(el("td", "num", isNum(it.value) ? intFmt.format(it.value) : "–"));
      var td = el("td");
      var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("class", "spark small");
      svg.setAttribute("viewBox", "0 0 100 20");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "engagement per minute of " + it.content_id);
      td.appendChild(svg);
      tr.appendChild(td);
      rows.appendChild(tr);
      seen.add(it.content_id);
      var cached = state.series.get(it.content_id);
      if (cached) spark(svg, cached.values, "engagement per minute, last 30 min");
      contentSeries(it.content_id).then(function (vals) {
        spark(svg, vals, "engagement per minute, last 30 min");
      }).catch(function () { /* keep the cached line */ });
    });
    while (tb.firstChild) tb.removeChild(tb.firstChild);
    tb.appendChild(rows);
    tb.dataset.count = String(items.length);
    tb.dataset.tsMs = String(Date.now());
    $("top-empty").hidden = items.length > 0;
    state.series.forEach(function (_, id) { if (!seen.has(id)) state.series.delete(id); });
  }

  function refreshTop() {
    return api("api/v1/top?window=5m&limit=10").then(function (r) {
      if (r.status === 200 && r.body && Array.isArray(r.body.items)) renderTop(r.body.items);
    });
  }

  /* ---- viral leaderboard ---- */

  function badge(st) {
    var b = el("span", "badge", st || "normal");
    b.dataset.state = st || "normal";
    return b;
  }

  /* The account cell of a viral row: a button choosing the response panel's account. */
  function accountCell(account) {
    var td = el("td", "id");
    if (!account) { td.textContent = "–"; return td; }
    var b = el("button", "acct", account);
    b.type = "button";
    b.title = "show the account view and response times of " + account;
    b.addEventListener("click", function () {
      /* market.js selects it in the account view and sends smm:account back */
      document.dispatchEvent(new CustomEvent("smm:pick-account", { detail: account }));
    });
    td.appendChild(b);
    return td;
  }

  function markSelected() {
    var cur = state.account || state.topAccount;
    Array.prototype.forEach.call($("viral-list").children, function (tr) {
      tr.dataset.selected = String(!!cur && tr.dataset.account === cur);
    });
  }

  function refreshViral() {
    return api("api/v1/viral?by=velocity&limit=10").then(function (r) {
      if (r.status !== 200 || !r.body || !Array.isArray(r.body.items)) return;
      var tb = $("viral-list");
      var rows = document.createDocumentFragment();
      state.topAccount = "";
      r.body.items.forEach(function (it, i) {
        var tr = el("tr");
        tr.dataset.contentId = it.content_id;
        tr.dataset.value = String(it.score);
        tr.dataset.state = it.state || "normal";
        if (it.account) {
          tr.dataset.account = it.account;
          if (!state.topAccount) state.topAccount = it.account;
        }
        tr.appendChild(el("td", "num", i + 1));
        tr.appendChild(postCell(it.content_id));
        tr.appendChild(accountCell(it.account));
        tr.appendChild(el("td", "num", isNum(it.score) ? oneFmt.format(it.score) : "–"));
        var td = el("td");
        td.appendChild(badge(it.state));
        tr.appendChild(td);
        rows.appendChild(tr);
      });
      while (tb.firstChild) tb.removeChild(tb.firstChild);
      tb.appendChild(rows);
      tb.dataset.count = String(r.body.items.length);
      tb.dataset.tsMs = String(Date.now());
      $("viral-empty").hidden = r.body.items.length > 0;
      markSelected();
    });
  }

  /* ---- alerts ---- */

  function alertItem(a, fresh) {
    var li = el("li", fresh ? "new" : "");
    li.dataset.alertId = a.alert_id;
    li.dataset.kind = a.kind || "";
    li.dataset.atMs = String(isNum(a.at_ms) ? a.at_ms : 0);
    if (isNum(a.at_ms)) {
      var t = el("time", "when", timeFmt.format(new Date(a.at_ms)));
      t.dateTime = new Date(a.at_ms).toISOString();
      li.appendChild(t);
    }
    if (a.kind === "viral" && a.to) {
      if (a.from) { li.appendChild(badge(a.from)); li.appendChild(document.createTextNode(" → ")); }
      li.appendChild(badge(a.to));
      li.appendChild(document.createTextNode(" "));
    } else {
      li.appendChild(el("strong", "", (a.kind || "alert").replace(/_/g, " ")));
      li.appendChild(document.createTextNode(" "));
    }
    if (a.content_id) li.appendChild(postCell(a.content_id, "span"));
    if (a.account_id) li.appendChild(el("span", "muted", (a.content_id ? " · " : "") + a.account_id));
    /* The sentence for people when the alert has one; the machine reasons stay as the
       tooltip (older alerts without a message show the reasons). */
    var why = Array.isArray(a.reasons) && a.reasons.length ? a.reasons.join("; ") : "";
    if (typeof a.message === "string" && a.message) {
      var m = el("span", "reasons", a.message);
      if (why) m.title = why;
      li.appendChild(m);
    } else if (why) {
      li.appendChild(el("span", "reasons", why));
    }
    return li;
  }

  /* Inserts one alert in at_ms order (newest first) unless it is already shown. */
  function addAlert(a, fresh) {
    if (!a || typeof a.alert_id !== "string" || state.alerts.has(a.alert_id)) return;
    var at = isNum(a.at_ms) ? a.at_ms : Date.now();
    state.alerts.set(a.alert_id, at);
    var feed = $("alert-feed");
    var li = alertItem(a, fresh);
    var before = null;
    for (var n = feed.firstElementChild; n; n = n.nextElementSibling) {
      if (Number(n.dataset.atMs) < at) { before = n; break; }
    }
    feed.insertBefore(li, before);
    while (feed.children.length > ALERTS_MAX) {
      var last = feed.lastElementChild;
      state.alerts.delete(last.dataset.alertId);
      feed.removeChild(last);
    }
    feed.dataset.count = String(feed.children.length);
    $("alerts-empty").hidden = feed.children.length > 0;
  }

  function refreshAlerts(initial) {
    return api("api/v1/alerts?limit=50").then(function (r) {
      if (r.status !== 200 || !r.body || !Array.isArray(r.body.items)) return;
      r.body.items.forEach(function (a) { addAlert(a, !initial); });
      $("alert-feed").dataset.tsMs = String(Date.now());
    });
  }

  /* ---- response times of one account (shown while /api/v1/response answers 200) ---- */

  function renderResponse(account, b) {
    $("response-account").textContent = account;
    setNum("response-rate", b.response_rate, fmtPct);
    setNum("response-answered", b.answered);
    setNum("response-threads", b.threads);
    setNum("open-threads", b.open_threads);
    var tb = $("response-list");
    while (tb.firstChild) tb.removeChild(tb.firstChild);
    var measured = 0, rows = 0;
    [["all", "all hours"], ["business", "business hours"]].forEach(function (h) {
      var f = b.frt && b.frt[h[0]];
      if (!f || typeof f !== "object") return;
      var tr = el("tr");
      tr.dataset.hours = h[0];
      tr.dataset.n = String(isNum(f.n) ? f.n : 0);
      tr.appendChild(el("td", "", h[1]));
      if (h[0] === "business" && f.n === 0) {
        /* Replies that all came outside opening hours have no business-hours time: say
           so, rather than a count of 0 and empty figures that read like "0 ms". */
        var none = el("td", "muted", "no replies in business hours");
        none.colSpan = 3;
        none.dataset.key = "none";
        tr.appendChild(none);
        tb.appendChild(tr);
        rows++;
        return;
      }
      tr.appendChild(el("td", "num", isNum(f.n) ? intFmt.format(f.n) : "–"));
      ["p50_ms", "p90_ms"].forEach(function (k) {
        var td = el("td", "num", isNum(f[k]) ? fmtMs(f[k]) : "–");
        td.dataset.key = k;
        td.dataset.value = isNum(f[k]) ? String(f[k]) : "";
        tr.appendChild(td);
      });
      tb.appendChild(tr);
      rows++;
      if (isNum(f.n) && f.n > 0) measured++;
    });
    tb.dataset.count = String(rows);
    $("response-empty").hidden = measured > 0;
  }

  /* The account view's window (market.js keeps it on #account-view), "" = lifetime. */
  function viewWindow() {
    var v = $("account-view");
    return (v && v.dataset.window) || "";
  }

  var WINDOW_WORDS = { "5m": "last 5 minutes", "1h": "last hour", "24h": "last 24 hours",
                       "7d": "last 7 days" };

  function refreshResponse() {
    var panel = $("response-panel");
    var account = state.account || state.topAccount;
    var win = viewWindow();
    panel.dataset.account = account;
    panel.dataset.window = win;
    if (!account) {
      panel.hidden = true;
      panel.dataset.status = "";
      return Promise.resolve();
    }
    return api("api/v1/response?account=" + encodeURIComponent(account) +
               (win ? "&window=" + encodeURIComponent(win) : "")).then(function (r) {
      if (account !== (state.account || state.topAccount) || win !== viewWindow()) return;
      if (r.status === 200 && r.body && typeof r.body === "object") {
        renderResponse(account, r.body);
        $("response-window").textContent = WINDOW_WORDS[win] || win || "lifetime";
        panel.hidden = false;
      } else {
        panel.hidden = true;
      }
      panel.dataset.status = String(r.status);
    });
  }

  /* ---- scheduling ---- */

  function every(ms, fn) {
    setInterval(function () {
      if (document.hidden) return;
      fn().catch(function (e) { lostContact(e); });
    }, ms);
  }

  /* The response panel follows the viral leaderboard's top account: after it. */
  function refreshLists() {
    return Promise.all([refreshTop(), refreshViral().then(refreshResponse)]);
  }

  function start() {
    if (token) $("conn").title = "authenticated with the token from the page address";
    connectEvents();
    api("api/v1/summary").then(function (r) {
      if (r.status === 200) { applySummary(r.body); if (!state.es) setPill("conn", "polling", "polling"); }
    }).catch(lostContact);
    refreshLists().catch(lostContact);
    refreshAlerts(true).catch(lostContact);
    setInterval(pollSummary, POLL_MS);
    every(LIST_MS, refreshLists);
    every(ALERTS_MS, function () { return refreshAlerts(false); });
    /* The account view (market.js) chose an account or a window: the response panel
       follows both. */
    document.addEventListener("smm:account", function (e) {
      if (typeof e.detail !== "string") return;
      if (e.detail !== state.account) {
        state.account = e.detail;
        markSelected();
      }
      refreshResponse().catch(lostContact);
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { pollSummary(); refreshLists().catch(lostContact); }
    });
  }

  start();
})();
