// The page: draws what the simulator (p2p_core::sim, compiled to WebAssembly) reports and
// forwards what the person does. No protocol logic lives here. With ?live=ws://… in the
// URL it shows live-view.js instead: a real peer on a real network.
import init, { Demo } from './wasm_demo.js';

// ----- frame types ------------------------------------------------------------------------

// Colours by a frame's "type" string. Types not listed (a future extension) are drawn in
// DEFAULT_COLOUR and get their own legend entry once seen.
const TYPE_COLOURS = {
  HANDSHAKE: '#4da3ff',
  HELLO: '#f472b6',
  TRANSACTION: '#ffb547',
  TXS: '#ff7b54',
  SYNC: '#c084fc',
  STATUS_REQUEST: '#2dd4bf',
  STATUS: '#86efac',
};
const DEFAULT_COLOUR = '#9ca3af';
const colourOf = (type) => TYPE_COLOURS[type] ?? DEFAULT_COLOUR;

// The simulator counts frames in three kinds (TXS with TRANSACTION, the rest as "other").
const KIND_LABELS = {
  HANDSHAKE: 'HANDSHAKE',
  TRANSACTION: 'TRANSACTION + TXS',
  other: 'other (HELLO, SYNC, …)',
};
const KIND_COLOURS = { HANDSHAKE: TYPE_COLOURS.HANDSHAKE, TRANSACTION: TYPE_COLOURS.TRANSACTION, other: TYPE_COLOURS.SYNC };

// How long (virtual ms) a preset's caption stays up.
const CAPTION_MS = 4000;

const GROUP_COLOURS = ['#ff8a5b', '#c084fc', '#2dd4bf', '#facc15', '#f472b6'];

// ----- state ------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const canvas = $('net');
const ctx = canvas.getContext('2d');

const ui = {
  sim: null,
  snap: null,
  detail: null,
  playing: false,
  speed: 0.5,
  selected: null,
  seenTypes: new Set(),
  script: [], // captions of a preset: [{ at (ms), text }]
  ripples: [], // [{ node, start (real ms), colour }]
  lastPools: [],
  lastStates: [],
  lastPanels: 0,
  lastDraw: performance.now(),
  positions: [],
  nodeRadius: 24,
  stepNote: null,
};

function toast(message) {
  const el = $('toast');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

// Calls into the simulator; a refusal (thrown Error) becomes a toast, never a crash.
function attempt(f) {
  try {
    return f();
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error));
    return undefined;
  }
}

function latencyRange() {
  const [lo, hi] = $('latency').value.split(',').map(Number);
  return [lo, hi];
}

function seedValue() {
  const seed = Number($('seed').value);
  return Number.isFinite(seed) ? seed : 1;
}

function replace(sim) {
  if (!sim) return false;
  ui.sim?.free();
  ui.sim = sim;
  ui.selected = null;
  ui.script = [];
  ui.ripples = [];
  ui.lastPools = [];
  ui.lastStates = [];
  ui.seenTypes = new Set();
  ui.stepNote = null;
  takeSnapshot();
  updatePanels(true);
  return true;
}

function reset() {
  const [lo, hi] = latencyRange();
  return replace(attempt(() => new Demo(seedValue(), lo, hi)));
}

function takeSnapshot() {
  const snap = JSON.parse(ui.sim.snapshot());
  for (const f of snap.frames) ui.seenTypes.add(f.type);
  ui.snap = snap;
  return snap;
}

function detailOf(i) {
  return JSON.parse(ui.sim.node(i));
}

// ----- presets ----------------------------------------------------------------------------

