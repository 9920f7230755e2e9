// inkstream live page: draws the ink the server streams, the growing hypothesis under it and the
// final lines; sends pointer input when the server's source is "browser". No build step, no
// network beyond this page's own server. Messages are described in runtime/ui/session.py.
"use strict";

const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 5000;
const PEN_FLUSH_MS = 25;          // pointer samples are sent in small batches
const PING_PERIOD_MS = 2000;      // clock offset to the server, for the latency figure
const INK_COLOR = "#1d2433";
const HIGHLIGHT_COLOR = "#d9480f";
const HIGHLIGHT_SOFT = "#f59f00";
const WRITER_COLORS = ["#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#5c940d"];

// This page's name for the server, kept across reloads and server restarts (sessionStorage: one
// per tab), so what it writes stays one writer's line.
function writerKey() {
  let key = null;
  try { key = sessionStorage.getItem("inkstreamWriter"); } catch (e) { /* storage off: one per load */ }
  if (!key || !/^[A-Za-z0-9_-]{8,64}$/.test(key)) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try { sessionStorage.setItem("inkstreamWriter", key); } catch (e) { /* as above */ }
  }
  return key;
}

function newWriter(id, label, line) {
  return { id, label: label || `writer ${id + 1}`, line: line || 0, rows: [], text: "", chars: [], cells: [] };
}

function writerColor(id) { return WRITER_COLORS[((id % WRITER_COLORS.length) + WRITER_COLORS.length) % WRITER_COLORS.length]; }

const app = {
  ws: null,
  connected: false,
  reconnectDelay: RECONNECT_FIRST_MS,
  reconnects: 0,
  seq: 0,
  penInput: false,
  maxSamplesPerMessage: 512,
  memoryCells: 0,
  key: writerKey(),
  me: null,            // this page's writer id, once it has written
  writers: new Map(),  // id -> {id, label, line, rows: [x, y, t, pen_up_after], text, chars, cells}
  focus: null,         // the writer drawn large when this page has not written: the latest active
  // the current line drawn large: this page's own, else the focused writer's
  get main() {
    return this.writers.get(this.me) || this.writers.get(this.focus) || this.writers.values().next().value ||
      newWriter(-1, "", 0);
  },
  get rows() { return this.main.rows; },
  get text() { return this.main.text; },
  get chars() { return this.main.chars; },   // {c, frame, s0, s1, strokes}
  get cells() { return this.main.cells; },   // {sample, values}
  history: [],         // final lines: {line, writer, label, text, chars, rows, cells?}
  recognitionMs: null, // from a sample reaching the server to the text that includes it
  gradient: null,      // the last gradient answer: {line, num_samples, char, sample, values | error}
  gradientInFlight: false,
  gradientAskedAt: 0,
  highlight: null,     // {line, strokes: Set, s0, s1}
  clockOffsetMs: 0,    // server clock - page clock
  bestRttMs: Infinity,
  bestRttAt: 0,
  latencyMs: null,
  errors: [],          // error messages received from the server
  pendingSamples: [],
  unsentDropped: 0,
  activeStroke: null,  // local echo of the stroke being written
  messagesReceived: 0,
};
window.inkstreamApp = app;  // for curious users and for the browser tests

const $ = (id) => document.getElementById(id);

// ---- connection ---------------------------------------------------------------------------
function connect() {
  setStatus("connecting", "connecting…");
  const ws = new WebSocket(`ws://${location.host}/ws?writer=${app.key}`);
  app.ws = ws;
  ws.onopen = () => {
    app.connected = true;
    app.reconnectDelay = RECONNECT_FIRST_MS;
    setStatus("open", "live");
    sendPing();
  };
  ws.onmessage = (event) => {
    app.messagesReceived += 1;
    handleMessage(JSON.parse(event.data));
  };
  ws.onclose = () => {
    app.connected = false;
    app.gradientInFlight = false;
    showUnsent();
    if (app.ws !== ws) return;
    const delay = app.reconnectDelay;
    app.reconnectDelay = Math.min(app.reconnectDelay * 2, RECONNECT_MAX_MS);  // back off
    setStatus("closed", `disconnected, retrying in ${(delay / 1000).toFixed(1)} s`);
    clearStats();  // figures of a connection that is gone would read as live
    setTimeout(() => { app.reconnects += 1; connect(); }, delay);
  };
}

