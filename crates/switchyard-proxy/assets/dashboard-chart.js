// Switchyard dashboard, part two: the request chart with its flip markers, latency quantiles
// from histogram buckets, and number formatting. Loaded before dashboard.js, which calls these.
"use strict";

// The chart window, in seconds: the last five minutes.
const WINDOW_S = 300;

// The q-quantile (0..1) of the observations between two readings of one histogram, each a list
// of [upper bound in seconds or null for +Inf, count in that bucket]. Linear inside a bucket,
// as Prometheus' histogram_quantile does; a quantile in the +Inf bucket reads as the highest
// finite bound. A quantile in the lowest bucket is given as "at most its bound" (`atMost`):
// nothing tells where inside it the observations lie. Returns null when nothing was observed
// in between, else {s: seconds, atMost}.
function quantile(q, now, before) {
  if (!now) return null;
  const counts = now.map(([, n], i) => n - (before && before[i] ? before[i][1] : 0));
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const upper = now[i][0];
    const lower = i === 0 ? 0 : now[i - 1][0];
    if (seen + counts[i] >= rank && counts[i] > 0) {
      if (i === 0) return { s: upper, atMost: true };
      if (upper === null) return { s: lower, atMost: false };
      return { s: lower + (upper - lower) * ((rank - seen) / counts[i]), atMost: false };
    }
    seen += counts[i];
  }
  return null;
}

function fmtQuantile(q) {
  if (!q) return "–";
  return (q.atMost ? "≤ " : "") + fmtSeconds(q.s);
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 0.001) return `${Math.round(s * 1e6)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}

function formatUptime(s) {
  s = Math.floor(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function fmtRate(r) {
  if (r === 0) return "0";
  if (r < 10) return r.toFixed(1);
  return Math.round(r).toLocaleString();
}

function fmtPct(v) {
  return v >= 10 ? Math.round(v).toString() : v.toFixed(1);
}

// 2026-12-03 23:40:12, local time.
function fmtTime(d) {
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function fmtAxis(v) {
  return v >= 10 ? Math.round(v).toLocaleString() : String(Number(v.toFixed(2)));
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// Draws the request rate per pool (solid), its 5xx rate (dashed) and a marker at every
// switch, rollback and split of the service in the window.
//   series: [{t: wall ms, pools: {pool: {rps, eps}}}], markers: [{t: wall ms, label, colour}]
function drawChart(canvas, series, markers, poolNames, colourOf) {
  const css = getComputedStyle(document.documentElement);
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 140;
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const now = Date.now();
  const pad = { l: 36, r: 8, t: 16, b: 18 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  let peak = 0;
  for (const pt of series) for (const r of Object.values(pt.pools)) peak = Math.max(peak, r.rps, r.eps);
  const top = 4 * niceCeil(Math.max(peak, 1) / 4); // four gridlines at round numbers
  const x = (t) => pad.l + w - ((now - t) / (WINDOW_S * 1000)) * w;
  const y = (v) => pad.t + h - (v / top) * h;

  ctx.font = `11px ${css.getPropertyValue("--font")}`;
  const muted = css.getPropertyValue("--muted").trim() || "#888";
  ctx.fillStyle = muted;
  ctx.strokeStyle = css.getPropertyValue("--line").trim() || "#333";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.l, yy); ctx.lineTo(pad.l + w, yy); ctx.stroke();
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ctx.fillText(fmtAxis(v), pad.l - 6, yy);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (let m = 0; m <= WINDOW_S / 60; m++) {
    const t = now - m * 60000;
    ctx.fillText(m === 0 ? "now" : `-${m}m`, Math.min(Math.max(x(t), pad.l + 10), pad.l + w - 12), pad.t + h + 4);
  }

  // Flip markers first, so the lines are drawn over them; a label that would overlap the one
  // before it goes a row lower.
  const labelEnds = [];
  for (const m of [...markers].sort((a, b) => a.t - b.t)) {
    if (now - m.t > WINDOW_S * 1000 || m.t > now + 5000) continue;
    const xx = Math.round(Math.min(x(m.t), pad.l + w)) + 0.5;
    ctx.strokeStyle = m.colour;
    ctx.lineWidth = 1.5;
    ctx.setLineDash([2, 3]);
    ctx.beginPath(); ctx.moveTo(xx, pad.t - 2); ctx.lineTo(xx, pad.t + h); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = m.colour;
    ctx.textBaseline = "top";
    const right = xx > pad.l + w - 70;
    const tw = ctx.measureText(m.label).width;
    const from = right ? xx - 4 - tw : xx + 4;
    let row = 0;
    while (row < labelEnds.length && labelEnds[row] > from - 4) row++;
    labelEnds[row] = from + tw;
    ctx.textAlign = "left";
    ctx.fillText(m.label, from, 2 + row * 12);
  }

  const line = (pick, colour, dashed) => {
    ctx.beginPath();
    let started = false;
    for (const pt of series) {
      const v = pick(pt);
      if (v === undefined) continue;
      const xx = x(pt.t), yy = y(v);
      if (started) ctx.lineTo(xx, yy); else { ctx.moveTo(xx, yy); started = true; }
    }
    ctx.setLineDash(dashed ? [4, 3] : []);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.stroke();
    ctx.setLineDash([]);
  };
  for (const pool of poolNames) line((pt) => pt.pools[pool] && pt.pools[pool].rps, colourOf(pool), false);
  // Each pool's own 5xx rate, dashed in its colour: one pool's errors never hide in a sum.
  for (const pool of poolNames) line((pt) => pt.pools[pool] && pt.pools[pool].eps, colourOf(pool), true);
  return peak;
}
