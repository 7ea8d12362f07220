// The browser host of a live peer: p2p-core's Node (dial-only, watching), compiled to
// WebAssembly as `LivePeer`, joins the real network through one of its nodes.
//
// This file owns the WebSockets, one timer and the ids that name them, and nothing else:
// it tells the peer what happened (a socket opened, failed, got a frame, closed; the
// timer fired), then carries out every action the peer asks for, in order. Whom to dial,
// when to retry, what to send and what a frame means are the peer's decisions, never
// this file's. Log lines are handed to the page for people to read, never acted on.
import init, * as wasm from './wasm_demo.js';

const encoder = new TextEncoder();
const now = () => performance.now();

// Starts a live peer that joins the network through `address` (e.g. ws://localhost:4001).
//
// Handlers (all optional), called as things happen:
// - `onChange()`: something changed; read `state()` when you next draw.
// - `onWatched(from, event)`: a node streamed an event (`state`, `peers`, `pooled`).
// - `onPersist(hash)`: a transaction entered this page's pool.
// - `onLog(level, text)`: a line for people.
// - `onError(message)`: the peer could not start (a malformed address, no LivePeer).
//
// Returns `{ addTransaction(), state(), stop() }`; if the peer could not start,
// `state().fatal` holds the message given to `onError` (and `state().badAddress` says
// whether join refused the address).
export async function startLive(address, handlers = {}) {
  await init();
  const host = new LiveHost(address, handlers);
  host.begin();
  return {
    addTransaction: () => host.addTransaction(),
    state: () => host.state(),
    stop: () => host.stop(),
  };
}

class LiveHost {
  constructor(address, handlers) {
    this.address = address;
    this.on = {
      change: handlers.onChange ?? (() => {}),
      watched: handlers.onWatched ?? (() => {}),
      persist: handlers.onPersist ?? (() => {}),
      log: handlers.onLog ?? (() => {}),
      error: handlers.onError ?? (() => {}),
    };
    this.peer = null;
    this.fatal = null;
    this.badAddress = false; // the fatal error is join's: the address is at fault
    this.stopped = false;
    this.timer = null;
    this.dials = new Map(); // dial id -> { ws, abandoned }, until it opens or fails
    this.conns = new Map(); // conn id (ours) -> WebSocket, until closed() is reported
    this.nextConn = 1;
    // What we saw, for the page's messages and for tests; none of it steers the peer.
    this.counts = { dials: 0, opened: 0, failed: 0, abandoned: 0, closed: 0, sent: 0, received: 0, persisted: 0, watched: 0 };
    this.anomalies = [];
  }

  begin() {
    if (typeof wasm.LivePeer !== 'function') {
      return this.die('this build of the page has no live peer (LivePeer is missing from wasm_demo.js): rebuild it with wasm-demo/build.sh');
    }
    try {
      this.peer = new wasm.LivePeer(crypto.getRandomValues(new Uint32Array(1))[0]);
    } catch (error) {
      return this.die(messageOf(error));
    }
    try {
      this.peer.join(this.address);
    } catch (error) {
      this.badAddress = true;
      return this.die(messageOf(error));
    }
    this.input(() => this.peer.start(now()));
  }

  die(message) {
    this.fatal = message;
    this.stop();
    this.on.error(message);
    this.on.change();
  }

  // ----- inputs: each one is followed by draining the peer's actions ----------------------

  input(feed) {
    if (this.stopped) return;
    this.tell(feed);
    this.drain();
  }

  // One call into the peer. Inside the drain loop (a write, a dial the browser refused
  // outright) it needs no drain of its own: the loop goes on polling.
  tell(feed) {
    try {
      feed();
    } catch (error) {
      this.anomaly(`the peer refused an input: ${messageOf(error)}`);
    }
  }

