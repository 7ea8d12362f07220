// The live view in real headless Chromium against real p2p-node processes: three nodes on
// ports 22430-22432 in a temporary folder, the page opened as /?live=ws://localhost:22430.
// The page's peer must reach all three and see their full mesh, a transaction made in the
// page must reach every transactions.json, one made with add-transaction must reach the
// page, and a killed node must show as gone and come back. Bad addresses get a message.
// Saves wasm-demo/dist/live-screenshot.png.
//
// Needs the p2p-node binary at <workspace>/target/debug/p2p-node (scripts/test-all.sh builds
// it) or at $P2P_NODE, and the page in wasm-demo/dist (wasm-demo/build.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { access, constants, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openChromium, serve, watchProblems } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const workspace = path.resolve(here, '..', '..');
const binary = process.env.P2P_NODE ?? path.join(workspace, 'target', 'debug', 'p2p-node');
const screenshot = process.env.LIVE_SCREENSHOT ?? path.resolve(here, '..', 'dist', 'live-screenshot.png');

// Ports of this file alone, 22430 to 22439 (tests/src/lib.rs lists the Rust tests' ports;
// `up --web`'s test holds 22400 to 22419, the dial-only watcher test 22420 to 22429).
const PORTS = [22430, 22431, 22432];
const UNREACHABLE = 22439; // nothing listens here
const ADDRESSES = PORTS.map((port) => `ws://localhost:${port}`);
const DEADLINE_MS = 20_000;

// Chromium reports every refused WebSocket dial as a console error of its own; with a node
// down the page's peer redials it (as the core decides), so those are expected. Only those.
const REFUSED_DIAL = /^WebSocket connection to 'ws:\/\/localhost:2243\d\/' failed: Error in connection establishment: net::ERR_CONNECTION_REFUSED$/;

async function binaryOrFail() {
  await access(binary, constants.X_OK).catch(() => {
    throw new Error(
      `no p2p-node binary at ${binary}: build it with \`cargo build -p native-host\` at the workspace root ` +
        '(scripts/test-all.sh does), or point $P2P_NODE at one',
    );
  });
}

// Three node folders (node-1 .. node-3), each knowing the other two, and their processes.
async function network() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wasm-demo-live-'));
  const folders = [];
  for (const [i, port] of PORTS.entries()) {
    const folder = path.join(dir, `node-${i + 1}`);
    await mkdir(folder);
    await writeFile(path.join(folder, '.env'), `PORT=${port}\n`);
    await writeFile(path.join(folder, 'known-peers.json'), JSON.stringify(ADDRESSES.filter((_, k) => k !== i)));
    await writeFile(path.join(folder, 'transactions.json'), '[]');
    folders.push(folder);
  }
  const processes = new Map(); // index -> child process
  const logOf = (i) => path.join(folders[i], 'node.log');
  return {
    dir,
    folders,
    async start(i) {
      const log = await open(logOf(i), 'a');
      const child = spawn(binary, ['start', '--dir', folders[i]], { stdio: ['ignore', 'ignore', log.fd] });
      await log.close();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      processes.set(i, { child, exited });
      await listening(PORTS[i], exited, () => this.logs());
    },
    async kill(i) {
      const p = processes.get(i);
      if (!p) return;
      processes.delete(i);
      p.child.kill('SIGKILL');
      await p.exited;
    },
    async killAll() {
      await Promise.all([...processes.keys()].map((i) => this.kill(i)));
    },
    async pool(i) {
      return JSON.parse(await readFile(path.join(folders[i], 'transactions.json'), 'utf8'));
    },
    async logs() {
      const parts = await Promise.all(
        folders.map(async (f, i) => `--- node-${i + 1} (${ADDRESSES[i]}) log ---\n${await readFile(logOf(i), 'utf8').catch(() => '(none)')}`),
      );
      return parts.join('\n');
    },
  };
}

// Until something accepts TCP connections on `port`; fails if the process exits first.
async function listening(port, exited, logs) {
  let gone = false;
  exited.then(() => { gone = true; });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (gone) throw new Error(`p2p-node on port ${port} exited at start:\n${await logs()}`);
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`p2p-node on port ${port} is not listening after 10 s:\n${await logs()}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const liveState = (page) => page.evaluate(() => window.live.state());

// Polls `check` (which returns true when done) until the deadline; on timeout fails with
// `what` and the last page state.
async function eventually(page, what, check, ms = DEADLINE_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await liveState(page);
    if (await check(last)) return last;
    if (Date.now() > deadline) {
      assert.fail(`${what}: not within ${ms / 1000} s; the page's state:\n${JSON.stringify(last, null, 2)}`);
    }
    await sleep(100);
  }
}

