// operando live view: one page over the read-only API (see display/app.py).
"use strict";

const $ = (id) => document.getElementById(id);
const PATTERN_PERIOD_MS = 10000; // the summed pattern is redrawn at most this often on new data
const PUSH_WAIT_MS = 500;      // a new row's slice is asked for if not pushed within this
const TRACE_PERIOD_MS = 2000;   // the V/I trace likewise
const PROGRESS_PERIOD_MS = 2000; // the lag and time left in the header likewise
const GL_POINTS = 20000;        // above this many readings the trace is drawn with WebGL
const view = {
  snapshot: null,
  run: null,          // selected run's uid
  followLatest: true, // until the user picks a run, follow the newest one
  axes: null,
  axesOf: null,
  q: 0,
  map: "",            // "" for the slice at q, else a map "<group>/<map>" of the run's file
  units: "counts/mm", // of the image shown
  region: null,       // [r0, r1, c0, c1] of the pattern, or null for the whole slice
  askedVersion: -1,   // the run's data_version when the slice was last asked for
  shownProjections: -1, // rows in the slice shown
  pushedAt: -1e9,     // performance.now() of the last slice pushed for this page's view
  shownStatus: null,
  patternAt: 0,       // performance.now() of the last pattern drawn
  renders: 0,
  trace: { exp: null, next: 0, t: [], v: [], i: [], transitions: [], windows: [] },
  traceAt: 0,
  renderLog: [],      // {run, q, projections, t (epoch s)} of the latest slices drawn
  received: { snapshots: 0, pushed: 0, fetched: 0, patterns: 0 }, // messages and requests
};
view.pageId = Math.random().toString(36).slice(2, 14); // names this page's view to the server
window.operandoView = view; // for measuring the page (benchmarks/bench_display.py)

