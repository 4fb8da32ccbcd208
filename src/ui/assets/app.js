// snap ui: the page over the JSON API (docs/ui.md). Plain JS, no build
// step; the only library is uPlot (vendor/uplot, 1.6.32 from npm).
// Routes are URL fragments: #/ (sessions and metric curves),
// #/snapshot/REV, #/diff/A/B, #/storage.
"use strict";

const view = document.getElementById("view");
const statusLine = document.getElementById("status");
const tooltip = document.getElementById("tooltip");
const COLORS = ["#2f6fdb", "#e8710a", "#1e8e3e", "#c0392b", "#8e44ad", "#00838f",
  "#b8860b", "#d81b60", "#5d6d7e", "#6d4c41"];

// ---- helpers ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path) {
  const t0 = performance.now();
  const res = await fetch("/api/" + path);
  const body = await res.json();
  statusLine.textContent = `/api/${path.split("?")[0]}: ${Math.round(performance.now() - t0)} ms`;
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
}

function num(v) {
  if (v === null || v === undefined) return "-";
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(5));
}

function duration(s) {
  if (!(s > 0)) return "-";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function time(ns) {
  return new Date(ns / 1e6).toLocaleString();
}

const short = (hex) => (hex || "").slice(0, 8);
const snapLink = (hex, text) => el("a", { href: "#/snapshot/" + hex, class: "mono" }, text || short(hex));
const sessionName = (s) => (s === null || s === undefined ? "(no session)" : s);

function showError(err) {
  view.replaceChildren(el("p", { class: "error" }, String(err.message || err)));
}

// A table whose headers sort it. columns: {title, key(row) -> sort value,
// cell(row) -> node or text, num}.
function sortableTable(id, columns, rows) {
  let sortBy = -1;
  let asc = true;
  const tbody = el("tbody");
  const ths = columns.map((c, i) => el("th", {
    class: "sortable" + (c.num ? " num" : ""),
    onclick: () => {
      asc = sortBy === i ? !asc : true;
      sortBy = i;
      ths.forEach((t, j) => t.classList.toggle("sorted-asc", j === i && asc));
      ths.forEach((t, j) => t.classList.toggle("sorted-desc", j === i && !asc));
      render();
    },
  }, c.title));
  function render() {
    const sorted = rows.slice();
    if (sortBy >= 0) {
      const key = columns[sortBy].key;
      sorted.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * (asc ? 1 : -1);
      });
    }
    tbody.replaceChildren(...sorted.map((r) => el("tr", {},
      columns.map((c) => el("td", { class: c.num ? "num" : (c.wrap ? "wrap" : null) }, c.cell(r))))));
  }
  render();
  return el("table", { id }, el("thead", {}, el("tr", {}, ths)), tbody);
}

// ---- sessions and metric curves ----------------------------------------------

async function sessionsView() {
  const [s, m] = await Promise.all([api("sessions"), api("metrics")]);
  const metricNames = m.metrics;
  const cols = [
    { title: "Session", key: (r) => sessionName(r.session), cell: (r) => snapLink(r.last_snapshot, sessionName(r.session)) },
    { title: "Outcome", key: (r) => r.outcome, cell: (r) => outcomeCell(r.outcome) },
    { title: "Snapshots", num: true, key: (r) => r.snapshots, cell: (r) => r.snapshots },
    { title: "Epochs", num: true, key: (r) => r.epochs, cell: (r) => r.epochs || "-" },
    ...metricNames.map((name) => ({
      title: `best ${name} (${m.directions[name]})`,
      num: true,
      key: (r) => (r.best[name] ? r.best[name].value : null),
      cell: (r) => (r.best[name] ? snapLink(r.best[name].snapshot, num(r.best[name].value)) : "-"),
    })),
    { title: "Started", key: (r) => r.start_ns, cell: (r) => time(r.start_ns) },
    { title: "Duration", num: true, key: (r) => r.duration_s, cell: (r) => duration(r.duration_s) },
    { title: "Size", num: true, key: (r) => r.logical_bytes, cell: (r) => bytes(r.logical_bytes) },
    { title: "New stored", num: true, key: (r) => r.new_stored_bytes, cell: (r) => bytes(r.new_stored_bytes) },
    { title: "Tags", key: (r) => r.tags.join(","), cell: (r) => r.tags.map((t) => el("span", { class: "tag" }, t)), wrap: true },
  ];
  const parts = [el("h2", {}, `Sessions (${s.sessions.length})`)];
  parts.push(s.sessions.length
    ? sortableTable("sessions-table", cols, s.sessions)
    : el("p", { class: "muted" }, "No snapshots yet: `snap run -- python train.py` or `snap commit` makes some."));
  parts.push(el("h2", {}, "Metrics"));
  const charts = el("div", { class: "charts", id: "charts" });
  parts.push(metricNames.length ? charts : el("p", { class: "muted" }, "No snapshot carries metrics."));
  view.replaceChildren(...parts);
  for (const name of metricNames) charts.append(metricChart(name, m));
}

