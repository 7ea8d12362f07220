// What the page tests share: a static server for wasm-demo/dist/ and headless Chromium
// (Debian's /usr/bin/chromium, or $CHROMIUM) with a fresh profile.
import http from 'node:http';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const dist = path.resolve(here, '..', 'dist');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
};

// A static server for dist/, on 127.0.0.1 and a free port.
export async function serve(root = dist) {
  await access(path.join(root, 'index.html')).catch(() => {
    throw new Error(`${root}/index.html is missing: run wasm-demo/build.sh first`);
  });
  const server = http.createServer(async (req, res) => {
    const name = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(root, name.endsWith('/') ? `${name}index.html` : name);
    if (!file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

// Headless Chromium with a profile of its own; `close()` ends it and removes the profile.
export async function openChromium() {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'wasm-demo-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

// Collects what must not happen on `page`: page errors, console errors, and requests to
// anything but the page's own server at `url`. `allowConsole` lists patterns of console
// errors that are expected (the live test's: Chromium's own report of a refused dial).
export function watchProblems(page, url, { allowConsole = [] } = {}) {
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (allowConsole.some((pattern) => pattern.test(message.text()))) return;
    problems.push(`console error: ${message.text()}`);
  });
  // Nothing but our own server is asked for anything.
  page.on('request', (request) => {
    if (!request.url().startsWith(url) && !request.url().startsWith('data:')) {
      problems.push(`request off the page's server: ${request.url()}`);
    }
  });
  return problems;
}