// one request of a kind at a time; asked again while busy, it runs once more after
const busy = {};
function latest(key, fn) {
  if (busy[key]) { busy[key] = "again"; return; }
  busy[key] = true;
  fn().catch((e) => console.warn(key, e.message)).finally(() => {
    const again = busy[key] === "again";
    busy[key] = false;
    if (again) latest(key, fn);
  });
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

async function getImage(url) {
  view.received.fetched++;
  const r = await fetch(url);
  if (!r.ok) return null;
  const shape = r.headers.get("X-Shape").split(",").map(Number);
  return {
    shape, values: new Float32Array(await r.arrayBuffer()),
    version: Number(r.headers.get("X-Version")), projections: Number(r.headers.get("X-Projections")),
    units: r.headers.get("X-Units"),
  };
}

function limits(values) {
  const f = values.filter(Number.isFinite).sort(); // a Float32Array: sorted as numbers
  if (!f.length) return [0, 1];
  const at = (p) => f[Math.min(f.length - 1, Math.max(0, Math.round((p / 100) * (f.length - 1))))];
  const lo = at(Number($("lo").value)), hi = at(Number($("hi").value));
  return hi > lo ? [lo, hi] : [lo, lo + 1e-9];
}

function selectedRun() {
  return view.snapshot ? view.snapshot.runs.find((r) => r.uid === view.run) : null;
}

function qText() {
  return view.axes ? `${view.axes.q[view.q].toFixed(4)} Å⁻¹` : "–";
}

function renderRuns() {
  const ul = $("runs");
  const runs = view.snapshot.runs;
  const status = (r) => (r.status === "running" ? `${r.rows}/${r.n_rows}` : r.status);
  const key = view.run + runs.map((r) => `${r.uid}:${r.status}:${r.rows}`).join();
  if (key === view.runsKey) return;
  const listed = view.run + runs.map((r) => r.uid).join();
  view.runsKey = key;
  if (listed === view.runsListed) { // the same runs: only their status changed
    runs.forEach((r, k) => {
      const el = ul.children[k].querySelector(".status");
      if (el.textContent !== status(r)) el.textContent = status(r);
    });
    return;
  }
  view.runsListed = listed;
  ul.replaceChildren(...runs.map((r) => {
    const li = document.createElement("li");
    li.dataset.uid = r.uid;
    li.className = r.uid === view.run ? "selected" : "";
    li.innerHTML = `<span class="stem"></span><span class="status"></span>`;
    li.querySelector(".stem").textContent = r.stem.split("_")[0];
    li.querySelector(".status").textContent = status(r);
    li.title = r.stem;
    li.onclick = () => { view.followLatest = false; selectRun(r.uid); };
    return li;
  }));
}

// the header's text: at once for a new row or status, else (lag, time left) at most
// every PROGRESS_PERIOD_MS: each change is a new frame for the browser
function renderProgress() {
  const s = view.snapshot, run = selectedRun();
  const key = run ? `${run.uid}:${run.rows}:${run.status}` : "";
  if (key === view.progressKey && performance.now() - view.progressAt < PROGRESS_PERIOD_MS) {
    view.progressTimer ??= setTimeout(() => { view.progressTimer = null; view.progressAt = 0; renderProgress(); },
                                      PROGRESS_PERIOD_MS); // the latest, a little later
    return;
  }
  view.progressKey = key;
  view.progressAt = performance.now();
  const c = s.counters;
  let text = run ? `${run.stem.split("_")[0]}: row ${run.rows} of ${run.n_rows}` : "no run yet";
  if (run && run.eta_s != null) text += ` · about ${Math.ceil(run.eta_s)} s left`;
  if (run && run.status !== "running") text += ` · ${run.status}`;
  text += ` · lag ${c.frames_behind} frames · missing ${run ? run.missing : 0} · errors ${c.errors}`;
  const el = $("progress"), rows = String(run ? run.rows : 0);
  if (el.textContent !== text) el.textContent = text; // unchanged: no layout, no paint
  if (el.dataset.rows !== rows) el.dataset.rows = rows;
}

async function selectRun(uid) {
  view.run = uid;
  view.region = null;
  view.askedVersion = -1;
  view.shownProjections = -1;
  view.shownStatus = null;
  renderRuns();
  renderProgress();
  refreshTrace(true);
  try {
    await loadAxes();
    refreshData();
  } catch (e) {
    console.warn("run not readable yet:", e.message); // the next update tries again
  }
}

async function loadAxes() {
  const axes = await getJSON(`/api/run/${view.run}/axes`);
  const first = !view.axes || view.axes.q.length !== axes.q.length;
  view.axes = axes;
  view.axesOf = view.run;
  const qc = $("q-control");
  qc.max = axes.q.length - 1;
  if (first) view.q = axes.default_q;
  qc.value = view.q;
  $("q-value").textContent = qText();
  const mc = $("map-control");
  const names = (axes.maps || []).map((m) => m.name);
  if (view.map && !names.includes(view.map)) view.map = "";
  const key = names.join();
  if (mc.dataset.key !== key) {
    mc.dataset.key = key;
    const first = document.createElement("option");
    first.value = ""; first.textContent = "slice at q";
    mc.replaceChildren(first, ...(axes.maps || []).map((m) => {
      const o = document.createElement("option");
      o.value = m.name; o.textContent = `${m.name.replace("/", " · ")}${m.units ? ` (${m.units})` : ""}`;
      return o;
    }));
  }
  mc.value = view.map;
}

// everything at once (a new run, q, colours); on data alone, each at its own pace
function refreshData() {
  if (!view.run || view.axesOf !== view.run) return;
  latest("images", drawImages);
  latest("pattern", drawPattern);
}

// the pattern's marker of the q shown
async function moveMarker() {
  const el = $("pattern"), q = view.axes && view.axes.q[view.q];
  if (q === undefined || !el.layout || !el.layout.shapes || !el.layout.shapes.length) return;
  await Plotly.relayout(el, { "shapes[0].x0": q, "shapes[0].x1": q });
}

function onNewData(run, late = false) {
  if (view.axesOf !== view.run) return;
  const statusChanged = run.status !== view.shownStatus;
  if (statusChanged && view.shownStatus !== null) latest("axes", loadAxes); // the run's file: its maps
  view.shownStatus = run.status;
  // the slice and the sinogram on every new row, the pattern at its own pace; asked
  // again on the run's next change while the slice shown is older than the run
  const behind = run.projections > view.shownProjections && run.data_version !== view.askedVersion;
  if (!late && behind && !statusChanged && !view.map && performance.now() - view.pushedAt < PUSH_WAIT_MS * 4) {
    // this page's slices come pushed: ask only if the row's has not come in a while
    clearTimeout(view.fallback);
    view.fallback = setTimeout(() => onNewData(selectedRun() || run, true), PUSH_WAIT_MS);
    return;
  }
  if (behind || statusChanged) {
    view.askedVersion = run.data_version;
    latest("images", drawImages);
    if (performance.now() - view.patternAt > PATTERN_PERIOD_MS || statusChanged) {
      latest("pattern", drawPattern);
    }
  }
}

// slice (or map) and sinogram fetched together and painted in the same task: one new
// frame for the browser to composite per row, not one per image
async function drawImages() {
  const [slice, sinogram] = await Promise.all([fetchSlice(), fetchSinogram()]);
  if (slice) slice();
  if (sinogram) sinogram();
}

async function fetchSlice() {
  const run = view.run, q = view.q, map = view.map, page = `page=${view.pageId}`;
  const url = map ? `/api/run/${run}/map?name=${encodeURIComponent(map)}&${page}` : `/api/run/${run}/slice?q=${q}&${page}`;
  const img = await getImage(url);
  return img && (() => paintSlice(img, run, q, map));
}

async function fetchSinogram() {
  const run = view.run, q = view.q;
  const img = await getImage(`/api/run/${run}/sinogram?q=${q}`);
  return img && (() => paintSinogram(img, run, q));
}

function paintSlice(img, run, q, map) {
  if (run !== view.run || map !== view.map) return;
  const [lo, hi] = limits(img.values);
  view.units = map ? img.units || "" : "counts/mm";
  const title = map ? `${map.replace("/", " · ")} (${view.units})` : `slice at q = ${qText()} · ${img.projections} projections`;
  view.sliceView.draw(img, { x: view.axes.x, y: view.axes.y, lo, hi, cmap: $("cmap").value, title, units: view.units });
  view.shownProjections = map ? (selectedRun() || { projections: 0 }).projections : img.projections;
  const el = $("slice");
  el.dataset.run = run;
  el.dataset.version = img.version;
  el.dataset.projections = img.projections;
  el.dataset.q = q;
  el.dataset.map = map;
  el.dataset.renders = ++view.renders;
  view.renderLog.push({ run, q, map, projections: img.projections, t: Date.now() / 1000 });
  if (view.renderLog.length > 2000) view.renderLog.shift();
}

function paintSinogram(img, run, q) {
  if (run !== view.run || q !== view.q || !view.axes.angle) return;
  const [lo, hi] = limits(img.values);
  view.sinogramView.draw(img, { x: view.axes.translation, y: view.axes.angle, lo, hi, cmap: $("cmap").value,
                                title: `sinogram so far at q = ${qText()}`, units: "" });
  $("sinogram").dataset.q = q;
}

// a running scan's new row, pushed for this page's view: [uint32 n][n bytes JSON][slice][sinogram]
function onPushed(buffer) {
  view.received.pushed++;
  const n = new DataView(buffer).getUint32(0, true);
  const h = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  if (h.run !== view.run || h.q !== view.q || view.map || view.axesOf !== view.run) return;
  if (h.projections <= view.shownProjections || busy.images) return; // a fetch is under way
  const size = (shape) => shape[0] * shape[1];
  const slice = new Float32Array(buffer, 4 + n, size(h.slice));
  const sinogram = new Float32Array(buffer, 4 + n + 4 * size(h.slice), size(h.sinogram));
  view.pushedAt = performance.now();
  const base = { version: -1, projections: h.projections, units: null };
  paintSlice({ ...base, shape: h.slice, values: slice }, h.run, h.q, "");
  paintSinogram({ ...base, shape: h.sinogram, values: sinogram }, h.run, h.q);
}

async function drawPattern() {
  view.received.patterns++;
  const run = view.run, a = view.axes;
  view.patternAt = performance.now();
  const [r0, r1, c0, c1] = view.region || a.region;
  const p = await getJSON(`/api/run/${run}/pattern?r0=${r0}&r1=${r1}&c0=${c0}&c1=${c1}`);
  if (run !== view.run) return;
  const traces = [{ type: "scatter", mode: "lines", x: a.q, y: p.mean, name: "pattern",
                    line: { color: "#1d2b3a", width: 1.5 } }];
  for (const [phase, lines] of Object.entries(a.reflections)) {
    const x = [], y = [];
    for (const q of lines) { x.push(q, q, null); y.push(0, 0.06, null); }
    traces.push({ type: "scatter", mode: "lines", x, y, yaxis: "y2", name: phase, hoverinfo: "name+x" });
  }
  const whole = r0 === 0 && c0 === 0 && r1 === a.y.length - 1 && c1 === a.x.length - 1;
  const what = whole ? "the whole slice" : r0 === r1 && c0 === c1 ? `voxel (${r0}, ${c0})` : `rows ${r0}–${r1}, columns ${c0}–${c1}`;
  await Plotly.react("pattern", traces, {
    title: { text: `mean pattern of ${what}`, font: { size: 13 } },
    margin: { l: 50, r: 10, t: 30, b: 40 }, legend: { orientation: "h", y: -0.25 },
    datarevision: Date.now(),
    xaxis: { title: { text: "q (Å⁻¹)" }, autorange: true }, yaxis: { title: { text: "counts/mm" }, autorange: true },
    yaxis2: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true },
    shapes: [{ type: "line", xref: "x", yref: "paper", x0: a.q[view.q], x1: a.q[view.q], y0: 0, y1: 1,
               line: { color: "#d33", dash: "dot" } }],
  }, { displaylogo: false, responsive: true });
}