function outcomeCell(o) {
  if (!o) return "-";
  return el("span", { class: o === "success" || o === "exited 0" ? "outcome-ok" : (/fail|crash|signal|killed|error/.test(o) ? "outcome-bad" : null) }, o);
}

// One chart of `name`, one line per session. x is the epoch where snapshots
// have one, else the step, else the snapshot's order in its session.
function metricChart(name, m) {
  const rows = m.rows.filter((r) => r.metrics[name] !== undefined && Number.isFinite(r.metrics[name]));
  const useEpoch = rows.every((r) => r.epoch !== null);
  const useStep = !useEpoch && rows.every((r) => r.step !== null);
  const xLabel = useEpoch ? "epoch" : useStep ? "step" : "snapshot #";
  const bySession = new Map();
  for (const r of rows) {
    const key = sessionName(r.session);
    if (!bySession.has(key)) bySession.set(key, []);
    const list = bySession.get(key);
    const x = useEpoch ? r.epoch : useStep ? r.step : list.length + 1;
    list.push({ x, row: r });
  }
  const xs = [...new Set([...bySession.values()].flat().map((p) => p.x))].sort((a, b) => a - b);
  const xi = new Map(xs.map((x, i) => [x, i]));
  const names = [...bySession.keys()];
  // points[s][i]: the row of session s at xs[i] (the latest one at that x).
  const points = names.map((n) => {
    const at = new Array(xs.length).fill(null);
    for (const p of bySession.get(n)) at[xi.get(p.x)] = p.row;
    return at;
  });
  const data = [xs, ...points.map((at) => at.map((r) => (r ? r.metrics[name] : null)))];
  const box = el("div", { class: "chart", "data-metric": name, "data-series": names.length },
    el("h3", {}, `${name} `, el("span", { class: "muted" }, `(${m.directions[name]} is better, by ${xLabel})`)));
  const opts = {
    width: 480,
    height: 260,
    scales: { x: { time: false } },
    // Epochs and steps are whole numbers: ticks only on them.
    axes: [{ label: xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7] }, {}],
    cursor: { focus: { prox: 24 }, points: { size: 8 } },
    focus: { alpha: 0.35 },
    series: [{ label: xLabel }, ...names.map((n, i) => ({
      label: n,
      stroke: COLORS[i % COLORS.length],
      width: 2,
      spanGaps: true,
      points: { show: true, size: 5 },
    }))],
    hooks: {
      setCursor: [(u) => hover(u, points, name, names)],
    },
  };
  // uPlot measures its container, so it is made once the box is in the page.
  requestAnimationFrame(() => {
    // As wide as its grid cell (less the box's padding).
    opts.width = Math.max(320, box.clientWidth - 16);
    const u = new uPlot(opts, data, box);
    box.uplot = u; // for tests/browser: the points' positions
    u.over.addEventListener("mouseleave", () => { tooltip.hidden = true; });
    u.over.addEventListener("click", () => {
      const hit = nearest(u, points);
      if (hit && !hit.forgotten) location.hash = "#/snapshot/" + hit.snapshot;
    });
  });
  return box;
}

// The row of the series nearest the cursor at the cursor's x.
function nearest(u, points) {
  const idx = u.cursor.idx;
  if (idx === null || idx === undefined) return null;
  let best = null;
  let bestD = Infinity;
  points.forEach((at, s) => {
    const r = at[idx];
    if (!r || u.series[s + 1].show === false) return;
    const d = Math.abs(u.valToPos(u.data[s + 1][idx], "y") - u.cursor.top);
    if (d < bestD) { bestD = d; best = r; }
  });
  return best;
}