// The curriculum's story: node-1, node-2 and node-3 (ports 4001-4003, all knowing 4001
// and 4003) started one after another, then a transaction at node-2.
function curriculum() {
  if (!reset()) return;
  const sim = ui.sim;
  for (let i = 0; i < 3; i++) sim.addNode(undefined);
  const address = (i) => ui.snap.nodes[i]?.address ?? `node ${i}`;
  takeSnapshot();
  const plan = [
    [300, 'start', 0, `node-1 (${address(0)}) starts and dials its known peers`],
    [1800, 'start', 1, `node-2 (${address(1)}) starts: HANDSHAKEs tell the others about it`],
    [3300, 'start', 2, `node-3 (${address(2)}) starts: the mesh fills in`],
    [5000, 'addTransaction', 1, 'a transaction enters at node-2 and spreads'],
  ];
  for (const [at, command, node] of plan) sim.schedule(at, command, node);
  ui.script = plan.map(([at, , , text]) => ({ at, text }));
  ui.script.unshift({ at: 0, text: 'the curriculum: three nodes started one after another' });
  takeSnapshot();
  select(null);
  play(true);
}

function randomRun() {
  const [lo, hi] = latencyRange();
  if (!replace(attempt(() => Demo.scenario(seedValue(), 8, 12, 2, true, lo, hi)))) return;
  ui.script = [{ at: 0, text: 'the simulator\'s random run: 8 nodes, 12 transactions, 2 crashes, a partition' }];
  play(true);
}

// ----- controls ---------------------------------------------------------------------------

function play(on) {
  ui.playing = on;
  $('play').textContent = on ? '❚❚ Pause' : '▶ Play';
}

function step() {
  play(false);
  const event = attempt(() => ui.sim.step());
  ui.stepNote = event === undefined ? 'nothing left to happen' : `step: ${stepText(event)}`;
  takeSnapshot();
  updatePanels(true);
}

// What Demo.step() said: JSON, with a sentence for people in `text`.
function stepText(event) {
  return JSON.parse(event).text;
}

function advance(ms) {
  const events = attempt(() => ui.sim.advance(ms));
  takeSnapshot();
  updatePanels(true);
  return events;
}

function addNode() {
  ui.script = [];
  const text = $('peers').value.trim();
  const peers = text === '' ? undefined : text.split(/[\s,]+/).filter(Boolean);
  const id = attempt(() => ui.sim.addNode(peers));
  if (id === undefined) return undefined;
  if ($('autostart').checked) attempt(() => ui.sim.start(id));
  takeSnapshot();
  select(id);
  return id;
}

function act(name, i) {
  ui.script = [];
  const result = attempt(() => ui.sim[name](i));
  takeSnapshot();
  updatePanels(true);
  return result;
}

function split() {
  const n = ui.snap.nodes.length;
  if (n < 2) {
    toast('add at least two nodes to split them');
    return;
  }
  const half = ui.snap.nodes.slice(0, Math.ceil(n / 2)).map((node) => node.id);
  act('partition', half);
}

function select(i) {
  ui.selected = i;
  updatePanels(true);
}

// ----- drawing ----------------------------------------------------------------------------

function resize() {
  const dpr = window.devicePixelRatio || 1;
  const { clientWidth: w, clientHeight: h } = canvas;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { w, h };
}

function layout(n, w, h) {
  // Room for the legend and banner above, the story below, and the labels around.
  const top = 110;
  const bottom = h - 165;
  const cx = w / 2;
  const cy = (top + bottom) / 2;
  const radius = Math.max(60, Math.min(w / 2 - 185, (bottom - top) / 2 - 75));
  const spacing = (2 * Math.PI * radius) / Math.max(n, 1);
  ui.nodeRadius = Math.max(12, Math.min(30, spacing * 0.28));
  ui.positions = [];
  for (let i = 0; i < n; i++) {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / n;
    ui.positions.push({ x: cx + radius * Math.cos(angle), y: cy + radius * Math.sin(angle), angle });
  }
  return { cx, cy, radius };
}

function hue(i) {
  return (i * 137.508 + 200) % 360;
}

function towards(p, q, d) {
  const dx = q.x - p.x;
  const dy = q.y - p.y;
  const len = Math.hypot(dx, dy) || 1;
  return { x: p.x + (dx / len) * d, y: p.y + (dy / len) * d };
}