function send(message) {
  if (app.ws && app.ws.readyState === WebSocket.OPEN) {
    app.ws.send(JSON.stringify(message));
    return true;
  }
  return false;
}

function sendPing() { send({ type: "ping", t: Date.now() }); }

function setStatus(state, text) {
  const el = $("connection");
  el.dataset.state = state;
  el.textContent = text;
}

// ---- messages from the server ---------------------------------------------------------------
function handleMessage(msg) {
  if (msg.type === "hello") return onHello(msg);
  if (msg.type === "pong") {
    // Keep the offset measured with the shortest round trip: a reply that waited in a queue
    // would skew it by half the wait.
    const now = Date.now();
    const rtt = now - msg.t;
    if (rtt <= app.bestRttMs * 1.5 || now - app.bestRttAt > 60000) {
      app.bestRttMs = Math.min(rtt, app.bestRttMs * 1.5);
      app.bestRttAt = now;
      app.clockOffsetMs = msg.server_ms - (msg.t + now) / 2;
    }
    return;
  }
  if (msg.type === "error") {
    if (msg.message.startsWith("gradient:")) app.gradientInFlight = false;
    return showError(msg.message);
  }
  if (msg.type === "gradient") return onGradient(msg);
  if (msg.type === "you") { app.me = msg.writer; return renderAll(); }
  if (msg.seq !== undefined) {
    if (msg.seq <= app.seq) return;  // already part of the snapshot we started from
    app.seq = msg.seq;
  }
  if (msg.type === "update") onUpdate(msg);
  else if (msg.type === "final") onFinal(msg);
  else if (msg.type === "clear") onClear(msg);
  else if (msg.type === "writer") { writerOf(msg.writer, msg.label).line = msg.line; renderOthers(); }
  else if (msg.type === "writer_left") { app.writers.delete(msg.writer); renderOthers(); }
  else if (msg.type === "stats") onStats(msg);
  else if (msg.type === "source") {
    $("source-state").textContent = `source: ${msg.state}`;
    if (msg.state === "failed") showError(`recognition stopped: ${msg.detail}`);
  }
}

function onHello(msg) {
  const s = msg.state;
  app.seq = s.seq;
  app.penInput = msg.pen_input;
  app.memoryCells = msg.memory_cells;
  app.maxSamplesPerMessage = msg.limits.max_samples_per_message;
  app.me = msg.writer;
  app.writers = new Map();
  for (const w of s.writers) {
    app.writers.set(w.writer, { id: w.writer, label: w.label, line: w.line, rows: w.rows, text: w.text,
                                chars: w.chars, cells: w.cells });
  }
  app.history = s.history;
  app.highlight = null;
  $("source-name").textContent = msg.source;
  $("source-state").textContent = `source: ${s.source_state}`;
  if (msg.failure) showError(msg.failure);
  const m = msg.model;
  $("model-info").textContent = `model: ${m.layers}×${m.hidden} LSTM` + (m.val_cer ? `, validation CER ${m.val_cer}` : "");
  $("ink-canvas").classList.toggle("pen-input", app.penInput);
  $("pen-hint").hidden = !app.penInput || app.rows.length > 0;
  renderAll();
  if (app.penInput) flushPen();  // what was written while the connection was down
  else if (app.pendingSamples.length) {  // a server whose source is a device takes no pen input
    showError(`${app.pendingSamples.length} pen samples written offline were not sent: this source takes no pen input`);
    app.pendingSamples = [];
    showUnsent();
  }
}

function writerOf(id, label) {
  if (!app.writers.has(id)) app.writers.set(id, newWriter(id, label, 0));
  const w = app.writers.get(id);
  if (label) w.label = label;
  return w;
}

