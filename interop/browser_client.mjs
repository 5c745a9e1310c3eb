// Headless Chromium as a client of a wsengine echo server, driven by playwright-core.
//
// Usage: node browser_client.mjs URL
//
// Uses the system Chromium (CHROMIUM, default /usr/bin/chromium), never a downloaded browser.
// The page opens a WebSocket to URL, checks that `ws.extensions` includes permessage-deflate,
// sends text and binary messages from 1 B to 1 MiB one at a time, checks each echo, and closes
// with 1000. Exits non-zero on any failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { SIZES, text, binary } from './messages.mjs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node browser_client.mjs URL');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// The page's half of the check; runs inside Chromium.
async function check({ url, messages }) {
  const decode = (m) => (m.binary ? Uint8Array.from(atob(m.data), (c) => c.charCodeAt(0)) : m.data);
  const expected = messages.map((m) => ({ ...m, value: decode(m) }));
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`could not connect to ${url}`));
  });
  const extensions = ws.extensions;
  if (!extensions.includes('permessage-deflate')) {
    throw new Error(`permessage-deflate not negotiated (ws.extensions ${JSON.stringify(extensions)})`);
  }
  const incoming = [];
  let wake = null;
  let closed = null;
  ws.onmessage = (event) => {
    incoming.push(event.data);
    if (wake) wake();
  };
  ws.onclose = (event) => {
    closed = event;
    if (wake) wake();
  };
  const next = async () => {
    while (incoming.length === 0) {
      if (closed) throw new Error(`closed early: ${closed.code} ${closed.reason}`);
      await new Promise((resolve) => (wake = resolve));
      wake = null;
    }
    return incoming.shift();
  };
  for (const m of expected) {
    ws.send(m.value);
    const echo = await next();
    const kind = m.binary ? 'binary' : 'text';
    if (m.binary) {
      if (!(echo instanceof ArrayBuffer)) throw new Error(`echo of binary of ${m.size} bytes came back as text`);
      const got = new Uint8Array(echo);
      if (got.length !== m.value.length || got.some((b, i) => b !== m.value[i])) {
        throw new Error(`echo of ${kind} of ${m.size} bytes differs (got ${got.length} bytes)`);
      }
    } else if (echo !== m.value) {
      throw new Error(`echo of ${kind} of ${m.size} bytes differs`);
    }
  }
  ws.close(1000, 'checked');
  while (!closed) await new Promise((resolve) => (wake = resolve));
  if (closed.code !== 1000 || !closed.wasClean) {
    throw new Error(`close was ${closed.code} (clean: ${closed.wasClean}), expected a clean 1000`);
  }
  return { extensions, count: expected.length, userAgent: navigator.userAgent };
}

const messages = [];
for (const size of SIZES) {
  messages.push({ binary: false, size, data: text(size) });
  messages.push({ binary: true, size, data: Buffer.from(binary(size)).toString('base64') });
}

const userDataDir = mkdtempSync(join(tmpdir(), 'wsengine-chromium-'));
let context;
let status = 1;
try {
  // The flags of TESTING.md; playwright adds --headless itself and passes userDataDir.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const result = await page.evaluate(check, { url, messages });
  console.log(`browser client: ${result.userAgent}`);
  console.log(`browser client: connected to ${url}; extensions: ${result.extensions}`);
  console.log(`browser client: OK: ${result.count} messages of 1 B to 1 MiB echoed intact`);
  status = 0;
} catch (e) {
  console.error(`browser client: FAILED: ${e.message}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(status);