function hover(u, points, name, names) {
  const r = nearest(u, points);
  if (!r) { tooltip.hidden = true; return; }
  const rect = u.over.getBoundingClientRect();
  tooltip.replaceChildren(
    el("div", {}, el("b", {}, sessionName(r.session)), r.epoch !== null ? ` epoch ${r.epoch}` : "", r.step !== null ? ` step ${r.step}` : ""),
    el("div", {}, `${name} = ${num(r.metrics[name])}`),
    el("div", { class: "mono" }, `snapshot ${short(r.snapshot)}`),
    el("div", {}, r.forgotten ? "forgotten by retention (cannot be opened)" : "click to open"));
  tooltip.style.left = Math.min(window.innerWidth - 300, rect.left + u.cursor.left + 14) + "px";
  tooltip.style.top = rect.top + u.cursor.top + 14 + "px";
  tooltip.hidden = false;
  void names;
}

// ---- one snapshot -------------------------------------------------------------

async function snapshotView(rev) {
  const d = await api("snapshot/" + encodeURIComponent(rev));
  const s = d.snapshot;
  const meta = [
    ["id", el("span", { class: "mono" }, s.id)],
    ["time", time(s.time_ns)],
    ["session", sessionName(s.session)],
    ["epoch", s.epoch ?? "-"],
    ["step", s.step ?? "-"],
    ["metrics", Object.entries(s.metrics).map(([k, v]) => `${k}=${num(v)}`).join("  ") || "-"],
    ["tags", s.tags.length ? s.tags.map((t) => el("span", { class: "tag" }, t)) : "-"],
    ["message", s.message || "-"],
    ["parent", s.parent ? snapLink(s.parent) : "-"],
    ["host", `${s.host}  ${s.workspace}`],
    ["contents", `${s.summary.files} files, ${bytes(s.summary.logical_bytes)}; new data ${bytes(s.summary.new_raw_bytes)} (${bytes(s.summary.new_stored_bytes)} stored)`],
    ...Object.entries(s.labels).map(([k, v]) => [k, v]),
  ];
  const cmd = el("code", { id: "restore-cmd" }, d.restore);
  const copy = el("button", {
    onclick: async () => {
      try { await navigator.clipboard.writeText(d.restore); copy.textContent = "copied"; } catch (_) {
        getSelection().selectAllChildren(cmd);
        copy.textContent = "selected: press Ctrl-C";
      }
    },
  }, "copy");
  const files = d.files.filter((f) => f.kind === "file");
  const tensorBox = el("div", { id: "tensors" });
  const fileCols = [
    { title: "Path", key: (f) => f.path, cell: (f) => el("span", { class: "mono" }, f.path) },
    { title: "Size", num: true, key: (f) => f.size, cell: (f) => bytes(f.size) },
    { title: "Stored", num: true, key: (f) => f.stored_bytes, cell: (f) => bytes(f.stored_bytes) },
    { title: "Chunks", num: true, key: (f) => f.chunks, cell: (f) => f.chunks },
    { title: "Codecs", key: (f) => (f.codecs || []).map((c) => c.codec).join(","), wrap: true,
      cell: (f) => (f.codecs || []).map((c) => `${c.codec} ×${c.chunks}`).join(", ") + (f.missing_chunks ? ` (${f.missing_chunks} chunks not found)` : "") },
    { title: "Tensors", num: true, key: (f) => (f.tensors ? f.tensors.count : null),
      cell: (f) => (f.tensors ? el("button", { class: "tensors", onclick: () => showTensors(s.id, f.path, tensorBox) }, `${f.tensors.count} (${bytes(f.tensors.bytes)})`) : "") },
  ];
  const other = el("input", { type: "text", id: "diff-other", placeholder: "REV: id, tag, latest, SESSION@EPOCH" });
  const diffBox = el("div", { id: "diff" });
  view.replaceChildren(
    el("h2", {}, "Snapshot ", el("span", { class: "mono" }, short(s.id))),
    el("dl", { class: "meta" }, meta.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("div", { class: "restore" }, "Restore:", cmd, copy),
    el("h2", {}, `Files (${files.length})`),
    files.length ? sortableTable("files", fileCols, files) : el("p", { class: "muted" }, "No files."),
    tensorBox,
    el("h2", {}, "Diff"),
    el("div", { class: "restore" },
      s.parent ? el("button", { id: "diff-parent", onclick: () => showDiff(s.parent, s.id, diffBox) }, "against parent") : el("span", { class: "muted" }, "no parent"),
      "or against", other,
      el("button", { onclick: () => other.value && showDiff(other.value, s.id, diffBox) }, "diff")),
    diffBox);
  if (s.parent) showDiff(s.parent, s.id, diffBox);
}

async function showTensors(id, path, box) {
  box.replaceChildren(el("p", { class: "muted" }, "Reading tensors…"));
  try {
    const t = await api(`snapshot/${id}/tensors?path=${encodeURIComponent(path)}`);
    if (!t.tensors) { box.replaceChildren(el("p", { class: "muted" }, `${path} is not a checkpoint snap can read.`)); return; }
    box.replaceChildren(el("h3", {}, `Tensors of ${path} (${t.tensors.length})`),
      sortableTable("tensor-table", [
        { title: "Name", key: (x) => x.name, cell: (x) => el("span", { class: "mono" }, x.name) },
        { title: "Dtype", key: (x) => x.dtype, cell: (x) => x.dtype },
        { title: "Shape", key: (x) => x.shape.length, cell: (x) => "[" + x.shape.join(", ") + "]" },
        { title: "Bytes", num: true, key: (x) => x.bytes, cell: (x) => bytes(x.bytes) },
      ], t.tensors));
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

async function showDiff(a, b, box) {
  box.replaceChildren(el("p", { class: "muted" }, "Comparing…"));
  try {
    const r = await api(`diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    box.replaceChildren(renderDiff(r));
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

function renderDiff(r) {
  const d = r.diff;
  const rows = [];
  const size = (c) => (c.old_size !== null && c.new_size !== null ? `${bytes(c.old_size)} → ${bytes(c.new_size)}` : bytes(c.new_size ?? c.old_size));
  for (const c of d.added) rows.push(el("tr", {}, el("td", { class: "added" }, "added"), el("td", { class: "mono" }, c.path), el("td", {}, size(c)), el("td", {}, "")));
  for (const c of d.removed) rows.push(el("tr", {}, el("td", { class: "removed" }, "removed"), el("td", { class: "mono" }, c.path), el("td", {}, size(c)), el("td", {}, "")));
  for (const c of d.changed) {
    rows.push(el("tr", {}, el("td", { class: "changed" }, "changed"), el("td", { class: "mono" }, c.path), el("td", {}, size(c)), el("td", { class: "wrap" }, (c.what || []).join(", "), tensorSummary(c.tensors))));
    // A checkpoint's tensors say more than "binary, sizes".
    const inside = c.tensors && c.content && c.content.kind === "binary" ? null : contentNode(c.content);
    if (inside) rows.push(el("tr", { class: "content" }, el("td", {}, ""), el("td", { colspan: 3, class: "wrap" }, inside)));
  }
  const head = el("p", {}, "From ", snapLink(r.a), " to ", snapLink(r.b), `: ${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed`);
  if (!rows.length) return el("div", {}, head, el("p", { class: "muted" }, "No differences."));
  return el("div", {}, head, el("table", { id: "diff-table" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "path"), el("th", {}, "size"), el("th", {}, "what"))),
    el("tbody", {}, rows)));
}

function tensorSummary(t) {
  if (!t) return "";
  const parts = [];
  if (t.changed.length) parts.push(`tensors changed: ${t.changed.map((x) => x.name).join(", ")}`);
  if (t.added.length) parts.push(`added: ${t.added.map((x) => x.name).join(", ")}`);
  if (t.removed.length) parts.push(`removed: ${t.removed.map((x) => x.name).join(", ")}`);
  parts.push(`${t.unchanged} unchanged`);
  return el("div", { class: "muted" }, parts.join("; "));
}

// What changed inside a file (/api/diff's "content"): config keys as
// `snap diff` prints them, a unified diff for other text, sizes otherwise.
function contentNode(c) {
  if (!c) return null;
  if (c.kind === "keys") {
    const fmt = c.format.toUpperCase();
    if (!c.lines.length) return el("p", { class: "muted" }, `${fmt}: same keys and values (only formatting differs)`);
    return el("div", { class: "keys" },
      el("div", { class: "muted" }, `${fmt}, by key (${c.lines.length} changed)`),
      el("ul", { class: "mono" }, c.lines.map((line, i) => el("li", { class: c.changes[i].change }, line))));
  }
  if (c.kind === "text") {
    const lines = c.unified.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    const cls = (l) => (l.startsWith("+++") || l.startsWith("---") ? "hdr" : l.startsWith("@@") ? "hunk"
      : l.startsWith("+") ? "added" : l.startsWith("-") ? "removed" : null);
    return el("div", {},
      c.note ? el("p", { class: "muted" }, c.note) : null,
      el("pre", { class: "unified" }, lines.map((l) => el("span", { class: cls(l) }, l + "\n"))),
      c.truncated_lines ? el("p", { class: "muted" }, `… ${c.truncated_lines} more lines (snap diff shows them all)`) : null);
  }
  if (c.kind === "binary") return el("span", { class: "muted" }, `binary, ${bytes(c.old_size)} → ${bytes(c.new_size)}`);
  if (c.kind === "too_large") return el("span", { class: "muted" }, `text over ${bytes(c.limit)}, not compared line by line`);
  return null;
}

// ---- storage ------------------------------------------------------------------

async function storageView() {
  const s = await api("storage");
  const max = Math.max(1, ...s.sessions.map((r) => r.logical_bytes));
  const bar = (n, cls) => el("span", { class: "bar " + cls, style: `width:${Math.max(1, Math.round((n / max) * 240))}px` });
  const st = s.repository;
  const p = s.prune;
  view.replaceChildren(
    el("h2", {}, "Repository"),
    el("dl", { class: "meta", id: "repo-stats" },
      el("dt", {}, "snapshots"), el("dd", {}, `${st.snapshots} in ${st.sessions} sessions, ${st.tags} tags; ${s.forgotten_snapshots} forgotten by retention`),
      el("dt", {}, "logical"), el("dd", {}, `${bytes(st.logical_bytes)} (all snapshots' files added up)`),
      el("dt", {}, "unique"), el("dd", {}, `${bytes(st.unique_bytes)} after dedup (${st.dedup_ratio.toFixed(1)}×)`),
      el("dt", {}, "stored"), el("dd", {}, `${bytes(st.stored_bytes)} in ${st.packs} packs (${st.total_ratio.toFixed(1)}× smaller than logical)`),
      el("dt", {}, "prune would free"), el("dd", { id: "prune" }, p.error ? el("span", { class: "error" }, p.error)
        : `${bytes(p.reclaimable_bytes)} (${p.delete.length} unused packs, ${p.repack.length} to repack copying ${bytes(p.bytes_copied)}); ${bytes(p.bytes_freed_now)} of marked packs can be deleted now, ${p.waiting} wait for their grace period`)),
    el("h2", {}, "Per session: logical vs stored"),
    sortableTable("storage-table", [
      { title: "Session", key: (r) => sessionName(r.session), cell: (r) => sessionName(r.session) },
      { title: "Snapshots", num: true, key: (r) => r.snapshots, cell: (r) => r.snapshots },
      { title: "Logical", num: true, key: (r) => r.logical_bytes, cell: (r) => bytes(r.logical_bytes) },
      { title: "New stored", num: true, key: (r) => r.new_stored_bytes, cell: (r) => bytes(r.new_stored_bytes) },
      { title: "", key: (r) => r.logical_bytes, cell: (r) => el("span", {}, bar(r.logical_bytes, ""), el("br"), bar(r.new_stored_bytes, "stored")) },
    ], s.sessions),
    el("p", { class: "muted" }, "Logical: the sizes of every snapshot's files added up (what copies would cost). New stored: the compressed bytes the session's commits added to the store."));
}

// ---- routing --------------------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/");
  document.getElementById("nav-sessions").classList.toggle("active", page === "");
  document.getElementById("nav-storage").classList.toggle("active", page === "storage");
  tooltip.hidden = true;
  // The harness (tests/browser) waits for these to name the new view.
  delete document.body.dataset.rendered;
  delete document.body.dataset.renderedAt;
  delete document.body.dataset.view;
  const t0 = performance.now();
  try {
    if (page === "snapshot" && rest.length) await snapshotView(decodeURIComponent(rest.join("/")));
    else if (page === "storage") await storageView();
    else await sessionsView();
  } catch (e) {
    showError(e);
  }
  // Charts are drawn on the next animation frame (metricChart); wait for it.
  await new Promise((r) => requestAnimationFrame(r));
  // The harness (tests/browser) reads how long a view took to render.
  const t1 = performance.now();
  document.body.dataset.rendered = String(Math.round(t1 - t0));
  // Since the navigation started (the page load included), for benches/ui.sh.
  document.body.dataset.renderedAt = String(Math.round(t1));
  document.body.dataset.view = page || "sessions";
}

window.addEventListener("hashchange", route);
route();
