// The live view: draws the real network a live peer (live.js) learns of. Nodes are every
// address seen (the peer's connections and dials, what watched nodes stream); a node is
// up while this page's peer is connected to it; edges are the connections each watched
// node reports, and this page's own. Nothing here decides anything for the network.
import { startLive } from './live.js';

const SVG = 'http://www.w3.org/2000/svg';
const BROWSER = 'this page';
const EXAMPLE = 'ws://localhost:4001';
const START_HINT = 'p2p-node up 3 --web';
const LOG_LINES = 300;
const TX_ROWS = 12;
const TX_KEPT = 200;

const $ = (id) => document.getElementById(id);

const ui = {
  address: '',
  live: null, // what startLive returned
  nodes: new Map(), // address -> { address, watched, pool (null: unknown), connected }
  txs: new Map(), // hash -> { hash, reached: Set of addresses (and BROWSER), made }
  made: [],
  recentSeen: new Set(),
  everConnected: false,
  error: null, // { title, text, bad: true when the address itself is at fault }
  log: [],
  logDirty: true,
  pending: false,
  positions: new Map(), // address -> { x, y, angle }, and BROWSER
  flashed: new Map(), // address (or BROWSER) -> when its last flash began
  radius: 26,
};

// ----- the model: what live.js and the nodes report --------------------------------------

function see(address) {
  if (typeof address !== 'string' || address === '' || ui.nodes.has(address)) return ui.nodes.get(address);
  const node = { address, watched: false, pool: null, connected: [] };
  ui.nodes.set(address, node);
  return node;
}

function onWatched(from, event) {
  const node = see(from);
  if (node === undefined || event === null || typeof event !== 'object') return;
  switch (event.kind) {
    case 'state':
      node.watched = true;
      node.pool = event.pool;
      node.connected = [...(event.connected ?? [])];
      node.connected.forEach(see);
      break;
    case 'peers':
      node.watched = true;
      node.connected = [...(event.connected ?? [])];
      node.connected.forEach(see);
      break;
    case 'pooled':
      node.watched = true;
      node.pool = event.pool;
      for (const hash of event.hashes ?? []) reach(hash, from);
      if ((event.hashes ?? []).length === 0) flash(from);
      break;
    default:
      note('warn', `${from} streamed an event of unknown kind: ${JSON.stringify(event).slice(0, 160)}`);
  }
  requestRender();
}

// A transaction is at `where` (a node's address, or BROWSER): remember it and flash.
function reach(hash, where, made = false) {
  let tx = ui.txs.get(hash);
  if (tx === undefined) {
    tx = { hash, reached: new Set(), made };
    ui.txs.set(hash, tx);
    if (ui.txs.size > TX_KEPT) ui.txs.delete(ui.txs.keys().next().value);
  }
  if (made) tx.made = true;
  if (tx.reached.has(where)) return;
  tx.reached.add(where);
  flash(where);
}

function note(level, text) {
  ui.log.push({ level, text, at: new Date() });
  if (ui.log.length > LOG_LINES) ui.log.splice(0, ui.log.length - LOG_LINES);
  ui.logDirty = true;
  requestRender();
}

// Pulls the peer's view and the host's counts into the model; returns the host's state.
function refresh() {
  const host = ui.live.state();
  const { view } = host;
  for (const a of view.connected) see(a);
  for (const a of view.dialling) see(a);
  if (view.connected.length > 0) ui.everConnected = true;
  for (const hash of view.recent) {
    if (!ui.recentSeen.has(hash)) {
      ui.recentSeen.add(hash);
      reach(hash, BROWSER);
    }
  }
  if (ui.recentSeen.size > 4 * TX_KEPT) ui.recentSeen = new Set(view.recent);
  ui.error = problem(host);
  return host;
}