function onUpdate(msg) {
  const w = writerOf(msg.writer);
  if (msg.line !== w.line) {
    w.line = msg.line;
    w.rows = [];
    w.cells = [];
  }
  w.rows.length = Math.min(w.rows.length, msg.first_sample);
  for (const r of msg.rows) w.rows.push(r);
  w.text = msg.text;
  w.chars = msg.chars;
  if (msg.cells) w.cells.push(msg.cells);
  if (app.me === null) app.focus = w.id;  // a viewer follows whoever writes
  const r = msg.recognition_ms;
  if (typeof r === "number") app.recognitionMs = app.recognitionMs === null ? r : 0.8 * app.recognitionMs + 0.2 * r;
  if (w === app.main) {
    $("pen-hint").hidden = true;
    scheduleLiveRender(msg.arrived_ms);
  } else {
    scheduleOthersRender();
  }
}

// Updates can arrive faster than the screen refreshes (a fast pen, a replay, a slow device);
// drawing each one would let the page fall behind the pen. Draw at most once per frame, the
// newest state, and measure the latency of the newest samples drawn.
let livePending = false;
let newestArrivedMs = null;
function scheduleLiveRender(arrivedMs) {
  newestArrivedMs = arrivedMs;
  if (livePending) return;
  livePending = true;
  requestAnimationFrame(() => {
    livePending = false;
    renderLive();
    const latency = Date.now() + app.clockOffsetMs - newestArrivedMs;
    app.latencyMs = app.latencyMs === null ? latency : 0.8 * app.latencyMs + 0.2 * latency;
    $("stat-latency").textContent = Math.max(0, app.latencyMs).toFixed(0);
    if (app.recognitionMs !== null) $("stat-recognition").textContent = app.recognitionMs.toFixed(app.recognitionMs < 10 ? 1 : 0);
  });
}

let othersPending = false;
function scheduleOthersRender() {
  if (othersPending) return;
  othersPending = true;
  requestAnimationFrame(() => { othersPending = false; renderOthers(); });
}

function onFinal(msg) {
  const w = writerOf(msg.writer, msg.label);
  app.history.push({ line: msg.line, writer: msg.writer, label: msg.label, text: msg.text, chars: msg.chars,
                     rows: w.rows.slice(0, msg.num_samples), cells: w.cells });
  w.line = null;  // its next line's number comes with its first update
  w.rows = [];
  w.text = "";
  w.chars = [];
  w.cells = [];
  if (app.highlight && String(app.highlight.line).startsWith("live")) app.highlight = null;
  renderAll();
}

function onClear(msg) {
  for (const w of app.writers.values()) {
    w.rows = []; w.text = ""; w.chars = []; w.cells = [];
    if (msg.lines && msg.lines[w.id] !== undefined) w.line = msg.lines[w.id];
  }
  app.history = [];
  app.highlight = null; app.activeStroke = null;
  $("pen-hint").hidden = !app.penInput;
  renderAll();
}

function renderAll() {
  renderHistory();
  renderLive();
  renderOthers();
}

// Several writers: a label in the writer's colour beside each of their lines.
function severalWriters() {
  const ids = new Set(app.writers.keys());
  for (const e of app.history) if (e.writer !== null && e.writer !== undefined) ids.add(e.writer);
  return ids.size > 1;
}

function writerChip(id, label) {
  const chip = document.createElement("span");
  chip.className = "writer-chip";
  chip.textContent = id === app.me ? `${label} (you)` : label;
  chip.style.background = writerColor(id);
  return chip;
}