const nodeIn = (s, address) => s.nodes.find((n) => n.address === address);

function fullMesh(s) {
  return ADDRESSES.every((a) => {
    const n = nodeIn(s, a);
    return n?.up && ADDRESSES.every((b) => b === a || n.connected.includes(b)) && s.browser.connected.includes(a);
  });
}

async function openPage(server, query) {
  const url = `http://127.0.0.1:${server.address().port}/`;
  const browser = await openChromium();
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  const problems = watchProblems(page, url, { allowConsole: [REFUSED_DIAL] });
  // The page's WebSockets go to the nodes on this machine and nowhere else.
  page.on('websocket', (ws) => {
    if (!/^ws:\/\/localhost:\d+\/?$/.test(ws.url())) problems.push(`a WebSocket off this machine: ${ws.url()}`);
  });
  await page.goto(`${url}${query}`);
  await page.waitForFunction(() => window.live?.ready === true, null, { timeout: 30_000 });
  return { browser, page, problems, url };
}

test('the live view shows the real network, its transactions, and a node that dies and comes back', { timeout: 240_000 }, async () => {
  await binaryOrFail();
  const nodes = await network();
  const server = await serve();
  let browser;
  let passed = false;
  try {
    for (const i of PORTS.keys()) await nodes.start(i);
    const opened = await openPage(server, `?live=${ADDRESSES[0]}`);
    browser = opened.browser;
    const { page, problems } = opened;

    // The three nodes, up, in a full mesh, and this page connected to each.
    let s = await eventually(page, 'the page reaches all three nodes and sees their full mesh', fullMesh);
    assert.deepEqual(s.nodes.map((n) => n.address), ADDRESSES, 'exactly the three nodes are drawn');
    assert.ok(s.nodes.every((n) => n.watched && n.pool === 0), 'every node streams its state; the pools start empty');
    assert.equal(s.error, null);
    // Drawn as such (the picture follows the state at the next animation frame).
    await page.waitForFunction(
      () =>
        document.querySelector('#live-up').textContent === '3/3' &&
        document.querySelector('#live-mesh').textContent === 'full ✓' &&
        document.querySelectorAll('#live-net .node.up').length === 3 &&
        document.querySelectorAll('#live-net .node.browser').length === 1 &&
        document.querySelectorAll('#live-net .node-edge').length === 6,
      null,
      { timeout: 5_000 },
    );

    // A transaction made in the page reaches every transactions.json, and the page sees it
    // enter every node's pool.
    await page.click('#live-tx');
    s = await liveState(page);
    assert.equal(s.made.length, 1, 'the button made one transaction');
    const made = s.made[0];
    assert.match(made, /^[0-9a-f]{64}$/);
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const pools = await Promise.all(PORTS.map((_, i) => nodes.pool(i)));
      if (pools.every((pool) => pool.some((tx) => tx.hash === made))) break;
      assert.ok(Date.now() < deadline, `the page's transaction ${made} in every transactions.json: ${JSON.stringify(pools)}`);
      await sleep(100);
    }
    const tx = (await nodes.pool(0)).find((t) => t.hash === made);
    assert.ok(Number.isInteger(tx.amount) && tx.amount >= 1 && tx.amount <= 100, `amount 1..=100: ${tx.amount}`);
    await eventually(page, 'the page sees its transaction enter all three pools', (st) => {
      const seen = st.transactions.find((t) => t.hash === made);
      return seen && ADDRESSES.every((a) => seen.reached.includes(a)) && st.nodes.every((n) => n.pool === 1);
    });

    // One made with add-transaction at node-2 reaches the page's peer and shows in the pools.
    const { stdout } = await promisify(execFile)(binary, ['add-transaction', '--dir', nodes.folders[1]]);
    const added = /sent transaction ([0-9a-f]{64})/.exec(stdout)?.[1];
    assert.ok(added, `add-transaction printed its hash: ${stdout}`);
    s = await eventually(page, `add-transaction's ${added} in this page's peer and in every node's pool`, (st) => {
      const seen = st.transactions.find((t) => t.hash === added);
      return st.browser.recent.includes(added) && seen && ADDRESSES.every((a) => seen.reached.includes(a));
    });
    assert.equal(s.browser.pool, 2, "this page's peer holds both transactions");
    assert.ok(s.nodes.every((n) => n.pool === 2), 'every node reports a pool of 2');
    await page.waitForTimeout(200);
    await page.screenshot({ path: screenshot });

    // node-3 killed: not up in the page; the other two stay up and connected.
    await nodes.kill(2);
    s = await eventually(page, 'node-3 shows as not up once killed', (st) =>
      nodeIn(st, ADDRESSES[2])?.up === false && ADDRESSES.slice(0, 2).every((a) => nodeIn(st, a)?.up));
    assert.equal(s.error, null, 'two nodes left is no error');
    assert.ok(!s.browser.connected.includes(ADDRESSES[2]));

    // Restarted: the page's peer redials it (the core's backoff, at most ~5 s apart).
    await nodes.start(2);
    await eventually(page, 'node-3 shows up again after a restart, in the full mesh', fullMesh);

    // Every node gone: said so; one back: the message goes.
    await nodes.killAll();
    s = await eventually(page, 'the page says every node is gone', (st) => st.error !== null && /every node is gone/.test(st.error));
    assert.ok(s.nodes.every((n) => !n.up));
    await page.waitForSelector('#live-error', { state: 'visible', timeout: 5_000 });
    assert.match(await page.textContent('#live-error'), /every node is gone/);
    await nodes.start(0);
    await eventually(page, 'the message goes when node-1 is back', (st) => st.error === null && nodeIn(st, ADDRESSES[0])?.up);
    await page.waitForSelector('#live-error', { state: 'hidden', timeout: 5_000 });

    assert.deepEqual((await liveState(page)).anomalies, [], 'the peer asked for nothing the page could not carry out');
    assert.deepEqual(problems, []);
    passed = true;
  } catch (error) {
    console.error(await nodes.logs());
    throw error;
  } finally {
    await nodes.killAll();
    await browser?.close();
    server.close();
    if (passed) await rm(nodes.dir, { recursive: true, force: true });
    else console.error(`node folders kept in ${nodes.dir}`);
  }
});

