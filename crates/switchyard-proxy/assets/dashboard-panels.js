// Switchyard dashboard, the panels beside the service cards: the fleet card, the switch history,
// the split dialog, and the notes and actions of safe rollouts (ramp, mirror). Loaded before dashboard.js, whose
// helpers ($, el, state, confirmAction, run, poolHealthy) these functions call once the page runs.
"use strict";

const ACTIONS = { switch: "switch", rollback: "rollback", split: "split", end_split: "end split", reload: "reload", upgrade: "upgrade", ramp: "ramp", mirror: "mirror" };

// What a safe rollout set for a service, as short notes for its card.
function rolloutNotes(svc, active, share) {
  const notes = [];
  if (svc.ramp) {
    const step = svc.split ? Math.round((100 * (svc.split[svc.ramp.to] || 0)) / 100) : 0;
    notes.push(`ramping ${svc.ramp.from} → ${svc.ramp.to}: ${step}% now, done at ${fmtTime(new Date(svc.ramp.started_ms + svc.ramp.duration_ms))}`);
  }
  if (svc.mirror) {
    const paused = svc.mirror.to === active || share(svc.mirror.to) > 0 ? " (paused: it is live)" : "";
    notes.push(`mirroring ${svc.mirror.percent}% of ${svc.mirror.methods.join(", ")} to ${svc.mirror.to}${paused}`);
  }
  if (svc.sticky) notes.push("sticky split: clients keep their pool");
  if (svc.guard) {
    const g = svc.guard;
    const figures = `${g.requests} answers, ${fmtPct(100 * g.error_rate)}% errors${g.p99_ms != null ? `, p99 ${g.p99_ms} ms` : ""}`;
    notes.push(g.verdict === "watching"
      ? `guard watching ${g.pool} until ${fmtTime(new Date(g.until))}: ${figures}`
      : `guard ${g.verdict.replace("_", " ")} (${g.pool}: ${figures})${g.reason ? ` — ${g.reason}` : ""}`);
  }
  if (svc.preview && (svc.preview.header || svc.preview.cookie)) {
    notes.push(`preview by ${[svc.preview.header && `header ${svc.preview.header}`, svc.preview.cookie && `cookie ${svc.preview.cookie}`].filter(Boolean).join(" or ")}`);
  }
  return notes;
}

// Fleet mode: this instance's link to etcd, and every node with the revision it has applied.
function renderFleet(fleet) {
  $("fleet").hidden = !fleet;
  if (!fleet) return;
  const since = new Date(fleet.since);
  const note = $("fleet-note");
  note.textContent = fleet.connected
    ? `${fleet.prefix} on etcd: this is ${fleet.node}, connected since ${fmtTime(since)}, revision ${fleet.revision}`
    : `${fleet.prefix}: this is ${fleet.node}, etcd UNREACHABLE since ${fmtTime(since)}: serving the last decisions, flips are refused`;
  note.className = fleet.connected ? "muted small" : "warning small";
  const newest = Math.max(fleet.revision, ...fleet.nodes.filter((n) => n.alive).map((n) => n.applied_revision));
  $("fleet-nodes").replaceChildren(...fleet.nodes.map((n) => {
    const converged = !n.alive ? "—" : n.applied_revision >= newest ? "yes" : "no";
    return el("tr", { class: n.alive ? "" : "refused", dataset: { testid: `fleet-${n.node}` } },
      el("td", { class: "mono", text: n.node === fleet.node ? `${n.node} (this)` : n.node }),
      el("td", { text: n.applied_revision }),
      el("td", { class: converged === "no" ? "result-refused" : "result-ok", text: converged }),
      el("td", { text: n.alive ? "yes" : "no" }),
      el("td", { title: n.at, class: "mono", text: n.at ? fmtTime(new Date(n.at)) : "—" }),
      el("td", { text: n.error || "—" }));
  }));
}