function refreshTrace(reset) {
  const run = selectedRun();
  if (!run) return;
  const t = view.trace;
  if (reset || t.exp !== run.experiment) {
    Object.assign(t, { exp: run.experiment, next: 0, t: [], v: [], i: [] });
  }
  latest("trace", async () => {
    const d = await getJSON(`/api/trace/${encodeURIComponent(t.exp)}?since=${t.next}`);
    if (d.since !== t.next) { t.t = []; t.v = []; t.i = []; }
    for (let k = 0; k < d.time.length; k++) {
      t.t.push(new Date(d.time[k] * 1000)); t.v.push(d.voltage[k]); t.i.push(d.current[k] * 1e3);
    }
    t.next = d.next; t.transitions = d.transitions; t.windows = d.windows;
    view.traceAt = performance.now();
    await drawTrace();
  });
}

async function drawTrace() {
  const t = view.trace;
  const now = t.t.length ? t.t[t.t.length - 1] : new Date();
  const shapes = t.windows.map(([start, stop]) => ({
    type: "rect", xref: "x", yref: "paper", y0: 0, y1: 1, layer: "below", line: { width: 0 },
    x0: new Date(start * 1000), x1: stop ? new Date(stop * 1000) : now, fillcolor: "rgba(80,140,230,0.15)",
  }));
  for (const tr of t.transitions) {
    const x = new Date(tr.time * 1000);
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1,
                  line: { color: "rgba(0,0,0,0.35)", dash: "dot", width: 1 } });
  }
  const marks = { type: "scatter", mode: "markers", yaxis: "y3", name: "transitions", showlegend: false,
    x: t.transitions.map((tr) => new Date(tr.time * 1000)), y: t.transitions.map(() => 0.97),
    text: t.transitions.map((tr) => tr.state || tr.reason || "transition"), hoverinfo: "text+x",
    marker: { symbol: "triangle-down", color: "#555", size: 8 } };
  const kind = t.t.length > GL_POINTS ? "scattergl" : "scatter";
  await Plotly.react("vi-plot", [
    { type: kind, mode: "lines", x: t.t, y: t.v, name: "voltage (V)", line: { color: "#c0392b" } },
    { type: kind, mode: "lines", x: t.t, y: t.i, name: "current (mA)", yaxis: "y2", line: { color: "#2471a3" } },
    marks,
  ], {
    title: { text: "cell voltage and current · scans shaded · protocol steps dotted", font: { size: 13 } },
    margin: { l: 50, r: 50, t: 30, b: 40 }, legend: { orientation: "h", y: -0.2 },
    yaxis: { title: { text: "V" } },
    yaxis2: { title: { text: "mA" }, overlaying: "y", side: "right" },
    yaxis3: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true },
    shapes,
  }, { displaylogo: false, responsive: true });
  $("vi-plot").dataset.points = t.t.length;
}

