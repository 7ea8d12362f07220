// The simulator page in real headless Chromium: serves wasm-demo/dist/ on a local port,
// runs the curriculum preset, checks the page's own state, crashes a node, and saves
// wasm-demo/dist/screenshot.png. Run with `node --test` in this folder, after wasm-demo/build.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openChromium, serve, watchProblems } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// Into dist/ (not tracked), so a test run leaves the working tree clean; the README's
// picture, wasm-demo/screenshot.png, is a copy of one such run.
const screenshot = process.env.SCREENSHOT ?? path.resolve(here, '..', 'dist', 'screenshot.png');

const state = (page) => page.evaluate(() => window.demo.state());

test('the curriculum forms a full mesh, spreads a transaction, and a crash shows', { timeout: 180_000 }, async () => {
  const server = await serve();
  const url = `http://127.0.0.1:${server.address().port}/`;
  const browser = await openChromium();
  const { context } = browser;
  let problems = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    problems = watchProblems(page, url);

    await page.goto(url);
    await page.waitForFunction(() => window.demo?.ready === true, null, { timeout: 30_000 });
    assert.equal((await state(page)).nodes.length, 0, 'the page starts with an empty network');

    // The curriculum, as a person would start it, sped up.
    await page.click('#curriculum');
    await page.selectOption('#speed', '5');
    await page.waitForFunction(
      () => {
        const s = window.demo.state();
        return (
          s.transactions === 1 &&
          s.fullMesh &&
          s.nodes.length === 3 &&
          s.nodes.every((n) => n.state === 'up' && n.pool.length === 1)
        );
      },
      null,
      { timeout: 60_000, polling: 100 },
    );
    await page.click('#play'); // pause
    let s = await state(page);
    assert.equal(s.playing, false);
    assert.deepEqual(
      s.nodes.map((n) => n.address),
      ['ws://localhost:4001', 'ws://localhost:4002', 'ws://localhost:4003'],
    );
    for (const node of s.nodes) {
      const others = s.nodes.filter((n) => n.id !== node.id).map((n) => n.address).sort();
      assert.deepEqual([...node.connectedAddresses].sort(), others, `${node.address} is connected to both others`);
    }
    const hash = s.nodes[0].pool[0];
    assert.ok(s.nodes.every((n) => n.pool[0] === hash), 'the one transaction is in all three pools');
    assert.equal(s.delivered, 1);
    assert.equal(s.violations, 0);
    assert.ok(s.counters.sent.HANDSHAKE >= 6, 'every connection began with a HANDSHAKE');
    assert.ok(s.counters.sent.TRANSACTION >= 2, 'the transaction reached two other nodes');
    assert.ok(s.counters.sent.TRANSACTION < 6, 'fewer frames than naive flooding, N(N-1) = 6');
    assert.equal(await page.textContent('#mesh'), 'full ✓');
    assert.equal(await page.textContent('#nodes-up'), '3/3');
    assert.equal(await page.textContent('#c-tx'), '1');

    // Crash node-3 through the page: click it on the canvas, then Crash.
    const before = s.counters;
    const closesText = await page.textContent('#c-closes');
    const at = await page.evaluate(() => window.demo.nodeCenter(2));
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction(() => window.demo.state().selected === 2);
    assert.match(await page.textContent('#sel-title'), /ws:\/\/localhost:4003 · running/);
    await page.click('#sel-crash');
    await page.evaluate(() => window.demo.advance(1500));
    s = await state(page);
    assert.equal(s.nodes[2].state, 'down');
    assert.deepEqual(s.nodes[2].pool, [hash], 'a crashed node keeps its stored pool');
    assert.ok(s.counters.closes > before.closes, 'the crash closed connections');
    for (const i of [0, 1]) {
      assert.deepEqual(s.nodes[i].connectedAddresses, [s.nodes[1 - i].address], 'the survivors drop node-3');
    }
    await page.waitForFunction((text) => document.querySelector('#c-closes').textContent !== text, closesText);
    assert.equal(await page.textContent('#nodes-up'), '2/3');
    assert.match(await page.textContent('#sel-title'), /crashed/);

    // For the picture: node-3 back, a second transaction on its way, node-2 inspected.
    await page.click('#sel-restart');
    await page.evaluate(() => window.demo.advance(2500));
    s = await state(page);
    assert.equal(s.nodes[2].state, 'up');
    assert.ok(s.fullMesh, 'the restarted node rejoins the mesh');
    await page.evaluate(() => {
      window.demo.select(1);
      window.demo.addTransaction(0);
    });
    await page.evaluate(() => {
      // Until the new transaction's frames are about halfway.
      const halfway = () => window.demo.state().framesInFlight.some((f) => f.type === 'TRANSACTION' && f.progress >= 0.45);
      for (let i = 0; i < 100 && !halfway(); i++) window.demo.advance(2);
    });
    await page.waitForTimeout(300); // let the panels and the canvas catch up
    await page.screenshot({ path: screenshot });

    assert.deepEqual(await page.evaluate(() => window.demo.check()), []);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    server.close();
  }
});
