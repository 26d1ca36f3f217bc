// The NPS dashboard (docs/dashboard.md): reads the API's JSON endpoints with the bearer token
// kept in sessionStorage and draws plain SVG. No library, no build step, nothing fetched from
// elsewhere. Text from the data only ever goes through textContent.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "nps-sync-token";
  const COLOURS = { detractor: "#c8372d", passive: "#d99a00", promoter: "#1f8a4c" };
  const PERIODS = { week: 26, month: 12, quarter: 8 }; // how many periods the trend shows
  const state = { granularity: "month", data: null, open: {} }; // open: tables shown

  // --- small helpers -------------------------------------------------------------------

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(name, attrs, parent, text) {
    const node = document.createElement(name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    const rounded = Number(value).toFixed(digits === undefined ? 1 : digits);
    return rounded.replace(/\.0$/, "").replace("-", "−");
  }

  function signed(value) {
    const text = fmt(value);
    return value > 0 ? "+" + text : text;
  }

  function money(mrr) {
    if (!mrr) return "–";
    try {
      return new Intl.NumberFormat(undefined, {
        style: "currency",
        currency: mrr.currency || "EUR",
      }).format(mrr.amount / 100);
    } catch (error) {
      return (mrr.amount / 100).toFixed(2) + " " + (mrr.currency || "");
    }
  }

  function iso(day) {
    return day.toISOString().slice(0, 10);
  }

  function range(granularity, today) {
    // from/to covering the last PERIODS[granularity] periods up to today (UTC)
    const y = today.getUTCFullYear();
    const m = today.getUTCMonth();
    let from;
    if (granularity === "week") {
      from = new Date(today.getTime() - (PERIODS.week - 1) * 7 * 86400000);
    } else if (granularity === "quarter") {
      from = new Date(Date.UTC(y, m - (m % 3) - 3 * (PERIODS.quarter - 1), 1));
    } else {
      from = new Date(Date.UTC(y, m - (PERIODS.month - 1), 1));
    }
    return { from: iso(from), to: iso(today) };
  }

  // Every chart has a text alternative with all its figures: the SVG's label (what a screen
  // reader announces for role="img") and a table under it, behind a <summary> that a keyboard
  // reaches like any button. The table scrolls inside its own box on a narrow screen.
  function figures(figure, caption, columns, rows) {
    const details = html("details", { class: "figures" }, figure);
    details.open = Boolean(state.open[figure.id]);
    details.addEventListener("toggle", () => { state.open[figure.id] = details.open; });
    html("summary", {}, details, "The figures as a table");
    const box = html("div", {
      class: "table-box", tabindex: "0", role: "region", "aria-label": caption,
    }, details);
    const table = html("table", {}, box);
    html("caption", {}, table, caption);
    const numeric = columns.map((_, i) =>
      i > 0 && rows.every((row) => /^[−+\d.–]+$/.test(row[i])));
    const head = html("tr", {}, html("thead", {}, table));
    columns.forEach((name, i) =>
      html("th", { scope: "col", class: numeric[i] ? "num" : "" }, head, name));
    const body = html("tbody", {}, table);
    for (const row of rows) {
      const line = html("tr", {}, body);
      row.forEach((cell, i) => html(i ? "td" : "th",
        i ? { class: numeric[i] ? "num" : "" } : { scope: "row" }, line, cell));
    }
    return details;
  }

  function nps(bucket) {
    // one period or segment in words, for labels and tooltips
    if (bucket.nps === null) return "no answers";
    return "NPS " + fmt(bucket.nps) + " ± " + fmt(bucket.margin_of_error) + ", n = " + bucket.n +
      ", revenue-weighted " + fmt(bucket.revenue_weighted_nps);
  }

  function setStatus(text) {
    document.getElementById("status").textContent = text;
  }

  // --- the API -------------------------------------------------------------------------

  class Unauthorized extends Error {}

  async function api(path, params) {
    const query = new URLSearchParams(params || {}).toString();
    const answer = await fetch(path + (query ? "?" + query : ""), {
      headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
      cache: "no-store",
      credentials: "omit",
    });
    if (answer.status === 401) throw new Unauthorized("the token was refused");
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.message || "HTTP " + answer.status);
    return body;
  }

  async function loadTrend(granularity) {
    const span = range(granularity, new Date());
    return api("nps", { granularity: granularity, from: span.from, to: span.to });
  }

  async function load() {
    setStatus("Loading…");
    const optional = (promise) => promise.catch((error) => {
      if (error instanceof Unauthorized) throw error;
      return { error: error.message };
    });
    const [overall, recent, trend, plan, region, channel, distribution, detractors, destinations] =
      await Promise.all([
        api("nps"),
        api("nps", { window: "90d" }),
        loadTrend(state.granularity),
        optional(api("segments", { dimension: "plan" })),
        optional(api("segments", { dimension: "region" })),
        optional(api("segments", { dimension: "channel" })),
        optional(api("distribution")),
        optional(api("detractors", { limit: "20" })),
        optional(api("destinations/health")),
      ]);
    state.data = {
      overall, recent, trend, plan, region, channel, distribution, detractors, destinations,
    };
    render();
    setStatus("Updated " + new Date().toLocaleTimeString());
  }

  // --- the charts ----------------------------------------------------------------------

  function width(figure, fallback) {
    return Math.max(260, Math.floor(figure.clientWidth || fallback));
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function kpi(parent, label, bucket, extra) {
    const box = html("div", { class: "kpi" }, parent);
    html("div", { class: "kpi-label" }, box, label);
    const value = html("div", { class: "kpi-value" }, box, fmt(bucket.nps));
    value.dataset.nps = bucket.nps === null ? "" : String(bucket.nps);
    const detail = bucket.n
      ? "± " + fmt(bucket.margin_of_error) + " · n = " + bucket.n +
        " · revenue-weighted " + fmt(bucket.revenue_weighted_nps)
      : "no answers yet";
    html("div", { class: "kpi-detail" }, box, detail + (extra ? " · " + extra : ""));
  }

  function renderKpis(data) {
    const parent = document.getElementById("kpis");
    clear(parent);
    kpi(parent, "Last 90 days", data.recent.buckets[0]);
    kpi(parent, "All time", data.overall.buckets[0]);
    const filled = data.trend.buckets.filter((b) => b.n > 0);
    if (filled.length >= 2) {
      const last = filled[filled.length - 1];
      const before = filled[filled.length - 2];
      kpi(parent, "Latest " + state.granularity + " (" + last.period + ")", last,
        signed(last.nps - before.nps) + " vs " + before.period);
    } else if (filled.length === 1) {
      kpi(parent, "Latest " + state.granularity + " (" + filled[0].period + ")", filled[0]);
    }
  }

  function yAxis(svg, scale, left, right, ticks, label, top, bottom) {
    for (const tick of ticks) {
      const y = scale(tick);
      el("line", { class: tick === 0 ? "zero" : "grid", x1: left, x2: right, y1: y, y2: y }, svg);
      el("text", { class: "tick", x: left - 6, y: y + 4, "text-anchor": "end" }, svg, fmt(tick, 0));
    }
    const middle = (top + bottom) / 2;
    el("text", {
      class: "axis-label", x: 12, y: middle, "text-anchor": "middle",
      transform: "rotate(-90 12 " + middle + ")",
    }, svg, label);
  }

  function renderTrend(series) {
    const figure = document.getElementById("trend");
    clear(figure);
    const buckets = series.buckets;
    const W = width(figure, 640);
    const H = 300;
    const pad = { left: 46, right: 12, top: 22, bottom: 62 };
    const inner = W - pad.left - pad.right;
    const step = inner / Math.max(buckets.length, 1);
    const x = (i) => pad.left + step * (i + 0.5);
    const y = (v) => pad.top + ((100 - v) / 200) * (H - pad.top - pad.bottom);
    const clamp = (v) => Math.max(-100, Math.min(100, v));
    const title = "NPS per " + series.granularity + " from " + series.from + " to " + series.to;
    const svg = el("svg", {
      width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": title + ": " + buckets.map((b) => b.period + " " + nps(b)).join("; ") + ".",
    }, figure);
    el("title", {}, svg, "NPS per " + series.granularity);
    yAxis(svg, y, pad.left, W - pad.right, [-100, -50, 0, 50, 100], "NPS", pad.top, H - pad.bottom);

    // the margin-of-error band, one polygon per run of periods with answers
    let run = [];
    const runs = [];
    buckets.forEach((b, i) => {
      if (b.nps === null) {
        if (run.length) runs.push(run);
        run = [];
      } else run.push(i);
    });
    if (run.length) runs.push(run);
    const high = (i) => y(clamp(buckets[i].nps + buckets[i].margin_of_error));
    const low = (i) => y(clamp(buckets[i].nps - buckets[i].margin_of_error));
    for (const part of runs) {
      if (part.length === 1) { // a lone period: a short band around its point
        const i = part[0];
        el("rect", { class: "band", x: x(i) - 6, y: high(i), width: 12, height: low(i) - high(i) },
          svg);
      } else {
        const upper = part.map((i) => x(i) + "," + high(i));
        const lower = part.map((i) => x(i) + "," + low(i)).reverse();
        el("polygon", { class: "band", points: upper.concat(lower).join(" ") }, svg);
      }
      const line = part.map((i) => x(i) + "," + y(buckets[i].nps)).join(" ");
      el("polyline", { class: "line", points: line }, svg);
    }

    // points with their numbers; period labels and n below the axis
    const every = Math.ceil(buckets.length / Math.max(1, Math.floor(inner / 56)));
    buckets.forEach((b, i) => {
      const group = el("g", { class: "period", "data-period": b.period }, svg);
      group.dataset.nps = b.nps === null ? "" : String(b.nps);
      group.dataset.n = String(b.n);
      el("title", {}, group, b.period + ": " + nps(b));
      // a full-height transparent target so the tooltip shows anywhere in the column
      el("rect", {
        class: "hit", x: x(i) - step / 2, y: pad.top, width: step, height: H - pad.top - pad.bottom,
      }, group);
      if (b.nps !== null) {
        el("circle", { class: "dot", cx: x(i), cy: y(b.nps), r: 4 }, group);
        if (step >= 26 || i === buckets.length - 1) {
          el("text", { class: "value", x: x(i), y: y(b.nps) - 9, "text-anchor": "middle" },
            group, fmt(b.nps, 0));
        }
      }
      if ((buckets.length - 1 - i) % every === 0) { // from the newest back: it always shows
        el("text", { class: "tick", x: x(i), y: H - pad.bottom + 16, "text-anchor": "middle" },
          group, b.period);
        el("text", { class: "tick n", x: x(i), y: H - pad.bottom + 31, "text-anchor": "middle" },
          group, "n=" + b.n);
      }
    });
    el("text", { class: "axis-label", x: pad.left + inner / 2, y: H - 8, "text-anchor": "middle" },
      svg, series.granularity.charAt(0).toUpperCase() + series.granularity.slice(1) +
      " (UTC), n = answers");
    figures(figure, title, ["Period", "NPS", "±", "n", "Revenue-weighted NPS"],
      buckets.map((b) => [b.period, fmt(b.nps), fmt(b.margin_of_error), String(b.n),
        fmt(b.revenue_weighted_nps)]));
  }

  function renderSegments(figure, body) {
    clear(figure);
    const dimension = figure.dataset.dimension;
    html("figcaption", {}, figure, "By " + dimension);
    if (!body || body.error) {
      html("p", { class: "note" }, figure, body ? body.error : "not available");
      return;
    }
    const rows = body.segments.filter((s) => s.n > 0).sort((a, b) => b.n - a.n).slice(0, 12);
    if (!rows.length) {
      html("p", { class: "note" }, figure, "No answers yet.");
      return;
    }
    const W = width(figure, 320);
    const rowH = 52;
    const pad = { left: 10, right: 10, top: 6, bottom: 44 };
    const H = pad.top + rows.length * rowH + pad.bottom;
    const inner = W - pad.left - pad.right;
    const x = (v) => pad.left + ((v + 100) / 200) * inner;
    const title = "NPS and revenue-weighted NPS by " + dimension + ", all time";
    const svg = el("svg", {
      width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": title + ": " + rows.map((s) => s.value + " " + nps(s)).join("; ") + ".",
    }, figure);
    el("title", {}, svg, "NPS by " + dimension);
    for (const tick of [-100, -50, 0, 50, 100]) {
      el("line", {
        class: tick === 0 ? "zero" : "grid", x1: x(tick), x2: x(tick),
        y1: pad.top, y2: H - pad.bottom,
      }, svg);
      el("text", { class: "tick", x: x(tick), y: H - pad.bottom + 14, "text-anchor": "middle" },
        svg, fmt(tick, 0));
    }
    el("text", { class: "axis-label", x: pad.left + inner / 2, y: H - 6, "text-anchor": "middle" },
      svg, "NPS (−100 to 100)");
    rows.forEach((s, i) => {
      const top = pad.top + i * rowH;
      const group = el("g", { class: "segment", "data-value": s.value }, svg);
      group.dataset.nps = s.nps === null ? "" : String(s.nps);
      group.dataset.revenueWeightedNps =
        s.revenue_weighted_nps === null ? "" : String(s.revenue_weighted_nps);
      el("title", {}, group, s.value + ": " + nps(s));
      el("text", { class: "row-label", x: pad.left, y: top + 13 }, group,
        s.value + " (n=" + s.n + ")");
      const bars = [["plain", s.nps, 18], ["revenue", s.revenue_weighted_nps, 33]];
      for (const [kind, value, offset] of bars) {
        if (value === null) continue;
        const x0 = x(0);
        const x1 = x(value);
        el("rect", {
          class: "bar bar-" + kind, x: Math.min(x0, x1), y: top + offset,
          width: Math.max(1, Math.abs(x1 - x0)), height: 12,
        }, group);
        const right = value >= 0;
        const tx = right ? x1 + 4 : x1 - 4;
        const inside = right ? tx > W - 34 : tx < 34;
        el("text", {
          class: "value" + (inside ? " inside" : ""), y: top + offset + 10,
          x: inside ? (right ? x1 - 4 : x1 + 4) : tx,
          "text-anchor": (right !== inside) ? "start" : "end",
        }, group, fmt(value, 0));
      }
    });
    figures(figure, title, [dimension.charAt(0).toUpperCase() + dimension.slice(1), "NPS", "±",
      "n", "Revenue-weighted NPS"], rows.map((s) => [s.value, fmt(s.nps),
      fmt(s.margin_of_error), String(s.n), fmt(s.revenue_weighted_nps)]));
  }

  function renderDistribution(body) {
    const figure = document.getElementById("distribution");
    clear(figure);
    if (!body || body.error) {
      html("p", { class: "note" }, figure, body ? body.error : "not available");
      return;
    }
    const W = width(figure, 640);
    const H = 240;
    const pad = { left: 46, right: 10, top: 20, bottom: 46 };
    const inner = W - pad.left - pad.right;
    const most = Math.max(1, ...body.scores.map((s) => s.count));
    const step = inner / 11;
    const y = (v) => pad.top + (1 - v / most) * (H - pad.top - pad.bottom);
    const title = "Answers per score, 0 to 10, all time (n = " + body.n + ")";
    const svg = el("svg", {
      width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": title + ": " +
        body.scores.map((s) => "score " + s.score + ": " + s.count).join(", ") + ".",
    }, figure);
    el("title", {}, svg, "Scores 0–10");
    const ticks = [0, Math.round(most / 2), most].filter((v, i, a) => a.indexOf(v) === i);
    yAxis(svg, y, pad.left, W - pad.right, ticks, "Answers", pad.top, H - pad.bottom);
    body.scores.forEach((s) => {
      const cx = pad.left + step * (s.score + 0.5);
      const group = el("g", { class: "score", "data-score": s.score }, svg);
      group.dataset.count = String(s.count);
      el("title", {}, group, "Score " + s.score + ": " + s.count + " answers (" + s.category + ")");
      el("rect", {
        class: "bar", fill: COLOURS[s.category], x: cx - step * 0.36,
        y: y(s.count), width: step * 0.72, height: Math.max(0, y(0) - y(s.count)),
      }, group);
      el("text", { class: "value", x: cx, y: y(s.count) - 4, "text-anchor": "middle" },
        group, String(s.count));
      el("text", { class: "tick", x: cx, y: H - pad.bottom + 16, "text-anchor": "middle" },
        group, String(s.score));
    });
    el("text", { class: "axis-label", x: pad.left + inner / 2, y: H - 8, "text-anchor": "middle" },
      svg, "Score (0–6 detractor, 7–8 passive, 9–10 promoter)");
    figures(figure, title, ["Score", "Category", "Answers"],
      body.scores.map((s) => [String(s.score), s.category, String(s.count)]));
  }

  function renderDetractors(body) {
    const list = document.getElementById("detractors");
    clear(list);
    if (!body || body.error) {
      html("li", { class: "note" }, list, body ? body.error : "not available");
      return;
    }
    if (!body.detractors.length) {
      html("li", { class: "note" }, list, "No detractors yet.");
      return;
    }
    for (const d of body.detractors) {
      const item = html("li", { class: "detractor" }, list);
      const head = html("div", { class: "detractor-head" }, item);
      html("span", { class: "score-badge", "aria-label": "score " + d.score }, head, String(d.score));
      html("span", { class: "customer" }, head, d.customer_key || "unknown customer");
      html("time", { datetime: d.submitted_at || "" }, head, (d.submitted_at || "").slice(0, 10));
      const facts = html("dl", { class: "facts" }, item);
      for (const [label, value] of [
        ["Plan", d.plan || "–"], ["Region", d.region || "–"], ["Channel", d.channel || "–"],
        ["MRR at risk", money(d.mrr_at_risk)],
      ]) {
        const pair = html("div", {}, facts);
        html("dt", {}, pair, label);
        html("dd", { class: "fact-" + label.toLowerCase().replace(/ /g, "-") }, pair, value);
      }
      html("blockquote", { class: d.comment ? "comment" : "comment none" }, item,
        d.comment || "(no comment)");
    }
  }

  function renderDestinations(body) {
    // each CRM/billing destination's health: last success, failures in the last day
    const list = document.getElementById("destinations");
    clear(list);
    if (!body || body.error) {
      html("li", { class: "note" }, list, body ? body.error : "not available");
      return;
    }
    if (!body.destinations.length) {
      html("li", { class: "note" }, list, "No CRM or billing destination is configured.");
      return;
    }
    for (const d of body.destinations) {
      const failing = d.failures_last_day > 0 &&
        (!d.last_success_at || d.last_failure_at > d.last_success_at);
      const item = html("li", { class: "destination" + (failing ? " failing" : "") }, list);
      item.dataset.destination = d.id;
      html("span", { class: "destination-kind" }, item, d.kind);
      html("span", { class: "destination-success" }, item,
        "last success " + (d.last_success_at || "never"));
      html("span", { class: "destination-failures" }, item,
        d.failures_last_day + " failures, " + d.writes_last_day + " writes in the last day");
    }
  }

  function render() {
    const data = state.data;
    if (!data) return;
    renderKpis(data);
    renderTrend(data.trend);
    for (const name of ["plan", "region", "channel"]) {
      renderSegments(document.getElementById("segments-" + name), data[name]);
    }
    renderDistribution(data.distribution);
    renderDetractors(data.detractors);
    renderDestinations(data.destinations);
    document.body.dataset.rendered = "true";
  }

  // --- the page ------------------------------------------------------------------------

  function showLogin(message) {
    document.getElementById("dashboard").hidden = true;
    document.getElementById("forget").hidden = true;
    document.getElementById("login").hidden = false;
    setStatus(message || "Enter the API token to see the dashboard.");
    document.getElementById("token").focus();
  }

  async function start() {
    if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
    document.getElementById("login").hidden = true;
    document.getElementById("dashboard").hidden = false;
    document.getElementById("forget").hidden = false;
    try {
      await load();
    } catch (error) {
      if (error instanceof Unauthorized) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin("That token was refused: enter a valid API token.");
      }
      setStatus("Could not load the data: " + error.message);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("token");
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      start();
    });
    document.getElementById("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      state.data = null;
      showLogin("Token forgotten.");
    });
    for (const button of document.querySelectorAll("[data-granularity]")) {
      button.addEventListener("click", async () => {
        state.granularity = button.dataset.granularity;
        document.body.dataset.rendered = "false";
        for (const other of document.querySelectorAll("[data-granularity]")) {
          other.setAttribute("aria-pressed", String(other === button));
        }
        try {
          state.data.trend = await loadTrend(state.granularity);
          render();
        } catch (error) {
          if (error instanceof Unauthorized) return showLogin("That token was refused.");
          setStatus("Could not load the data: " + error.message);
        }
      });
    }
    let resizing = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(render, 150);
    });
    start();
  });
})();