function renderHistory(entries) {
  const body = $("history");
  $("history-empty").hidden = entries.length > 0;
  body.replaceChildren(...entries.map((e) => {
    const when = new Date(e.time);
    const change = el("td", {});
    if (e.action === "end_split" && e.to) {
      change.append("all to ", el("span", { class: "pill", colour: colourOf(e.to), text: e.to }));
    } else if (e.action === "split" && e.weights) {
      change.append(Object.entries(e.weights).map(([p, w]) => `${p}=${w}`).join(" "));
    } else if (e.from || e.to) {
      if (e.from) change.append(el("span", { class: "pill", colour: colourOf(e.from), text: e.from }));
      if (e.from && e.to) change.append(" → ");
      if (e.to) change.append(el("span", { class: "pill", colour: colourOf(e.to), text: e.to }));
    } else {
      change.append(el("span", { class: "muted", text: "config" }));
    }
    const action = ACTIONS[e.action] || e.action;
    return el("tr", { class: e.ok ? "" : "refused" },
      el("td", { title: e.time, class: "mono", text: fmtTime(when) }),
      el("td", {}, action, e.forced ? el("span", { class: "badge warn", text: "forced" }) : null),
      el("td", { text: e.service || "—" }),
      change,
      el("td", { class: "mono", text: e.node ? `${e.actor} @${e.node}` : e.actor }),
      el("td", { text: e.generation }),
      el("td", { class: e.ok ? "result-ok" : "result-refused", text: e.ok ? "applied" : `refused: ${e.error || ""}` }));
  }));
}

async function ramp(svc, to) {
  const healthy = poolHealthy(svc, to);
  const answer = await confirmAction({
    title: `Ramp ${svc} to ${to}?`,
    text: `New requests move to ${to} in ten even steps, then a switch. A rollback ends it at once.`,
    ok: `Ramp to ${to}`,
    input: { label: "over", value: "10m" },
    warning: healthy ? "" : `${to} has no healthy server: the ramp is refused unless forced.`,
    offerForce: !healthy,
  });
  if (!answer) return;
  await run("Ramp", "POST", `/services/${encodeURIComponent(svc)}/switch`, { to, ramp: answer.value, force: answer.force });
}

async function mirror(svc, to) {
  const cur = state.status.services[svc];
  const path = `/services/${encodeURIComponent(svc)}/mirror`;
  if (cur.mirror) {
    const answer = await confirmAction({ title: `Stop mirroring ${svc}?`, text: `No more copies go to ${cur.mirror.to}.`, ok: "Stop mirror" });
    if (answer) await run("Mirror off", "DELETE", path);
    return;
  }
  const answer = await confirmAction({
    title: `Mirror ${svc} to ${to}?`,
    text: `Copies of live GET and HEAD requests go to ${to}; its answers are thrown away and users keep getting ${cur.active}'s.`,
    ok: `Mirror to ${to}`,
    input: { label: "percent", value: "10" },
  });
  if (!answer) return;
  await run("Mirror", "PUT", path, { to, percent: Number(answer.value) });
}

function openSplit(svc) {
  const cur = state.status.services[svc];
  const pools = Object.keys(cur.pools);
  const weights = {};
  for (const p of pools) weights[p] = cur.split ? (cur.split[p] || 0) : (p === cur.active ? 90 : 0);
  if (!cur.split && pools.length === 2) weights[pools.find((p) => p !== cur.active)] = 10;
  const rows = $("split-rows");
  rows.replaceChildren(...pools.map((p) => {
    const out = el("output", { text: `${weights[p]}` });
    const input = el("input", { type: "range", min: "0", max: "100", step: "1", value: String(weights[p]), colour: colourOf(p), "aria-label": `weight of ${p}` });
    input.addEventListener("input", () => { weights[p] = Number(input.value); out.textContent = input.value; });
    return el("div", { class: "split-row" }, el("span", { class: "pill", colour: colourOf(p), text: p }), input, out);
  }));
  $("split-title").textContent = `Split ${svc}`;
  const dialog = $("split");
  const cleanup = () => {
    dialog.removeEventListener("submit", onSubmit);
    $("split-cancel").removeEventListener("click", onCancel);
  };
  const onCancel = () => { cleanup(); dialog.close(); };
  const onSubmit = async (ev) => {
    ev.preventDefault();
    cleanup();
    dialog.close();
    const total = Object.values(weights).reduce((a, b) => a + b, 0);
    if (total === 0) { toast("A split needs at least one pool with a weight above 0.", "bad"); return; }
    const text = Object.entries(weights).filter(([, w]) => w > 0)
      .map(([p, w]) => `${p} ${Math.round((100 * w) / total)}%`).join(", ");
    const sticky = $("split-sticky").checked;
    const answer = await confirmAction({
      title: `Split ${svc}?`,
      text: `New requests: ${text}.${sticky ? " Each client stays on the pool it first got." : ""}`,
      ok: "Split",
    });
    if (!answer) return;
    await run("Split", "PUT", `/services/${encodeURIComponent(svc)}/split`, { ...weights, sticky });
  };
  dialog.addEventListener("submit", onSubmit);
  $("split-cancel").addEventListener("click", onCancel);
  dialog.showModal();
}