test('a malformed address gets a message saying how an address looks', { timeout: 60_000 }, async () => {
  const server = await serve();
  const { browser, page, problems } = await openPage(server, '?live=nope');
  try {
    const s = await eventually(page, 'an error for ?live=nope', (st) => st.error !== null, 5_000);
    assert.match(s.error, /nope/);
    assert.match(s.error, /ws:\/\/localhost:4001/, 'it shows how an address looks');
    await page.waitForSelector('#live-error', { state: 'visible', timeout: 5_000 });
    assert.match(await page.textContent('#live-error'), /ws:\/\/localhost:4001/);
    assert.ok(await page.isDisabled('#live-tx'));
    // One click back to the simulator, which still works.
    await page.click('#to-simulator');
    await page.waitForFunction(() => window.demo?.ready === true, null, { timeout: 30_000 });
    assert.ok(await page.isVisible('#curriculum'));
    assert.equal(await page.isVisible('#live-net'), false);
    // And from the simulator, the form opens live mode with the address typed in it.
    await page.fill('#go-live input[name=live]', `ws://localhost:${UNREACHABLE}`);
    await page.click('#go-live button');
    await page.waitForFunction(() => window.live?.ready === true, null, { timeout: 30_000 });
    assert.equal((await liveState(page)).address, `ws://localhost:${UNREACHABLE}`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    server.close();
  }
});

test('an address where nothing listens gets "cannot reach"', { timeout: 60_000 }, async () => {
  const server = await serve();
  const address = `ws://localhost:${UNREACHABLE}`;
  const { browser, page, problems } = await openPage(server, `?live=${address}`);
  try {
    const s = await eventually(page, `"cannot reach" for ${address}`, (st) => st.error !== null, 10_000);
    assert.match(s.error, new RegExp(`cannot reach ${address} — is the network running\\? Start it with \`p2p-node up 3 --web\``));
    await page.waitForSelector('#live-error', { state: 'visible', timeout: 5_000 });
    assert.match(await page.textContent('#live-error'), /cannot reach/);
    assert.equal(s.browser.connected.length, 0);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    server.close();
  }
});
