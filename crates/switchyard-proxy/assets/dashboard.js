// Switchyard dashboard: polls the admin API of the proxy that serves it, draws the services,
// pools and servers (rates, error share, p50/p99 latency), a request/error chart per service
// with flip markers (dashboard-chart.js), and the switch history, and sends flips, rollbacks and
// splits after an in-page confirmation. The first state comes with the page when it can (a JSON
// block the proxy adds when no token is needed), so nothing waits for the first poll.
//
// Only same-origin requests; everything is rendered with textContent (no HTML from data).
"use strict";

const POLL_MS = 1000;
const LATENCY_WINDOW_MS = 60000; // p50/p99 over the last minute
const HISTORY_LIMIT = 30;
const TOKEN_KEY = "switchyard-admin-token";
const ACTOR = "dashboard";

const NAMED_COLOURS = {
  green: "#22c55e", blue: "#3b82f6", red: "#ef4444", yellow: "#eab308", amber: "#f59e0b",
  orange: "#f97316", purple: "#a855f7", violet: "#8b5cf6", pink: "#ec4899", cyan: "#06b6d4",
  teal: "#14b8a6", indigo: "#6366f1", lime: "#84cc16", canary: "#facc15", gray: "#94a3b8", grey: "#94a3b8",
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  status: null,
  generation: -1,
  lastCounts: new Map(), // "svc/pool" -> {t, requests, errors}
  series: new Map(), // "svc" -> [{t, pools: {pool: {rps, eps}}}]
  rates: new Map(), // "svc/pool" -> {rps, eps}
  latency: new Map(), // "svc/pool" -> [{t, buckets}], the last minute of readings
  history: [], // the last entries, newest first
  cards: new Map(), // "svc" -> {shape, root, refs}
  historyDirty: true,
  lastHistoryAt: 0,
  tokenPrompt: null,
  busy: false,
  seeded: false, // the last minutes were fetched once
};

const $ = (id) => document.getElementById(id);