// What is wrong, from the host's counts and the peer's view (never from log lines).
function problem(host) {
  if (host.fatal !== null) {
    return host.badAddress
      ? {
          title: `cannot watch ${JSON.stringify(ui.address)}`,
          text: `${sentence(host.fatal)} Give the address of a running node: ${EXAMPLE} is node-1 of \`${START_HINT}\` on this machine.`,
          bad: true,
        }
      : { title: 'the live peer could not start', text: host.fatal, bad: true };
  }
  if (host.view.connected.length > 0) return null;
  // Refused twice, or a dial that hung until the peer gave up on it (10 s), and nothing
  // ever opened.
  if (host.counts.opened === 0 && (host.counts.failed >= 2 || host.counts.abandoned >= 1)) {
    return {
      title: `cannot reach ${ui.address} — is the network running?`,
      text: `Start it with \`${START_HINT}\`. This page keeps dialling it.`,
    };
  }
  if (ui.everConnected) {
    return {
      title: 'every node is gone',
      text: 'This page was connected to the network and now reaches none of its nodes. It keeps redialling them, as the core does; this message goes when one answers.',
    };
  }
  return null;
}

// `text` ended as a sentence.
function sentence(text) {
  return /[.?!]$/.test(text) ? text : `${text}.`;
}

// Nodes in a stable order: by host, then by port.
function sortedNodes() {
  const key = (a) => {
    const m = /^ws:\/\/(.*):(\d+)\/?$/.exec(a);
    return m ? [m[1], Number(m[2])] : [a, 0];
  };
  return [...ui.nodes.values()].sort((x, y) => {
    const [hx, px] = key(x.address);
    const [hy, py] = key(y.address);
    return hx < hy ? -1 : hx > hy ? 1 : px - py;
  });
}

// ----- drawing ---------------------------------------------------------------------------

function requestRender() {
  if (ui.pending) return;
  ui.pending = true;
  requestAnimationFrame(() => {
    ui.pending = false;
    render();
  });
}

function el(tag, attrs = {}, parent = null, text = null) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  if (parent) parent.append(e);
  return e;
}

function portOf(address) {
  const m = /:(\d+)\/?$/.exec(address);
  return m ? m[1] : '?';
}

// The nodes on a circle in address order, this page's peer at the bottom of it.
function layout(nodes, w, h) {
  const top = 64; // below the legend
  const cx = w / 2;
  const cy = top + (h - top) / 2 - 10;
  const ring = Math.max(90, Math.min(w / 2 - 170, (h - top) / 2 - 75));
  const slots = nodes.length + 1;
  ui.radius = Math.max(14, Math.min(28, ((2 * Math.PI * ring) / slots) * 0.25));
  const at = (angle) => ({ x: cx + ring * Math.cos(angle), y: cy + ring * Math.sin(angle), angle });
  ui.positions = new Map([[BROWSER, at(Math.PI / 2)]]);
  nodes.forEach((node, i) => ui.positions.set(node.address, at(Math.PI / 2 + (2 * Math.PI * (i + 1)) / slots)));
  return { cx, cy, ring };
}

function towards(p, q, d) {
  const dx = q.x - p.x;
  const dy = q.y - p.y;
  const len = Math.hypot(dx, dy) || 1;
  return { x: p.x + (dx / len) * d, y: p.y + (dy / len) * d };
}

// A dialled connection from a to b, bowed so that b's to a shows beside it.
function curvePath(a, b, ra, rb) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const bend = Math.min(30, len * 0.12);
  const c = { x: (a.x + b.x) / 2 - (dy / len) * bend, y: (a.y + b.y) / 2 + (dx / len) * bend };
  const s = towards(a, c, ra + 3);
  const e = towards(b, c, rb + 6);
  return `M${s.x.toFixed(1)},${s.y.toFixed(1)} Q${c.x.toFixed(1)},${c.y.toFixed(1)} ${e.x.toFixed(1)},${e.y.toFixed(1)}`;
}

function linePath(a, b, ra, rb) {
  const s = towards(a, b, ra + 3);
  const e = towards(b, a, rb + 6);
  return `M${s.x.toFixed(1)},${s.y.toFixed(1)} L${e.x.toFixed(1)},${e.y.toFixed(1)}`;
}