  drain() {
    while (!this.stopped) {
      let text;
      try {
        text = this.peer.pollAction();
      } catch (error) {
        this.anomaly(`pollAction threw: ${messageOf(error)}`);
        break;
      }
      if (text == null) break;
      let action;
      try {
        action = JSON.parse(text);
      } catch {
        this.anomaly(`an action that is not JSON: ${text.slice(0, 200)}`);
        continue;
      }
      this.carryOut(action);
    }
    if (this.stopped) return;
    this.schedule();
    this.on.change();
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    const at = this.peer.pollTimeoutMs();
    if (at == null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.input(() => this.peer.timeout(now()));
    }, Math.max(0, at - now()));
  }

  // ----- actions ------------------------------------------------------------------------

  carryOut(action) {
    switch (action.kind) {
      case 'dial':
        return this.dial(action.dial, action.address);
      case 'send':
        return this.send(action.conn, action.frame);
      case 'close':
        return this.close(action.conn);
      case 'abandonDial':
        return this.abandon(action.dial);
      case 'persist':
        this.counts.persisted += 1;
        return this.on.persist(action.hash);
      case 'log':
        return this.on.log(action.level, action.text);
      case 'watched':
        this.counts.watched += 1;
        return this.on.watched(action.from, action.event);
      default:
        return this.anomaly(`an action of unknown kind: ${JSON.stringify(action).slice(0, 200)}`);
    }
  }

  dial(dial, address) {
    this.counts.dials += 1;
    let ws;
    try {
      ws = new WebSocket(address);
    } catch (error) {
      // The browser refuses the URL outright: to the peer, a dial that failed.
      this.on.log('warn', `the browser cannot dial ${address}: ${messageOf(error)}`);
      this.counts.failed += 1;
      this.tell(() => this.peer.dialFailed(dial, now()));
      return;
    }
    ws.binaryType = 'arraybuffer';
    const pending = { ws, abandoned: false };
    this.dials.set(dial, pending);
    let settled = false;
    const failed = () => {
      if (settled) return;
      settled = true;
      this.dials.delete(dial);
      if (pending.abandoned) return;
      this.counts.failed += 1;
      this.input(() => this.peer.dialFailed(dial, now()));
    };
    ws.onerror = failed;
    ws.onclose = failed;
    ws.onopen = () => {
      if (settled) return;
      settled = true;
      this.dials.delete(dial);
      if (pending.abandoned || this.stopped) {
        ws.onclose = null;
        ws.close();
        return;
      }
      this.counts.opened += 1;
      const conn = this.nextConn++;
      this.conns.set(conn, ws);
      this.attach(conn, ws);
      this.input(() => this.peer.dialOpened(dial, conn, now()));
    };
  }

  // An opened socket: frames in, and one report when it closes.
  attach(conn, ws) {
    ws.onerror = null; // a close event follows
    ws.onmessage = (event) => {
      this.counts.received += 1;
      if (typeof event.data === 'string') {
        this.input(() => this.peer.text(conn, event.data, now()));
      } else {
        this.input(() => this.peer.binary(conn, event.data.byteLength, now()));
      }
    };
    ws.onclose = () => {
      if (this.conns.get(conn) !== ws) return;
      this.conns.delete(conn);
      this.counts.closed += 1;
      this.input(() => this.peer.closed(conn, now()));
    };
  }

  send(conn, frame) {
    const ws = this.conns.get(conn);
    if (ws === undefined) {
      return this.anomaly(`send on connection ${conn}, which is not open`);
    }
    ws.send(frame);
    this.counts.sent += 1;
    this.tell(() => this.peer.written(conn, encoder.encode(frame).length, now()));
  }

  close(conn) {
    const ws = this.conns.get(conn);
    if (ws === undefined) {
      return this.anomaly(`close of connection ${conn}, which is not open`);
    }
    ws.close(); // its close event reports it
  }

  abandon(dial) {
    const pending = this.dials.get(dial);
    if (pending === undefined) {
      return this.anomaly(`abandonDial of dial ${dial}, which is not pending`);
    }
    pending.abandoned = true;
    this.counts.abandoned += 1;
    this.dials.delete(dial);
    pending.ws.close();
  }

  anomaly(text) {
    if (this.anomalies.length < 100) this.anomalies.push(text);
    console.warn(`live peer: ${text}`);
    this.on.log('warn', `page: ${text}`);
  }

  // ----- what the page calls ------------------------------------------------------------

  // Makes a transaction at this page's peer (a random amount from 1 to 100, stamped
  // now) and returns its hash.
  addTransaction() {
    if (this.peer === null || this.stopped) throw new Error(this.fatal ?? 'the live peer is stopped');
    const amount = 1 + Math.floor(Math.random() * 100);
    try {
      return this.peer.addTransaction(amount, Date.now(), now());
    } finally {
      this.drain();
    }
  }

  // Plain JSON: the peer's view (connected, dialling, pool, recent) and what this host
  // saw (dials opened and failed, sockets open, anything the peer asked that made no
  // sense).
  state() {
    let view = { connected: [], dialling: [], pool: 0, recent: [] };
    if (this.peer !== null && !this.stopped) {
      try {
        view = { ...view, ...JSON.parse(this.peer.view()) };
      } catch (error) {
        this.anomaly(`view() failed: ${messageOf(error)}`);
      }
    }
    return {
      address: this.address,
      fatal: this.fatal,
      badAddress: this.badAddress,
      view,
      counts: { ...this.counts },
      open: this.conns.size,
      pendingDials: this.dials.size,
      anomalies: [...this.anomalies],
    };
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    for (const { ws } of this.dials.values()) quietClose(ws);
    for (const ws of this.conns.values()) quietClose(ws);
    this.dials.clear();
    this.conns.clear();
    this.peer?.free();
    this.peer = null;
  }
}

function quietClose(ws) {
  ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  ws.close();
}

function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}