function colourOf(name) {
  const key = String(name).toLowerCase();
  if (NAMED_COLOURS[key]) return NAMED_COLOURS[key];
  let h = 0;
  for (const ch of key) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h} 70% 58%)`;
}

// el("div", {class: "x", dataset: {a: 1}, text: "hi"}, child...)
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "colour") node.style.setProperty("--c", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// ---- API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  for (;;) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (method !== "GET") headers["X-Switchyard-Actor"] = ACTOR;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method, headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401) {
      await askToken(Boolean(state.token));
      continue;
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!resp.ok) {
      const msg = (data && data.error) || `${resp.status} ${resp.statusText}`;
      const detail = data && Array.isArray(data.errors) ? `\n${data.errors.join("\n")}` : "";
      throw new ApiError(resp.status, msg + detail);
    }
    return data;
  }
}

// One prompt at a time: every request that met a 401 waits for the same answer.
function askToken(wasRefused) {
  if (state.tokenPrompt) return state.tokenPrompt;
  setLink("locked", "token needed");
  $("token-button").hidden = false;
  state.tokenPrompt = new Promise((resolve) => {
    const dialog = $("token");
    $("token-error").hidden = !wasRefused;
    $("token-input").value = "";
    const done = (ev) => {
      ev.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      state.token = value;
      sessionStorage.setItem(TOKEN_KEY, value);
      dialog.removeEventListener("submit", done);
      dialog.close();
      state.tokenPrompt = null;
      resolve();
    };
    dialog.addEventListener("submit", done);
    dialog.addEventListener("cancel", (ev) => ev.preventDefault(), { once: true });
    dialog.showModal();
    $("token-input").focus();
  });
  return state.tokenPrompt;
}

// ---- polling ---------------------------------------------------------------------------------

function setLink(kind, text) {
  const link = $("link");
  link.dataset.state = kind;
  link.textContent = text;
}

async function poll() {
  try {
    const statsPath = state.seeded ? "/stats" : "/stats?series=1";
    const [status, stats] = await Promise.all([api("GET", "/status"), api("GET", statsPath)]);
    state.seeded = true;
    $("banner").hidden = true;
    setLink("live", "live");
    if (status.generation !== state.generation) state.historyDirty = true;
    state.generation = status.generation;
    state.status = status;
    absorbStats(stats);
    render(status, stats);
    renderFleet(status.fleet);
    const now = Date.now();
    if (state.historyDirty || now - state.lastHistoryAt > 5000) {
      state.historyDirty = false;
      state.lastHistoryAt = now;
      state.history = (await api("GET", `/history?limit=${HISTORY_LIMIT}`)).entries || [];
      renderHistory(state.history);
      render(status, null);
    }
  } catch (e) {
    setLink("offline", "offline");
    const banner = $("banner");
    banner.textContent = `Cannot reach the admin API: ${e.message}. Retrying every second.`;
    banner.hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// Turns counters into rates: from the samples of the last minutes on the first poll
// (`/stats?series=1`), then from each poll to the next.
function absorbStats(stats) {
  const wallNow = Date.now();
  for (const sample of stats.series || []) {
    ingest(sample.services, sample.t, wallNow - (stats.uptime_seconds - sample.t) * 1000);
  }
  ingest(stats.services, stats.uptime_seconds, wallNow);
  for (const [svc, s] of Object.entries(stats.services || {})) {
    for (const [pool, c] of Object.entries(s.pools || {})) {
      if (!c.latency) continue;
      const key = `${svc}/${pool}`;
      const list = state.latency.get(key) || [];
      list.push({ t: wallNow, buckets: c.latency });
      // Keep one reading at least a minute old as the baseline, none older.
      while (list.length > 2 && list[1].t <= wallNow - LATENCY_WINDOW_MS) list.shift();
      state.latency.set(key, list);
    }
  }
  $("generation").textContent = stats.generation;
  $("connections").textContent = stats.open_connections;
  $("uptime").textContent = formatUptime(stats.uptime_seconds);
}

function ingest(services, t, wall) {
  for (const [svc, s] of Object.entries(services || {})) {
    const point = { t: wall, pools: {} };
    let any = false;
    for (const [pool, c] of Object.entries(s.pools || {})) {
      const key = `${svc}/${pool}`;
      const last = state.lastCounts.get(key);
      if (last && t - last.t < 0.5) continue; // too close to the last sample to make a rate
      state.lastCounts.set(key, { t, requests: c.requests, errors: c.errors });
      if (!last || c.requests < last.requests) continue;
      const dt = t - last.t;
      const rate = { rps: (c.requests - last.requests) / dt, eps: (c.errors - last.errors) / dt };
      state.rates.set(key, rate);
      point.pools[pool] = rate;
      any = true;
    }
    if (!any) continue;
    const series = state.series.get(svc) || [];
    series.push(point);
    const cutoff = wall - WINDOW_S * 1000;
    while (series.length && series[0].t < cutoff) series.shift();
    state.series.set(svc, series);
  }
}

// ---- services --------------------------------------------------------------------------------

function render(status, stats) {
  const root = $("services");
  for (const placeholder of root.querySelectorAll(".loading")) placeholder.remove();
  const names = Object.keys(status.services);
  for (const [name, card] of state.cards) {
    if (!names.includes(name)) { card.root.remove(); state.cards.delete(name); }
  }
  names.forEach((name, i) => {
    const svc = status.services[name];
    const shape = JSON.stringify(Object.entries(svc.pools).map(([p, v]) => [p, v.servers.map((s) => s.addr)]));
    let card = state.cards.get(name);
    if (!card || card.shape !== shape) {
      const fresh = buildCard(name, svc);
      fresh.shape = shape;
      if (card) card.root.replaceWith(fresh.root); else root.append(fresh.root);
      card = fresh;
      state.cards.set(name, card);
    }
    if (root.children[i] !== card.root) root.insertBefore(card.root, root.children[i] || null);
    updateCard(name, svc, card, stats);
  });
}

function buildCard(name, svc) {
  const refs = { pools: {} };
  const live = el("span", { class: "live", dataset: { testid: `live-${name}` } });
  refs.live = live;
  refs.split = el("span", { class: "badge warn", hidden: "" });
  refs.down = el("span", { class: "badge bad", text: "live pool down", hidden: "" });
  refs.stagedDown = el("span", { class: "badge bad big", hidden: "", dataset: { testid: `staged-down-${name}` } });
  refs.flip = el("button", { class: "flip", type: "button", dataset: { testid: `flip-${name}` } });
  refs.switches = el("span", { class: "controls" });
  refs.rollback = el("button", { type: "button", dataset: { testid: `rollback-${name}` } });
  refs.splitButton = el("button", { type: "button", class: "ghost", text: "Split…", dataset: { testid: `split-${name}` } });
  refs.endSplit = el("button", { type: "button", class: "ghost", text: "End split", hidden: "" });
  refs.ramp = el("button", { type: "button", class: "ghost", dataset: { testid: `ramp-${name}` } });
  refs.mirror = el("button", { type: "button", class: "ghost", dataset: { testid: `mirror-${name}` } });
  refs.rollout = el("p", { class: "rollout muted small", dataset: { testid: `rollout-${name}` } });
  refs.ramp.addEventListener("click", () => ramp(name, refs.flip.dataset.to));
  refs.mirror.addEventListener("click", () => mirror(name, refs.flip.dataset.to));
  const poolNames = Object.keys(svc.pools);
  refs.flip.addEventListener("click", () => flip(name, refs.flip.dataset.to));
  refs.rollback.addEventListener("click", () => rollback(name));
  refs.splitButton.addEventListener("click", () => openSplit(name));
  refs.endSplit.addEventListener("click", () => endSplit(name));

  const pools = el("div", { class: "pools" });
  for (const pool of poolNames) {
    const r = {};
    r.state = el("span", { class: "badge" });
    r.rps = el("b", { text: "0" });
    r.err = el("b", { text: "–" });
    r.p50 = el("b", { text: "–" });
    r.p99 = el("b", { text: "–" });
    r.inflight = el("b", { text: "0" });
    r.downNote = el("p", { class: "down-note", hidden: "", dataset: { testid: `down-${name}-${pool}` } });
    r.servers = {};
    const list = el("ul", { class: "servers" });
    for (const s of svc.pools[pool].servers) {
      const h = el("span", { class: "health" });
      const f = el("span", { class: "muted" });
      r.servers[s.addr] = { h, f };
      list.append(el("li", { class: "server" }, el("span", { text: s.addr }), el("span", { class: "health-row" }, h, " ", f)));
    }
    r.root = el("div", { class: "pool", colour: colourOf(pool), dataset: { testid: `pool-${name}-${pool}` } },
      el("div", { class: "pool-head" },
        el("span", { class: "pool-name" }, el("span", { class: "swatch" }), pool),
        r.state),
      r.downNote,
      el("div", { class: "numbers" },
        el("div", { class: "num" }, r.rps, el("span", { text: "req/s" })),
        el("div", { class: "num err" }, r.err, el("span", { text: "5xx" })),
        el("div", { class: "num", title: "time to the response head, last minute" }, r.p50, el("span", { text: "p50" })),
        el("div", { class: "num", title: "time to the response head, last minute" }, r.p99, el("span", { text: "p99" })),
        el("div", { class: "num" }, r.inflight, el("span", { text: "in flight" }))),
      list);
    refs.pools[pool] = r;
    pools.append(r.root);
  }

  refs.canvas = el("canvas", { height: "140", "aria-label": `Requests per second of ${name}` });
  const legend = el("span", { class: "legend" },
    ...poolNames.map((p) => el("span", {}, el("i", { colour: colourOf(p) }), `${p} req/s`)),
    el("span", {}, el("i", { class: "dashed" }), "5xx/s"),
    el("span", {}, el("i", { class: "marker" }), "flips"));
  refs.peak = el("span", {});

  const root = el("article", { class: "card service", dataset: { service: name } },
    el("div", { class: "service-top" },
      el("div", { class: "service-name" }, el("h2", { text: name }), live, refs.split, refs.down, refs.stagedDown),
      el("div", { class: "controls" }, refs.flip, refs.switches, refs.rollback, refs.splitButton, refs.endSplit, refs.ramp, refs.mirror)),
    refs.rollout,
    pools,
    el("div", { class: "chart" },
      el("div", { class: "chart-head" }, legend, refs.peak),
      refs.canvas));
  return { root, refs };
}

function updateCard(name, svc, card, stats) {
  const { refs } = card;
  const poolNames = Object.keys(svc.pools);
  const active = svc.active;
  refs.live.replaceChildren(el("span", { class: "dot" }), `${active} live`);
  refs.live.style.setProperty("--c", colourOf(active));
  refs.live.title = svc.previous ? `previous: ${svc.previous}` : "";
  refs.down.hidden = svc.live_pool_available !== false;

  const split = svc.split && Object.values(svc.split).some((w) => w > 0) ? svc.split : null;
  const total = split ? Object.values(split).reduce((a, b) => a + b, 0) || 1 : 1;
  const share = (p) => (split ? Math.round((100 * (split[p] || 0)) / total) : p === active ? 100 : 0);
  refs.split.hidden = !split;
  if (split) {
    refs.split.textContent = "split " + Object.entries(split)
      .filter(([, w]) => w > 0).map(([p]) => `${p} ${share(p)}%`).join(" / ");
  }
  refs.endSplit.hidden = !split;

  // A pool that takes no new requests and whose every server is down or ejected.
  const isDown = (p) => p.servers.length > 0 && p.servers.every((s) => s.ejected || s.health === "down");
  const staged = poolNames.filter((p) => p !== active && share(p) === 0);
  const stagedDown = staged.filter((p) => isDown(svc.pools[p]));
  refs.stagedDown.hidden = stagedDown.length === 0;
  refs.stagedDown.textContent = `staged ${stagedDown.join(", ")} DOWN`;

  // Flip goes to the staged colour: with two pools the other one; with more, the previous one
  // (or the first other). Rollback undoes the last switch and is offered only right after one,
  // so the two never name the same move; with two pools exactly one of them is shown.
  const others = poolNames.filter((p) => p !== active);
  const flipTo = poolNames.length === 2 ? others[0] : (svc.previous && svc.previous !== active ? svc.previous : others[0]);
  const last = state.history.find((e) => e.service === name && e.ok && e.action !== "reload");
  const canRollback = Boolean(svc.previous && svc.previous !== active && last && last.action === "switch" && last.to === active);
  refs.rollback.hidden = !canRollback;
  if (canRollback) {
    const down = isDown(svc.pools[svc.previous]);
    refs.rollback.textContent = down ? `Rollback to ${svc.previous} (DOWN)` : `Rollback to ${svc.previous}`;
    refs.rollback.className = down ? "flip danger" : "";
    refs.rollback.title = `Undo the switch from ${svc.previous} to ${active} of ${fmtTime(new Date(last.time))}`;
  }
  refs.flip.hidden = !flipTo || (canRollback && flipTo === svc.previous);
  if (flipTo) {
    const down = isDown(svc.pools[flipTo]);
    refs.flip.dataset.to = flipTo;
    refs.flip.textContent = down ? `Flip to ${flipTo} (DOWN)` : `Flip to ${flipTo}`;
    refs.flip.title = `Switch every new request to ${flipTo}`;
    refs.flip.classList.toggle("danger", down);
    refs.flip.style.setProperty("--c", colourOf(flipTo));
  }
  const extra = poolNames.length > 2 ? others.filter((p) => p !== flipTo) : [];
  const extraKey = extra.join(",");
  if (refs.switches.dataset.key !== extraKey) {
    refs.switches.dataset.key = extraKey;
    refs.switches.replaceChildren(...extra.map((p) =>
      el("button", { type: "button", class: "ghost", text: `Switch to ${p}`, onclick: () => flip(name, p) })));
  }
  refs.splitButton.disabled = poolNames.length < 2;
  refs.ramp.hidden = !flipTo || Boolean(svc.ramp);
  refs.ramp.textContent = `Ramp to ${flipTo}…`;
  refs.mirror.textContent = svc.mirror ? "Stop mirror" : `Mirror to ${flipTo}…`;
  refs.mirror.hidden = !svc.mirror && !flipTo;
  const notes = rolloutNotes(svc, active, share);
  refs.rollout.textContent = notes.join(" · ");
  refs.rollout.hidden = notes.length === 0;

  for (const pool of poolNames) {
    const p = svc.pools[pool];
    const r = refs.pools[pool];
    const down = isDown(p);
    // During a split only the active pool says ACTIVE; the others that take a share say so.
    let label = p.state, kind = "badge";
    if (pool === active) { label = split ? `active · ${share(pool)}%` : "active"; kind = "badge live"; }
    else if (share(pool) > 0) { label = `split · ${share(pool)}%`; kind = "badge warn"; }
    else if (p.state === "draining") kind = "badge warn";
    else label = "staged";
    if (down) { label = "down"; kind = "badge bad"; }
    r.state.textContent = label;
    r.state.className = kind;
    r.root.classList.toggle("is-live", pool === active);
    r.root.classList.toggle("is-share", pool !== active && share(pool) > 0);
    r.root.classList.toggle("is-down", down);
    r.downNote.hidden = !down;
    r.downNote.textContent = pool === active || share(pool) > 0
      ? `${pool} is DOWN: no healthy server, and it takes ${share(pool)}% of new requests.`
      : `${pool} is DOWN: no healthy server. A flip to ${pool} is refused unless forced.`;
    const rate = state.rates.get(`${name}/${pool}`) || { rps: 0, eps: 0 };
    r.rps.textContent = fmtRate(rate.rps);
    r.err.textContent = rate.rps > 0 ? `${fmtPct((100 * rate.eps) / rate.rps)}%` : "–";
    r.err.title = `${fmtRate(rate.eps)} 5xx/s`;
    r.err.parentElement.classList.toggle("has-errors", rate.eps > 0);
    const readings = state.latency.get(`${name}/${pool}`) || [];
    const cur = readings.length ? readings[readings.length - 1].buckets : null;
    const base = readings.length > 1 ? readings[0].buckets : null;
    r.p50.textContent = fmtQuantile(quantile(0.5, cur, base));
    r.p99.textContent = fmtQuantile(quantile(0.99, cur, base));
    r.inflight.textContent = p.in_flight;
    for (const s of p.servers) {
      const slot = r.servers[s.addr];
      if (!slot) continue;
      const health = s.ejected ? "ejected" : (s.health || (s.healthy ? "up" : "down"));
      slot.h.dataset.health = health;
      slot.h.textContent = health;
      slot.f.textContent = `${s.in_flight} in flight`;
    }
  }
  const markers = state.history
    .filter((e) => e.service === name && e.ok && !["reload", "mirror", "upgrade"].includes(e.action))
    .map((e) => ({
      t: Date.parse(e.time),
      colour: colourOf(e.to || active),
      label: e.action === "split" ? "split" : e.action === "end_split" ? "end split"
        : `${e.action === "rollback" ? "rollback" : e.action === "ramp" ? "ramp" : "flip"} → ${e.to}`,
    }));
  const peak = drawChart(refs.canvas, state.series.get(name) || [], markers, poolNames, colourOf);
  refs.peak.textContent = `peak ${fmtRate(peak)} req/s · last ${WINDOW_S / 60} min`;
}

// ---- history ---------------------------------------------------------------------------------


// ---- actions ---------------------------------------------------------------------------------

function toast(text, kind) {
  const t = el("div", { class: `toast ${kind || ""}`, role: "status", text });
  $("toasts").append(t);
  setTimeout(() => t.remove(), kind === "bad" ? 8000 : 4000);
}

// Resolves with {force} when confirmed, or null when cancelled.
function confirmAction({ title, text, ok, warning, offerForce, input }) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-input-row").hidden = !input;
    if (input) {
      $("confirm-input-label").textContent = input.label;
      $("confirm-input").value = input.value;
    }
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = ok;
    $("confirm-warning").textContent = warning || "";
    $("confirm-warning").hidden = !warning;
    $("confirm-force-row").hidden = !offerForce;
    $("confirm-force").checked = false;
    const finish = (value) => {
      dialog.removeEventListener("submit", onSubmit);
      $("confirm-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      finish({ force: $("confirm-force").checked, value: $("confirm-input").value.trim() });
    };
    const onCancel = (ev) => { ev.preventDefault(); finish(null); };
    dialog.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    $("confirm-cancel").addEventListener("click", onCancel);
    dialog.showModal();
    $("confirm-ok").focus();
  });
}

function poolHealthy(svc, pool) {
  const p = state.status && state.status.services[svc] && state.status.services[svc].pools[pool];
  return !!p && p.servers.some((s) => s.healthy);
}

async function run(label, method, path, body) {
  if (state.busy) return;
  state.busy = true;
  try {
    const out = await api(method, path, body);
    const moved = out && out.active && (label === "Flip" || label === "Rollback");
    const change = moved ? `${out.service}: ${out.previous || "—"} → ${out.active}` : (out && out.service) || "done";
    toast(`${label}: ${change} (generation ${out ? out.generation : "?"})`, "ok");
  } catch (e) {
    toast(`${label} refused: ${e.message}`, "bad");
  } finally {
    state.busy = false;
    state.historyDirty = true;
  }
}

async function flip(svc, to) {
  const cur = state.status.services[svc];
  const healthy = poolHealthy(svc, to);
  const answer = await confirmAction({
    title: `Flip ${svc} to ${to}?`,
    text: `New requests go to ${to} at once. Requests in flight on ${cur.active} finish there.`,
    ok: `Flip to ${to}`,
    warning: healthy ? "" : `${to} has no healthy server: the switch is refused unless forced.`,
    offerForce: !healthy,
  });
  if (!answer) return;
  await run("Flip", "POST", `/services/${encodeURIComponent(svc)}/switch`, { to, force: answer.force });
}

async function rollback(svc) {
  const cur = state.status.services[svc];
  if (!cur.previous) return;
  const healthy = poolHealthy(svc, cur.previous);
  const answer = await confirmAction({
    title: `Roll ${svc} back to ${cur.previous}?`,
    text: `New requests go back to ${cur.previous}. Requests in flight on ${cur.active} finish there.`,
    ok: `Roll back to ${cur.previous}`,
    warning: healthy ? "" : `${cur.previous} has no healthy server: the rollback is refused unless forced.`,
    offerForce: !healthy,
  });
  if (!answer) return;
  await run("Rollback", "POST", `/services/${encodeURIComponent(svc)}/rollback`, { force: answer.force });
}

async function endSplit(svc) {
  const cur = state.status.services[svc];
  const answer = await confirmAction({
    title: `End the split of ${svc}?`,
    text: `Every new request goes to ${cur.active} again.`,
    ok: "End split",
  });
  if (!answer) return;
  await run("End split", "DELETE", `/services/${encodeURIComponent(svc)}/split`);
}

// ---- start -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("token-button").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    askToken(false);
  });
  if (state.token) $("token-button").hidden = false;
  window.addEventListener("resize", () => {
    if (state.status) render(state.status, null);
  });
  // The state the page came with: draw it now, poll from the next second on.
  const initial = $("initial-state");
  let first = null;
  try { first = initial ? JSON.parse(initial.textContent) : null; } catch { first = null; }
  if (first && first.status && first.stats) {
    state.seeded = true;
    state.status = first.status;
    state.generation = first.status.generation;
    state.history = first.history || [];
    state.historyDirty = false;
    state.lastHistoryAt = Date.now();
    absorbStats(first.stats);
    render(first.status, first.stats);
    renderHistory(state.history);
    setLink("live", "live");
    setTimeout(poll, POLL_MS);
  } else {
    poll();
  }
});