function render() {
  if (ui.live === null) return; // not started yet
  const host = refresh();
  const { view } = host;
  const svg = $('live-net');
  const w = svg.clientWidth || 800;
  const h = svg.clientHeight || 560;
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const nodes = sortedNodes();
  if (nodes.length === 0 && host.fatal === null) {
    // Before the peer reports anything: the address being joined.
    nodes.push({ address: ui.address, watched: false, pool: null, connected: [], placeholder: true });
  }
  const { cx, cy, ring } = layout(nodes, w, h);
  const connected = new Set(view.connected);
  const dialling = new Set(view.dialling);
  const r = ui.radius;
  const rb = r + 6;

  const edges = $('live-edges');
  const nodeLayer = $('live-nodes-layer');
  edges.replaceChildren();
  nodeLayer.replaceChildren();
  el('circle', { cx, cy, r: ring, class: 'ring' }, edges);

  // Each up, watched node's connectedAddresses: its dialled connections.
  for (const node of nodes) {
    if (!node.watched || !connected.has(node.address)) continue;
    const a = ui.positions.get(node.address);
    for (const to of node.connected) {
      const b = ui.positions.get(to);
      if (!b || to === node.address) continue;
      el('path', { d: curvePath(a, b, r, r), class: 'edge node-edge', 'marker-end': 'url(#arrow-node)' }, edges);
    }
  }
  // This page's connections and dials.
  const me = ui.positions.get(BROWSER);
  for (const node of nodes) {
    const p = ui.positions.get(node.address);
    if (connected.has(node.address)) {
      el('path', { d: linePath(me, p, rb, r), class: 'edge page-edge', 'marker-end': 'url(#arrow-page)' }, edges);
    } else if (dialling.has(node.address) || node.placeholder) {
      el('path', { d: linePath(me, p, rb, r), class: 'edge dial-edge' }, edges);
    }
  }

  for (const node of nodes) {
    const p = ui.positions.get(node.address);
    const up = connected.has(node.address);
    const state = up ? 'up' : dialling.has(node.address) || node.placeholder ? 'dialling' : 'down';
    const g = el('g', { class: `node ${state} ${node.watched ? 'watched' : 'unwatched'}`, transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})` }, nodeLayer);
    g.dataset.address = node.address;
    el('title', {}, g, `${node.address}${node.watched ? '' : ' (not watched: a JavaScript node, or not reached yet)'}`);
    el('circle', { r, class: 'body' }, g);
    el('text', { class: 'port', dy: '0.35em' }, g, state === 'down' ? '✕' : portOf(node.address));
    const cos = Math.cos(p.angle);
    const sin = Math.sin(p.angle);
    const lx = cos * (r + 12);
    let ly = sin * (r + 12);
    const anchor = cos > 0.35 ? 'start' : cos < -0.35 ? 'end' : 'middle';
    if (sin < -0.35) ly -= 18;
    else if (sin > 0.35) ly += 8;
    else ly -= 7;
    const pool = node.pool === null ? 'pool ?' : `pool ${node.pool}`;
    const status = up ? pool : state === 'dialling' ? `dialling · ${pool}` : node.pool === null ? 'not reached' : `not reached · last ${pool}`;
    el('text', { class: 'addr', x: lx, y: ly, 'text-anchor': anchor, dy: '0.35em' }, g, node.address);
    el('text', { class: 'pool', x: lx, y: ly + 15, 'text-anchor': anchor, dy: '0.35em' }, g, status);
  }

  // This page's peer, at the bottom of the ring.
  const g = el('g', { class: 'node browser', transform: `translate(${me.x.toFixed(1)},${me.y.toFixed(1)})` }, nodeLayer);
  el('title', {}, g, 'this page: a peer of its own (p2p_core::Node in WebAssembly), dial-only');
  el('rect', { x: -rb, y: -rb, width: 2 * rb, height: 2 * rb, rx: 9, class: 'body' }, g);
  el('text', { class: 'port', dy: '0.35em' }, g, '⌂');
  el('text', { class: 'addr', y: rb + 14, 'text-anchor': 'middle', dy: '0.35em' }, g, 'this page');
  el('text', { class: 'pool', y: rb + 29, 'text-anchor': 'middle', dy: '0.35em' }, g, `pool ${view.pool}`);

  renderPanels(host, nodes);
}

// A transaction reached `where`: a ring that grows and fades (one at a time per place,
// so a burst of thousands does not fill the page with rings).
function flash(where) {
  const p = ui.positions.get(where);
  const t = performance.now();
  if (!p || t - (ui.flashed.get(where) ?? -Infinity) < 300) return;
  ui.flashed.set(where, t);
  const c = el('circle', { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: where === BROWSER ? ui.radius + 8 : ui.radius, class: 'flash' }, $('live-flashes'));
  c.addEventListener('animationend', () => c.remove());
  setTimeout(() => c.remove(), 2000);
}

// ----- panels ----------------------------------------------------------------------------

function setText(id, text) {
  const e = $(id);
  if (e.textContent !== text) e.textContent = text;
}

function item(tag, text, className = '') {
  return Object.assign(document.createElement(tag), { textContent: text, className });
}

function renderPanels(host, nodes) {
  const { view } = host;
  const real = nodes.filter((n) => !n.placeholder);
  const up = real.filter((n) => view.connected.includes(n.address));
  setText('live-up', `${up.length}/${real.length}`);
  // Full: every reached node of ours holds a connection to every other reached node.
  // A JavaScript node's connections are unknown: the mesh is then only said of ours.
  const watchedUp = up.filter((n) => n.watched);
  const full = watchedUp.length > 0 && watchedUp.every((n) => up.every((m) => m === n || n.connected.includes(m.address)));
  const mesh = up.length < 2 ? '—' : !full ? 'partial' : watchedUp.length === up.length ? 'full ✓' : 'full ✓ (ours)';
  setText('live-mesh', mesh);
  $('live-chip-mesh').className = `chip ${up.length < 2 ? '' : full ? 'ok' : 'warn'}`;
  $('live-chip-nodes').className = `chip ${real.length > up.length ? 'warn' : up.length > 0 ? 'ok' : ''}`;

  setText('live-connected', String(view.connected.length));
  setText('live-dialling', String(view.dialling.length));
  setText('live-pool', String(view.pool));
  setText('live-dials', `${host.counts.opened} opened, ${host.counts.failed} failed`);
  $('live-tx').disabled = host.fatal !== null;

  // Nodes table.
  const rows = real.map((n) => {
    const tr = document.createElement('tr');
    const isUp = view.connected.includes(n.address);
    const state = isUp ? 'up' : view.dialling.includes(n.address) ? 'dialling' : 'down';
    tr.className = state;
    tr.append(
      item('td', n.address),
      item('td', state === 'down' ? 'not reached' : state, 'state'),
      item('td', n.pool === null ? '?' : String(n.pool)),
      item('td', n.watched ? (isUp ? n.connected.map(portOf).join(' ') || '—' : '') : 'not watched', 'muted'),
    );
    return tr;
  });
  $('live-nodes').querySelector('tbody').replaceChildren(...rows);

  // Transactions, newest first, with a mark for each place each has reached.
  const places = [BROWSER, ...real.map((n) => n.address)];
  const txs = [...ui.txs.values()].slice(-TX_ROWS).reverse();
  const txRows = txs.map((tx) => {
    const li = document.createElement('li');
    li.append(item('code', `${tx.hash.slice(0, 12)}…`));
    li.title = tx.hash;
    const marks = document.createElement('span');
    marks.className = 'marks';
    for (const place of places) {
      const m = item('span', place === BROWSER ? '⌂' : portOf(place), `mark ${tx.reached.has(place) ? 'lit' : ''}`);
      m.title = place;
      marks.append(m);
    }
    li.append(marks);
    if (tx.made) li.append(item('span', 'made here', 'muted small'));
    return li;
  });
  $('live-txs').replaceChildren(...(txRows.length ? txRows : [item('li', 'none yet: press “Make a transaction”, or run add-transaction in a node folder', 'empty')]));

  // The problem, if any.
  const box = $('live-error');
  if (ui.error === null) {
    box.hidden = true;
  } else {
    box.hidden = false;
    const { title, text } = ui.error;
    if (box.dataset.shown !== title + text) {
      box.dataset.shown = title + text;
      box.replaceChildren(item('strong', title), item('p', text));
      if (ui.error.bad) box.append(addressForm(), simulatorLink());
    }
  }

  if (ui.logDirty) {
    ui.logDirty = false;
    const list = $('live-log');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
    list.replaceChildren(
      ...ui.log.map((line) => {
        const li = item('li', '', line.level);
        li.append(item('span', line.at.toISOString().slice(11, 23), 't'), ` ${line.text}`);
        return li;
      }),
    );
    if (atBottom) list.scrollTop = list.scrollHeight;
  }
}

function addressForm() {
  const form = document.createElement('form');
  form.className = 'row';
  form.action = './';
  const input = Object.assign(document.createElement('input'), { type: 'text', name: 'live', value: EXAMPLE });
  input.setAttribute('aria-label', 'address of a node');
  form.append(input, item('button', 'Watch'));
  return form;
}

function simulatorLink() {
  return Object.assign(item('a', '◀ back to the simulator'), { href: './' });
}

// ----- start -----------------------------------------------------------------------------

function makeTransaction() {
  try {
    const hash = ui.live.addTransaction();
    ui.made.push(hash);
    reach(hash, BROWSER, true);
    note('info', `page: made transaction ${hash}`);
  } catch (error) {
    note('warn', `page: could not make a transaction: ${error instanceof Error ? error.message : error}`);
  }
  requestRender();
}

// The page's own state as plain JSON, for tests and the curious (window.live.state()).
function state() {
  const host = refresh();
  const { view } = host;
  return {
    address: ui.address,
    nodes: sortedNodes().map((n) => {
      const up = view.connected.includes(n.address);
      return { address: n.address, up, watched: n.watched, pool: n.pool, connected: up ? [...n.connected] : [] };
    }),
    browser: { connected: [...view.connected], dialling: [...view.dialling], pool: view.pool, recent: [...view.recent] },
    error: ui.error === null ? null : `${sentence(ui.error.title)} ${ui.error.text}`,
    made: [...ui.made],
    transactions: [...ui.txs.values()].map((tx) => ({ hash: tx.hash, reached: [...tx.reached] })),
    counts: host.counts,
    anomalies: host.anomalies,
  };
}

export async function runLive(address) {
  document.documentElement.dataset.mode = 'live';
  ui.address = address.trim();
  setText('live-address', ui.address || '(no address)');
  document.title = `live: ${ui.address} — p2p gossip`;
  $('live-tx').addEventListener('click', makeTransaction);
  new ResizeObserver(() => requestRender()).observe($('live-net'));
  ui.live = await startLive(ui.address, {
    onChange: requestRender,
    onWatched,
    onPersist: (hash) => reach(hash, BROWSER),
    onLog: (level, text) => note(level, text),
    onError: (message) => note('warn', `page: ${message}`),
  });
  window.addEventListener('pagehide', () => ui.live.stop());
  window.live = {
    ready: true,
    state,
    makeTransaction: () => {
      makeTransaction();
      return ui.made[ui.made.length - 1];
    },
    // Where a node is drawn, in page coordinates.
    nodeCenter(address) {
      const p = ui.positions.get(address);
      if (!p) return null;
      const rect = $('live-net').getBoundingClientRect();
      return { x: rect.left + p.x, y: rect.top + p.y };
    },
  };
  render();
}