// The current lines of the other writers, small, each with its label.
function renderOthers() {
  const list = $("other-writers");
  const main = app.main;
  const others = [...app.writers.values()].filter((w) => w !== main && (w.rows.length || w.text));
  list.hidden = others.length === 0;
  list.textContent = "";
  for (const w of others) {
    const li = document.createElement("li");
    li.dataset.writer = w.id;
    const canvas = document.createElement("canvas");
    const text = document.createElement("div");
    text.className = "text-line";
    li.append(writerChip(w.id, w.label), canvas, text);
    list.appendChild(li);
    renderText(text, w.text, w.chars, `live-${w.id}`);
    const { ctx, w: cw, h } = prepareCanvas(canvas);
    const hl = app.highlight && app.highlight.line === `live-${w.id}` ? app.highlight : null;
    drawInk(ctx, w.rows, fitTransform(w.rows, cw, h, 6, 3), hl, 1.6, writerColor(w.id));
  }
}

function clearStats() {
  for (const id of ["stat-rate", "stat-latency", "stat-recognition", "stat-rtf"]) $(id).textContent = "–";
  app.latencyMs = null;
  app.recognitionMs = null;
}

function onStats(msg) {
  $("stat-rate").textContent = msg.samples_per_s.toFixed(0);
  // nothing decoded in the window: no real-time factor to show (0.000 would claim one)
  $("stat-rtf").textContent = msg.rtf === null || msg.rtf <= 0 ? "–" : msg.rtf.toFixed(3);
  $("stat-errors-box").hidden = app.penInput;  // the page's own pen has no serial line
  const errors = msg.serial_errors;
  $("stat-errors").textContent = errors.total;
  const box = $("stat-errors-box");
  box.classList.toggle("has-errors", errors.total > 0);
  box.title = "bad frames counted by the serial bridge" +
    Object.entries(errors.counts).map(([k, v]) => `\n${k}: ${v}`).join("");
  $("source-state").textContent = `source: ${msg.source_state}`;
  $("stat-writers-box").hidden = !(msg.writers > 1);
  $("stat-writers").textContent = msg.writers;
}

function showError(text) {
  app.errors.push(text);
  const toast = $("error-toast");
  toast.textContent = `server: ${text}`;
  toast.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { toast.hidden = true; }, 4000);
}

// ---- ink geometry -----------------------------------------------------------------------------
function strokesOf(rows) {
  // [{index, points: [[x, y, sampleIndex], ...]}] split at pen_up_after
  const strokes = [];
  let current = [];
  rows.forEach((r, i) => {
    current.push([r[0], r[1], i]);
    if (r[3] > 0.5) { strokes.push({ index: strokes.length, points: current }); current = []; }
  });
  if (current.length) strokes.push({ index: strokes.length, points: current });
  return strokes;
}

function fitTransform(rows, width, height, pad, wideAspect) {
  // Uniform scale of the rows' bounding box into width x height; short lines are not blown up
  // (the box is at least wideAspect times as wide as it is high).
  if (!rows.length) return { scale: 1, dx: 0, dy: 0 };
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const r of rows) {
    x0 = Math.min(x0, r[0]); x1 = Math.max(x1, r[0]);
    y0 = Math.min(y0, r[1]); y1 = Math.max(y1, r[1]);
  }
  const h = Math.max(y1 - y0, 1e-6);
  const w = Math.max(x1 - x0, h * wideAspect, 1e-6);
  const scale = Math.min((width - 2 * pad) / w, (height - 2 * pad) / h);
  return { scale, dx: pad - x0 * scale, dy: (height - (y1 - y0) * scale) / 2 - y0 * scale };
}

function prepareCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function drawInk(ctx, rows, tf, highlight, lineWidth, color) {
  const strokes = strokesOf(rows);
  const hi = highlight || { strokes: new Set(), s0: 0, s1: 0 };
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const path = (pts) => {
    ctx.beginPath();
    pts.forEach(([x, y], k) => {
      const px = x * tf.scale + tf.dx, py = y * tf.scale + tf.dy;
      if (k === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    if (pts.length === 1) ctx.lineTo(pts[0][0] * tf.scale + tf.dx + 0.1, pts[0][1] * tf.scale + tf.dy);
    ctx.stroke();
  };
  for (const s of strokes) {
    const lit = hi.strokes.has(s.index);
    ctx.strokeStyle = lit ? HIGHLIGHT_SOFT : (color || INK_COLOR);
    ctx.lineWidth = lit ? lineWidth * 2 : lineWidth;
    path(s.points);
  }
  if (highlight && hi.s1 > hi.s0) {  // the samples this character was read from, strongest
    ctx.strokeStyle = HIGHLIGHT_COLOR;
    ctx.lineWidth = lineWidth * 2.5;
    for (const s of strokes) {
      const pts = s.points.filter((p) => p[2] >= hi.s0 && p[2] < hi.s1);
      if (pts.length) path(pts);
    }
  }
}

// ---- rendering ---------------------------------------------------------------------------------
function liveTransform(w, h) {
  // Ink written on this page is drawn where it was written (CSS pixels); device ink is fitted.
  if (app.penInput) return { scale: 1, dx: 0, dy: 0 };
  return fitTransform(app.rows, w, h, 24, 6);
}

function renderLive() {
  const { ctx, w, h } = prepareCanvas($("ink-canvas"));
  const tf = liveTransform(w, h);
  const hl = app.highlight && app.highlight.line === "live" ? app.highlight : null;
  drawInk(ctx, app.rows, tf, hl, app.penInput ? 3 : 2.5);
  if (app.activeStroke && app.activeStroke.length) {
    drawInk(ctx, app.activeStroke.map(([x, y]) => [x, y, 0, 0]), tf, null, 3);
  }
  if (!app.connected && app.pendingSamples.length) {  // written offline: drawn until it is sent
    drawInk(ctx, app.pendingSamples.map(([x, y, , tip]) => [x, y, 0, tip ? 0 : 1]), tf, null, 3);
  }
  renderText($("hypothesis"), app.text, app.chars, "live");
  renderGraves();
}

function renderText(el, text, chars, lineKey) {
  el.textContent = "";
  chars.forEach((a, k) => {
    const span = document.createElement("span");
    span.className = "char";
    span.textContent = a.c;
    span.dataset.index = k;
    span.dataset.strokes = a.strokes.join(",");
    span.addEventListener("mouseenter", () => setHighlight(lineKey, a, span));
    span.addEventListener("mouseleave", () => setHighlight(null, null, null));
    el.appendChild(span);
  });
  el.dataset.text = text;
}

function setHighlight(lineKey, alignment, span) {
  document.querySelectorAll(".char.active").forEach((s) => s.classList.remove("active"));
  if (lineKey === null) {
    app.highlight = null;
  } else {
    app.highlight = { line: lineKey, strokes: new Set(alignment.strokes), s0: alignment.s0, s1: alignment.s1 };
    span.classList.add("active");
  }
  renderLive();
  renderHistoryCanvases();
  renderOthers();
}

function renderHistory() {
  const list = $("final-lines");
  list.textContent = "";
  const labelled = severalWriters();
  for (const entry of app.history.slice().reverse()) {
    const li = document.createElement("li");
    li.dataset.line = entry.line;
    const canvas = document.createElement("canvas");
    const text = document.createElement("div");
    text.className = "text-line";
    if (labelled && entry.writer !== null && entry.writer !== undefined) li.append(writerChip(entry.writer, entry.label));
    li.append(canvas, text);
    list.appendChild(li);
    if (entry.text) renderText(text, entry.text, entry.chars, entry.line);
    else { text.textContent = "(nothing recognised)"; text.classList.add("empty"); text.dataset.text = ""; }
  }
  renderHistoryCanvases();
}

function renderHistoryCanvases() {
  const byLine = new Map(app.history.map((e) => [String(e.line), e]));
  document.querySelectorAll("#final-lines li").forEach((li) => {
    const entry = byLine.get(li.dataset.line);
    const canvas = li.querySelector("canvas");
    const { ctx, w, h } = prepareCanvas(canvas);
    const hl = app.highlight && String(app.highlight.line) === li.dataset.line ? app.highlight : null;
    drawInk(ctx, entry.rows, fitTransform(entry.rows, w, h, 6, 3), hl, 1.6);
  });
}

// Alex Graves' view, four rows over one time axis (pen samples of the line): the characters as
// emitted, some LSTM memory cells (one column per decode), the ink, and the gradient of the
// character the network is most sure of back to the ink (asked of the server, see gradient.py).
// Each stroke of the ink is drawn at the time it was written, so the rows line up. Shows the
// live line, or the last final line.
const GRADIENT_PERIOD_MS = 1000;  // a growing line's gradient is asked for at most this often

function shownLine() {
  const main = app.main;
  if (main.rows.length || !app.history.length) return { line: main.line, rows: main.rows, chars: main.chars, cells: main.cells };
  const last = app.history[app.history.length - 1];
  return { line: last.line, rows: last.rows, chars: last.chars, cells: last.cells || [] };
}

function requestGradient() {
  if ($("graves").hidden || !app.connected) return;
  const now = Date.now();
  if (app.gradientAskedAt && now - app.gradientAskedAt < (app.gradientInFlight ? 10000 : GRADIENT_PERIOD_MS)) return;
  const shown = shownLine();
  if (shown.line === null || !shown.rows.length) return;
  const g = app.gradient;
  if (g && g.line === shown.line && g.num_samples === shown.rows.length) return;  // up to date
  if (send({ type: "gradient", line: shown.line })) {
    app.gradientInFlight = true;
    app.gradientAskedAt = now;
  }
}

function onGradient(msg) {
  app.gradientInFlight = false;
  app.gradient = msg;
  renderGraves();
}

// x of every sample on the time axis: a monotone, piecewise-linear warp of the ink's x through
// knots (how far right the line had reached, the time it got there) every few dozen samples, so
// the ink lines up with the outputs and cells above it while letters keep their shape between
// knots (a dot or a crossing added later sits with the letter it belongs to)
function inkByTime(rows, xOf) {
  let most = -Infinity, x0 = Infinity;
  for (const r of rows) { most = Math.max(most, r[0]); x0 = Math.min(x0, r[0]); }
  const minStep = (most - x0) * 0.03;  // knots closer than this would stretch a letter too far
  const knots = [[x0, xOf(0)]];
  const every = Math.max(20, Math.floor(rows.length / 16));
  let reach = -Infinity;
  rows.forEach((r, i) => {
    reach = Math.max(reach, r[0]);
    if ((i % every === every - 1 || i === rows.length - 1) && reach >= knots[knots.length - 1][0] + minStep) {
      knots.push([reach, xOf(i + 1)]);
    }
  });
  if (knots.length === 1) knots.push([x0 + 1, xOf(rows.length)]);
  return rows.map((r) => {
    let k = 1;
    while (k < knots.length - 1 && r[0] > knots[k][0]) k++;
    const [xa, ta] = knots[k - 1], [xb, tb] = knots[k];
    return ta + ((r[0] - xa) / (xb - xa)) * (tb - ta);
  });
}

function drawInkByTime(ctx, rows, xs, top, height, styleOf) {
  // the body of the writing fills the row; a long ascender or descender is cut at its edges
  const ys = rows.map((r) => r[1]).sort((a, b) => a - b);
  const q = (f) => ys[Math.min(ys.length - 1, Math.floor(f * ys.length))];
  const pad = 0.35 * (q(0.9) - q(0.1));
  const y0 = Math.max(ys[0], q(0.1) - pad), y1 = Math.min(ys[ys.length - 1], q(0.9) + pad);
  const s = (height - 8) / Math.max(y1 - y0, 1e-6);
  const yOf = (y) => top + 4 + (y - y0) * s;
  ctx.save();
  ctx.beginPath();
  ctx.rect(0, top, ctx.canvas.width, height);
  ctx.clip();
  ctx.lineCap = "round";
  for (let i = 0; i < rows.length; i++) {
    const joined = i > 0 && rows[i - 1][3] <= 0.5;  // same stroke as the sample before
    const [color, width] = styleOf(i);
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    if (joined) ctx.moveTo(xs[i - 1], yOf(rows[i - 1][1])); else ctx.moveTo(xs[i] - 0.1, yOf(rows[i][1]));
    ctx.lineTo(xs[i], yOf(rows[i][1]));
    ctx.stroke();
  }
  ctx.restore();
}

function renderGraves() {
  const section = $("graves");
  if (section.hidden) return;
  const { line, rows, chars, cells } = shownLine();
  const { ctx, w, h } = prepareCanvas($("graves-canvas"));
  const labelW = 110, charsH = 34, inkH = 70, gap = 8;
  const cellsH = h - charsH - 2 * inkH - 3 * gap;
  const cellsTop = charsH + gap, inkTop = cellsTop + cellsH + gap, gradTop = inkTop + inkH + gap;
  const n = Math.max(rows.length, 1);
  const xOf = (sample) => labelW + (sample / n) * (w - labelW - 8);
  ctx.fillStyle = "#6b7280";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillText("output", 4, charsH / 2);
  ctx.fillText(`LSTM cells (${app.memoryCells})`, 4, cellsTop + cellsH / 2);
  ctx.fillText("ink", 4, inkTop + inkH / 2);
  ctx.fillText("gradient", 4, gradTop + inkH / 2 - 8);
  ctx.fillText("time →", w - 50, inkTop - gap / 2);
  // the start of the line the features hold back until they know the ink's size: no frames yet
  let heldEnd = 0;
  for (const col of cells) if (!col.frames) heldEnd = Math.max(heldEnd, col.sample);
  if (heldEnd > 0) {
    ctx.fillStyle = "#f1f0ec";
    ctx.fillRect(labelW, cellsTop, xOf(heldEnd) - labelW, cellsH);
    ctx.fillStyle = "#6b7280";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText("└ held back until the ink's size is known", labelW, inkTop - gap / 2);
    ctx.font = "12px system-ui, sans-serif";
  }
  // characters where they were emitted
  ctx.fillStyle = INK_COLOR;
  ctx.font = "20px Georgia, serif";
  for (const a of chars) ctx.fillText(a.c, xOf(a.s1) - 5, charsH / 2);
  // memory cells: one column per decode, each cell against its own range over the line (red above
  // its middle, blue below): the raw values run to tens, and tanh of them would be flat colour
  const k = cells.length ? cells[0].values.length : 0;
  const lo = new Array(k).fill(Infinity), hi = new Array(k).fill(-Infinity);
  for (const col of cells) {
    if (col.frames === 0) continue;
    col.values.forEach((v, i) => { lo[i] = Math.min(lo[i], v); hi[i] = Math.max(hi[i], v); });
  }
  let prev = 0;
  for (const col of cells) {
    const x0 = xOf(prev), x1 = Math.max(xOf(col.sample), x0 + 1);
    if (col.frames !== 0) {
      col.values.forEach((v, i) => {
        const a = hi[i] > lo[i] ? (2 * (v - lo[i])) / (hi[i] - lo[i]) - 1 : 0;
        const c = Math.round(255 * (1 - Math.abs(a)));
        ctx.fillStyle = a >= 0 ? `rgb(255,${c},${c})` : `rgb(${c},${c},255)`;
        ctx.fillRect(x0, cellsTop + (i * cellsH) / k, x1 - x0 + 0.5, cellsH / k + 0.5);
      });
    }
    prev = col.sample;
  }
  ctx.strokeStyle = "#e3e1da";
  ctx.lineWidth = 1;
  ctx.strokeRect(labelW, cellsTop, w - labelW - 8, cellsH);
  if (!rows.length) return;
  // the ink, each stroke at its time
  const xs = inkByTime(rows, xOf);
  drawInkByTime(ctx, rows, xs, inkTop, inkH, () => [INK_COLOR, 1.6]);
  // the gradient: how much the explained output depends on each sample
  const g = app.gradient;
  if (g && g.line === line && g.values) {
    drawInkByTime(ctx, rows, xs, gradTop, inkH, (i) => {
      const v = i < g.values.length ? g.values[i] : 0;
      return [`rgba(217, 72, 15, ${0.12 + 0.88 * v})`, 1.2 + 2.8 * v];
    });
    const gx = xOf(g.sample);
    ctx.strokeStyle = HIGHLIGHT_COLOR;
    ctx.setLineDash([3, 3]);
    ctx.beginPath(); ctx.moveTo(gx, 2); ctx.lineTo(gx, h - 2); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = HIGHLIGHT_COLOR;
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(`d "${g.char}" / d ink`, 4, gradTop + inkH / 2 + 8);
  } else {
    ctx.fillStyle = "#9ca3af";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(g && g.line === line && g.error ? g.error : "computing…", labelW + 4, gradTop + inkH / 2);
  }
}

// ---- writing on the page -------------------------------------------------------------------------
// Samples written while the connection is down wait here and go out, in order, when it is back
// (after a server restart too); past MAX_UNSENT the oldest are dropped, and the page says so.
const MAX_UNSENT = 200000;
const MESSAGES_PER_FLUSH = 2;  // every PEN_FLUSH_MS: 80 messages a second at most
function flushPen() {
  if (app.pendingSamples.length > MAX_UNSENT) {
    const dropped = app.pendingSamples.length - MAX_UNSENT;
    app.pendingSamples.splice(0, dropped);
    app.unsentDropped += dropped;
  }
  // a few messages a tick: a backlog written offline goes out within the server's message rate
  // (120 a second), not in one burst it would refuse
  for (let k = 0; k < MESSAGES_PER_FLUSH && app.pendingSamples.length; k++) {
    const batch = app.pendingSamples.slice(0, app.maxSamplesPerMessage);
    if (!send({ type: "pen", samples: batch })) break;  // offline: keep them
    app.pendingSamples.splice(0, batch.length);
  }
  showUnsent();
}

function showUnsent() {
  const el = $("unsent");
  const n = app.connected ? 0 : app.pendingSamples.length;
  el.hidden = n === 0 && app.unsentDropped === 0;
  el.textContent = (n ? `offline: ${n} pen samples kept, sent when the connection returns` : "") +
    (app.unsentDropped ? ` (${app.unsentDropped} of the oldest dropped: over ${MAX_UNSENT})` : "");
}

function penSample(event, tip) {
  const pressure = event.pointerType === "pen" ? event.pressure : (tip ? 0.5 : 0);
  return [event.offsetX, event.offsetY, event.timeStamp / 1000, tip ? 1 : 0, pressure];
}

function setupPen() {
  const canvas = $("ink-canvas");
  canvas.addEventListener("pointerdown", (e) => {
    if (!app.penInput) return;
    e.preventDefault();
    if (canvas.setPointerCapture && e.isTrusted) canvas.setPointerCapture(e.pointerId);
    app.activeStroke = [[e.offsetX, e.offsetY]];
    app.pendingSamples.push(penSample(e, true));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!app.penInput || !app.activeStroke) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) {
      app.activeStroke.push([ev.offsetX, ev.offsetY]);
      app.pendingSamples.push(penSample(ev, true));
    }
    renderLive();
  });
  const end = (e) => {
    if (!app.penInput || !app.activeStroke) return;
    app.pendingSamples.push(penSample(e, false));
    app.activeStroke = null;
    flushPen();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  setInterval(flushPen, PEN_FLUSH_MS);
}

// ---- start --------------------------------------------------------------------------------------
function start() {
  $("clear-button").addEventListener("click", () => send({ type: "clear" }));
  $("end-line-button").addEventListener("click", () => send({ type: "end_line" }));
  window.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.repeat && e.target === document.body) send({ type: "end_line" });
  });
  $("graves-toggle").addEventListener("change", (e) => {
    $("graves").hidden = !e.target.checked;
    renderGraves();
    requestGradient();
  });
  setInterval(requestGradient, 250);
  window.addEventListener("resize", () => { renderLive(); renderHistoryCanvases(); });
  setupPen();
  setInterval(sendPing, PING_PERIOD_MS);
  connect();
}

start();