function onSnapshot(s) {
  view.received.snapshots++;
  view.snapshot = s;
  const runs = s.runs;
  if (runs.length && (view.followLatest || !view.run)) {
    const newest = runs[runs.length - 1].uid;
    if (newest !== view.run) { selectRun(newest); return; }
  }
  renderRuns();
  renderProgress();
  const run = selectedRun();
  if (!run) return;
  if (view.axesOf !== view.run) {
    latest("axes", async () => { if (view.axesOf !== view.run) { await loadAxes(); refreshData(); } });
    return;
  }
  onNewData(run);
  const known = s.traces[run.experiment] || 0;
  if (known > view.trace.next && performance.now() - view.traceAt > TRACE_PERIOD_MS) refreshTrace(false);
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?page=${view.pageId}`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (e) => (typeof e.data === "string" ? onSnapshot(JSON.parse(e.data)) : onPushed(e.data));
  ws.onclose = () => setTimeout(connect, 1000);
}

function wire() {
  $("q-control").addEventListener("input", (e) => {
    view.q = Number(e.target.value);
    $("q-value").textContent = qText();
    latest("images", drawImages);
    latest("marker", moveMarker); // the pattern itself is the same at any q
  });
  for (const id of ["cmap", "lo", "hi"]) $(id).addEventListener("input", () => latest("images", drawImages));
  $("map-control").addEventListener("change", (e) => {
    view.map = e.target.value;
    latest("images", drawImages);
  });
  const cursor = (text) => { $("cursor").textContent = text; };
  view.sliceView = new ImageView($("slice"), {
    xLabel: "x (mm)", yLabel: "y (mm)", square: true,
    onHover: (r, c, v) => cursor(`x ${view.axes.x[c].toFixed(3)} mm · y ${view.axes.y[r].toFixed(3)} mm · ${Number.isFinite(v) ? v.toPrecision(5) : "–"} ${view.units}`),
    onPick: (r0, r1, c0, c1) => { view.region = [r0, r1, c0, c1]; latest("pattern", drawPattern); },
  });
  view.sinogramView = new ImageView($("sinogram"), {
    xLabel: "translation (mm)", yLabel: "angle (°)",
    onHover: (r, c, v) => cursor(`translation ${view.axes.translation[c].toFixed(3)} mm · angle ${view.axes.angle[r].toFixed(1)}° · ${Number.isFinite(v) ? v.toPrecision(4) : "–"}`),
  });
  getJSON("/api/state").then(onSnapshot).catch(() => {});
  connect();
}

wire();