// The curve from a to b; b to a bows to the other side, so both directions show.
function curve(a, b) {
  const r = ui.nodeRadius;
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const bend = Math.min(34, len * 0.13);
  const c = { x: (a.x + b.x) / 2 - (dy / len) * bend, y: (a.y + b.y) / 2 + (dx / len) * bend };
  return { s: towards(a, c, r + 3), c, e: towards(b, c, r + 5) };
}

function pointOn(q, t) {
  const u = 1 - t;
  return {
    x: u * u * q.s.x + 2 * u * t * q.c.x + t * t * q.e.x,
    y: u * u * q.s.y + 2 * u * t * q.c.y + t * t * q.e.y,
  };
}

function arrowHead(q, colour) {
  const angle = Math.atan2(q.e.y - q.c.y, q.e.x - q.c.x);
  const size = 8;
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.moveTo(q.e.x, q.e.y);
  ctx.lineTo(q.e.x - size * Math.cos(angle - 0.4), q.e.y - size * Math.sin(angle - 0.4));
  ctx.lineTo(q.e.x - size * Math.cos(angle + 0.4), q.e.y - size * Math.sin(angle + 0.4));
  ctx.closePath();
  ctx.fill();
}

function draw(now) {
  const { w, h } = resize();
  ctx.clearRect(0, 0, w, h);
  const snap = ui.snap;
  if (!snap) return;
  const nodes = snap.nodes;
  const { cx, cy, radius } = layout(nodes.length, w, h);
  const pos = ui.positions;
  const r = ui.nodeRadius;
  const partitioned = nodes.some((n) => n.group !== 0);

  // The ring the nodes sit on.
  ctx.strokeStyle = 'rgba(120, 140, 190, 0.10)';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.arc(cx, cy, radius, 0, 2 * Math.PI);
  ctx.stroke();

  if (nodes.length === 0) {
    ctx.fillStyle = '#8a97b4';
    ctx.font = '15px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText('No nodes yet: press ★ Curriculum, Random run, or + Add node.', cx, cy);
  }

  // Sides of a partition.
  if (partitioned) {
    for (const node of nodes) {
      const p = pos[node.id];
      const colour = GROUP_COLOURS[node.group % GROUP_COLOURS.length];
      const glow = ctx.createRadialGradient(p.x, p.y, r, p.x, p.y, r * 2.6);
      glow.addColorStop(0, colour + '55');
      glow.addColorStop(1, colour + '00');
      ctx.fillStyle = glow;
      ctx.beginPath();
      ctx.arc(p.x, p.y, r * 2.6, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  // Dialled connections: an arrow from the dialler to the server.
  ctx.lineWidth = 1.6;
  for (const node of nodes) {
    for (const to of node.connected) {
      if (!pos[to] || to === node.id) continue;
      const q = curve(pos[node.id], pos[to]);
      const lit = ui.selected === node.id || ui.selected === to;
      const colour = lit ? 'rgba(190, 210, 255, 0.95)' : 'rgba(150, 172, 220, 0.55)';
      ctx.strokeStyle = colour;
      ctx.beginPath();
      ctx.moveTo(q.s.x, q.s.y);
      ctx.quadraticCurveTo(q.c.x, q.c.y, q.e.x, q.e.y);
      ctx.stroke();
      arrowHead(q, colour);
    }
  }

  // Dials in progress: dashed, marching toward the server.
  ctx.save();
  ctx.setLineDash([5, 6]);
  ctx.lineDashOffset = -now / 40;
  ctx.strokeStyle = 'rgba(216, 194, 122, 0.8)';
  ctx.lineWidth = 1.4;
  for (const node of nodes) {
    for (const to of node.dialling) {
      if (!pos[to] || to === node.id) continue;
      const q = curve(pos[node.id], pos[to]);
      ctx.beginPath();
      ctx.moveTo(q.s.x, q.s.y);
      ctx.quadraticCurveTo(q.c.x, q.c.y, q.e.x, q.e.y);
      ctx.stroke();
    }
  }
  ctx.restore();

  // Frames in flight, coloured by type, with a short trail.
  for (const f of snap.frames) {
    if (!pos[f.from] || !pos[f.to]) continue;
    const q = curve(pos[f.from], pos[f.to]);
    const colour = colourOf(f.type);
    for (let k = 4; k >= 1; k--) {
      const t = Math.max(0, f.progress - k * 0.035);
      const p = pointOn(q, t);
      ctx.globalAlpha = 0.12 * (5 - k);
      ctx.fillStyle = colour;
      ctx.beginPath();
      ctx.arc(p.x, p.y, 3.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    const p = pointOn(q, f.progress);
    ctx.save();
    ctx.shadowColor = colour;
    ctx.shadowBlur = 12;
    ctx.fillStyle = colour;
    ctx.beginPath();
    ctx.arc(p.x, p.y, 5.5, 0, 2 * Math.PI);
    ctx.fill();
    ctx.restore();
  }

  // Ripples: a pool grew (amber) or a node crashed (red).
  ui.ripples = ui.ripples.filter((rp) => now - rp.start < 900);
  for (const rp of ui.ripples) {
    const p = pos[rp.node];
    if (!p) continue;
    const t = (now - rp.start) / 900;
    ctx.strokeStyle = rp.colour;
    ctx.globalAlpha = 1 - t;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.arc(p.x, p.y, r + 4 + t * 26, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.globalAlpha = 1;
  }

  // Nodes.
  for (const node of nodes) {
    const p = pos[node.id];
    const h0 = hue(node.id);
    ctx.save();
    if (ui.selected === node.id) {
      ctx.shadowColor = '#ffffff';
      ctx.shadowBlur = 18;
    }
    ctx.beginPath();
    ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
    if (node.state === 'up') {
      const g = ctx.createRadialGradient(p.x - r / 3, p.y - r / 3, r / 6, p.x, p.y, r);
      g.addColorStop(0, `hsl(${h0} 55% 42%)`);
      g.addColorStop(1, `hsl(${h0} 55% 24%)`);
      ctx.fillStyle = g;
      ctx.fill();
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = `hsl(${h0} 80% 70%)`;
      ctx.stroke();
    } else if (node.state === 'down') {
      ctx.fillStyle = '#3a1620';
      ctx.fill();
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = '#ff5d6c';
      ctx.stroke();
    } else {
      ctx.fillStyle = '#141b2c';
      ctx.fill();
      ctx.setLineDash([4, 4]);
      ctx.lineWidth = 2;
      ctx.strokeStyle = '#5a6a8e';
      ctx.stroke();
    }
    ctx.restore();
    if (ui.selected === node.id) {
      ctx.strokeStyle = '#ffffff';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(p.x, p.y, r + 5, 0, 2 * Math.PI);
      ctx.stroke();
    }

    // The port inside, the address and pool outside.
    const port = node.address ? node.address.split(':').pop() : String(node.id);
    ctx.fillStyle = node.state === 'notStarted' ? '#8a97b4' : '#ffffff';
    ctx.font = `600 ${Math.max(10, Math.round(r * 0.48))}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(node.state === 'down' ? '✕' : port, p.x, p.y + 1);

    const cos = Math.cos(p.angle);
    const sin = Math.sin(p.angle);
    const lx = p.x + cos * (r + 12);
    const ly = p.y + sin * (r + 12);
    ctx.textAlign = cos > 0.35 ? 'left' : cos < -0.35 ? 'right' : 'center';
    const lines = [
      [node.address ?? '', '#c9d3ea', '12px'],
      [
        node.state === 'up'
          ? `pool ${node.pool}`
          : node.state === 'down'
            ? `down · stored ${node.pool}`
            : 'not started',
        node.state === 'down' ? '#ff8d99' : '#8a97b4',
        '11.5px',
      ],
    ];
    const lineHeight = 15;
    let y0 = ly;
    if (sin < -0.35) y0 = ly - lineHeight * (lines.length - 1) - 4;
    else if (sin > 0.35) y0 = ly + 6;
    else y0 = ly - (lineHeight * (lines.length - 1)) / 2;
    lines.forEach(([text, colour, size], k) => {
      ctx.fillStyle = colour;
      ctx.font = `${size} ui-monospace, "DejaVu Sans Mono", monospace`;
      ctx.textBaseline = 'middle';
      ctx.fillText(text, lx, y0 + k * lineHeight);
    });
  }
}

// ----- panels -----------------------------------------------------------------------------

function portOf(k) {
  const address = ui.snap?.nodes[k]?.address;
  return address ? `:${address.split(':').pop()}` : `node ${k}`;
}

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function list(id, items, empty) {
  const el = $(id);
  el.replaceChildren(
    ...(items.length === 0
      ? [Object.assign(document.createElement('li'), { className: 'empty', textContent: empty })]
      : items),
  );
}

function li(text) {
  return Object.assign(document.createElement('li'), { textContent: text });
}

function fmtTime(ms) {
  return `${(ms / 1000).toFixed(3)} s`;
}

function updatePanels(force = false) {
  const now = performance.now();
  if (!force && now - ui.lastPanels < 120) return;
  ui.lastPanels = now;
  const snap = ui.snap;
  if (!snap) return;
  const nodes = snap.nodes;
  const up = nodes.filter((n) => n.state === 'up').length;

  // Ripples for pools that grew and nodes that went down.
  nodes.forEach((n, i) => {
    if (ui.lastPools[i] !== undefined && n.pool > ui.lastPools[i] && n.state === 'up') {
      ui.ripples.push({ node: i, start: now, colour: TYPE_COLOURS.TRANSACTION });
    }
    if (ui.lastStates[i] === 'up' && n.state === 'down') {
      ui.ripples.push({ node: i, start: now, colour: '#ff5d6c' });
    }
    ui.lastPools[i] = n.pool;
    ui.lastStates[i] = n.state;
  });

  setText('time', fmtTime(snap.nowMs));
  setText('nodes-up', `${up}/${nodes.length}`);
  const full = snap.fullMesh && up >= 2;
  setText('mesh', up < 2 ? '—' : full ? 'full ✓' : 'forming…');
  $('chip-mesh').className = `chip ${up < 2 ? '' : full ? 'ok' : 'warn'}`;
  $('chip-nodes').className = `chip ${nodes.some((n) => n.state === 'down') ? 'bad' : ''}`;

  // Banner: a partition, a step, or the preset's caption.
  const partitioned = nodes.some((n) => n.group !== 0);
  let banner = '';
  if (partitioned) {
    const groups = new Map();
    for (const n of nodes) {
      if (!groups.has(n.group)) groups.set(n.group, []);
      groups.get(n.group).push(portOf(n.id));
    }
    banner = `partitioned: ${[...groups.values()].map((g) => g.join(' ')).join('  |  ')}`;
  } else if (ui.stepNote) {
    banner = ui.stepNote;
  } else {
    // A preset's captions show for a few seconds of virtual time each; once its last
    // step is done and every pool holds every transaction, the sum stays up.
    const caption = ui.script.filter((s) => s.at <= snap.nowMs).pop();
    const last = caption !== undefined && caption === ui.script[ui.script.length - 1];
    if (last && snap.transactions > 0 && snap.delivered === 1) {
      const per = snap.counters.sent.TRANSACTION / snap.transactions;
      banner = `in every pool: ${per.toFixed(1)} TRANSACTION frames per transaction, where naive flooding sends ${nodes.length * (nodes.length - 1)}`;
    } else if (caption && (last || snap.nowMs - caption.at < CAPTION_MS)) {
      banner = caption.text;
    }
  }
  $('banner').hidden = banner === '';
  setText('banner', banner);

  updateLegend(snap);
  updateCounters(snap);
  updateInspector();
  updateStory();
}

function updateLegend(snap) {
  const inFlight = new Map();
  for (const f of snap.frames) inFlight.set(f.type, (inFlight.get(f.type) ?? 0) + 1);
  const types = [...Object.keys(TYPE_COLOURS), ...[...ui.seenTypes].filter((t) => !(t in TYPE_COLOURS)).sort()];
  const el = $('legend');
  const rows = types.map((t) => {
    const row = document.createElement('div');
    row.className = 'item';
    row.dataset.type = t;
    row.innerHTML = '<span class="dot"></span><span class="name"></span><span class="count"></span>';
    row.querySelector('.dot').style.color = colourOf(t);
    row.querySelector('.name').textContent = t;
    row.querySelector('.count').textContent = String(inFlight.get(t) ?? 0);
    return row;
  });
  const other = document.createElement('div');
  other.className = 'item';
  other.innerHTML = '<span class="dot"></span><span class="name">other types</span>';
  other.querySelector('.dot').style.color = DEFAULT_COLOUR;
  const keys = document.createElement('div');
  keys.className = 'key';
  keys.innerHTML = '<i></i>dialled connection';
  const dials = document.createElement('div');
  dials.className = 'key';
  dials.innerHTML = '<i class="dashed"></i>dial in progress';
  const title = document.createElement('div');
  title.className = 'title';
  title.textContent = `frames in flight (${snap.frames.length}):`;
  el.replaceChildren(title, ...rows, other, keys, dials);
}

function updateCounters(snap) {
  const c = snap.counters;
  const body = document.querySelector('#frames-table tbody');
  const rows = Object.keys(c.sent).map((kind) => {
    const tr = document.createElement('tr');
    tr.dataset.kind = kind;
    tr.innerHTML = '<td><span class="dot"></span><span class="name"></span></td><td class="sent"></td><td class="delivered"></td><td class="dropped"></td>';
    tr.querySelector('.dot').style.background = KIND_COLOURS[kind] ?? DEFAULT_COLOUR;
    tr.querySelector('.name').textContent = KIND_LABELS[kind] ?? kind;
    tr.querySelector('.sent').textContent = c.sent[kind];
    tr.querySelector('.delivered').textContent = c.delivered[kind];
    tr.querySelector('.dropped').textContent = c.dropped[kind];
    return tr;
  });
  body.replaceChildren(...rows);

  const n = snap.nodes.length;
  const naive = n * (n - 1);
  const per = snap.transactions > 0 ? c.sent.TRANSACTION / snap.transactions : null;
  setText('per-tx', per === null ? '—' : per.toFixed(2));
  setText('naive', n < 2 ? '—' : String(naive));
  const scale = Math.max(naive, per ?? 0, 1);
  $('bar-ours').style.width = `${per === null ? 0 : (100 * per) / scale}%`;
  $('bar-naive').style.width = `${n < 2 ? 0 : (100 * naive) / scale}%`;
  setText(
    'compare-note',
    n < 2
      ? 'naive flooding: every node sends every transaction to every other node, N(N−1) frames'
      : `naive flooding: each of the ${n} nodes sends every transaction to the ${n - 1} others, N(N−1) = ${naive}`,
  );

  setText('c-tx', String(snap.transactions));
  setText('c-delivered', snap.transactions ? `${(100 * snap.delivered).toFixed(0)} %` : '—');
  $('c-delivered').className = snap.transactions && snap.delivered === 1 ? 'ok' : '';
  setText('c-dials', `${c.dials} (${c.dialsFailed})`);
  setText('c-conns', String(c.connections));
  setText('c-closes', String(c.closes));
  setText('c-first-mesh', snap.firstFullMeshMs === null ? '—' : fmtTime(snap.firstFullMeshMs));
  setText('c-violations', String(snap.violations));
  $('c-violations').className = snap.violations > 0 ? 'bad' : 'ok';
}

function updateInspector() {
  const i = ui.selected;
  const node = i === null ? undefined : ui.snap.nodes[i];
  $('sel-body').hidden = node === undefined;
  $('sel-hint').hidden = node !== undefined;
  if (node === undefined) {
    ui.detail = null;
    setText('sel-title', '');
    return;
  }
  const detail = detailOf(i);
  ui.detail = detail;
  const stateText = { up: 'running', down: 'crashed', notStarted: 'not started' }[detail.state];
  setText('sel-title', `${detail.address} · ${stateText}`);
  $('sel-start').disabled = detail.state !== 'notStarted';
  $('sel-crash').disabled = detail.state !== 'up';
  $('sel-restart').disabled = detail.state !== 'down';
  $('sel-tx').disabled = detail.state !== 'up';
  list('sel-connected', detail.connectedAddresses.map(li), detail.state === 'up' ? 'none yet' : 'not running');
  list('sel-dialling', detail.dialling.map(li), 'no dial in progress');
  const pool = [...detail.pool].reverse().map((tx) => {
    const row = document.createElement('li');
    row.title = JSON.stringify(tx);
    row.innerHTML = '<span class="hash"></span><span class="stamp muted"></span><span class="amount"></span>';
    row.querySelector('.hash').textContent = `${String(tx.hash).slice(0, 10)}…`;
    row.querySelector('.stamp').textContent = typeof tx.timeStamp === 'number' ? new Date(tx.timeStamp).toISOString().slice(11, 23) : '';
    row.querySelector('.amount').textContent = `${tx.amount}`;
    return row;
  });
  list('sel-pool', pool, 'empty');
}

function updateStory() {
  // JSON entries from the glue (time, whose, violation, words): nothing here reads the words.
  const entries = JSON.parse(ui.sim.story(9));
  const items = entries.map((entry) => {
    const row = document.createElement('li');
    if (entry.node === null) row.className = 'sim';
    if (entry.violation) row.className = 'violation';
    const seconds = (entry.atMs / 1000).toFixed(3);
    const time = Object.assign(document.createElement('span'), { className: 't', textContent: `${seconds}s ` });
    const whoEl = document.createElement('b');
    whoEl.textContent = entry.node === null ? 'sim' : portOf(entry.node);
    if (entry.node !== null) whoEl.style.color = `hsl(${hue(entry.node)} 80% 70%)`;
    row.append(time, whoEl, ` ${entry.text}`);
    return row;
  });
  $('story').replaceChildren(...items);
  $('story').hidden = items.length === 0;
}

// ----- input ------------------------------------------------------------------------------

function nodeAt(x, y) {
  const r = ui.nodeRadius + 4;
  return ui.positions.findIndex((p) => Math.hypot(p.x - x, p.y - y) <= r);
}

canvas.addEventListener('click', (e) => {
  const rect = canvas.getBoundingClientRect();
  const hit = nodeAt(e.clientX - rect.left, e.clientY - rect.top);
  select(hit >= 0 ? hit : null);
});

canvas.addEventListener('mousemove', (e) => {
  const rect = canvas.getBoundingClientRect();
  canvas.style.cursor = nodeAt(e.clientX - rect.left, e.clientY - rect.top) >= 0 ? 'pointer' : 'default';
});

function wire() {
  $('play').addEventListener('click', () => play(!ui.playing));
  $('step').addEventListener('click', step);
  $('speed').addEventListener('change', (e) => { ui.speed = Number(e.target.value); });
  $('reset').addEventListener('click', () => { play(false); reset(); });
  $('curriculum').addEventListener('click', curriculum);
  $('random').addEventListener('click', randomRun);
  $('add-node').addEventListener('click', addNode);
  $('split').addEventListener('click', split);
  $('heal').addEventListener('click', () => act('heal'));
  $('sel-start').addEventListener('click', () => act('start', ui.selected));
  $('sel-crash').addEventListener('click', () => act('crash', ui.selected));
  $('sel-restart').addEventListener('click', () => act('restart', ui.selected));
  $('sel-tx').addEventListener('click', () => act('addTransaction', ui.selected));
  $('sel-isolate').addEventListener('click', () => act('partition', [ui.selected]));
  document.addEventListener('keydown', (e) => {
    // Keys meant for a control (typing, or space on a focused button) stay with it.
    if (e.target instanceof Element && e.target.closest('button, input, select, textarea')) return;
    if (e.key === ' ') {
      e.preventDefault();
      play(!ui.playing);
    } else if (e.key === 'ArrowRight') {
      step();
    }
  });
}

// ----- the loop ---------------------------------------------------------------------------

function frame(now) {
  const dt = Math.min(now - ui.lastDraw, 100);
  ui.lastDraw = now;
  if (ui.sim) {
    if (ui.playing && dt > 0) {
      ui.stepNote = null;
      if (attempt(() => ui.sim.advance(dt * ui.speed)) === undefined) play(false);
    }
    takeSnapshot();
    updatePanels();
    draw(now);
  }
  requestAnimationFrame(frame);
}

// ----- the page's own state, for tests and the curious (window.demo) ----------------------

function state() {
  const snap = takeSnapshot();
  return {
    nowMs: snap.nowMs,
    playing: ui.playing,
    speed: ui.speed,
    fullMesh: snap.fullMesh,
    firstFullMeshMs: snap.firstFullMeshMs,
    transactions: snap.transactions,
    delivered: snap.delivered,
    violations: snap.violations,
    counters: snap.counters,
    framesInFlight: snap.frames.map((f) => ({ type: f.type, from: f.from, to: f.to, progress: f.progress })),
    nodes: snap.nodes.map((n) => {
      const d = detailOf(n.id);
      return {
        id: n.id,
        address: n.address,
        state: n.state,
        group: n.group,
        connectedAddresses: d.connectedAddresses,
        dialling: d.dialling,
        pool: d.pool.map((tx) => tx.hash).reverse(),
      };
    }),
    selected: ui.selected,
    banner: $('banner').hidden ? '' : $('banner').textContent,
  };
}

function exposeForTests() {
  window.demo = {
    ready: true,
    state,
    node: (i) => detailOf(i),
    log: (lines = 50) => ui.sim.log(lines),
    check: () => ui.sim.check(),
    // Where node i is drawn, in page coordinates (for clicking it).
    nodeCenter(i) {
      const rect = canvas.getBoundingClientRect();
      const p = ui.positions[i];
      return p ? { x: rect.left + p.x, y: rect.top + p.y } : null;
    },
    curriculum,
    randomRun,
    reset: (seed) => {
      if (seed !== undefined) $('seed').value = String(seed);
      play(false);
      return reset();
    },
    play: () => play(true),
    pause: () => play(false),
    step,
    advance,
    setSpeed(x) {
      ui.speed = Number(x);
    },
    select,
    addNode(peers) {
      $('peers').value = peers ? peers.join(', ') : '';
      return addNode();
    },
    start: (i) => act('start', i),
    crash: (i) => act('crash', i),
    restart: (i) => act('restart', i),
    addTransaction: (i) => act('addTransaction', i),
    partition: (group) => act('partition', group),
    heal: () => act('heal'),
  };
}

async function main() {
  if (location.protocol === 'file:') {
    toast('Open this page through a web server: wasm-demo/serve.sh');
  }
  // ?live=ws://… : a real peer on a real network instead of the simulator (live-view.js).
  const live = new URLSearchParams(location.search).get('live');
  if (live !== null) {
    const { runLive } = await import('./live-view.js');
    await runLive(live);
    document.documentElement.dataset.ready = 'true';
    return;
  }
  await init();
  wire();
  reset();
  exposeForTests();
  requestAnimationFrame(frame);
  document.documentElement.dataset.ready = 'true';
}

main().catch((error) => {
  console.error(error);
  const what = document.documentElement.dataset.mode === 'live' ? 'the live view' : 'the simulator';
  toast(`could not start ${what}: ${error.message ?? error}`);
});
