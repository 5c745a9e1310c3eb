// Headless Chromium on the demo page of `wsengine serve`: two pages join a room, chat both
// ways, see each other in the presence list and the typing indicator. Fails on any console
// error; saves a screenshot.
//
// Usage: node demo_browser.mjs HTTP_URL SCREENSHOT.png
// Needs playwright-core (PLAYWRIGHT_CORE: its directory, default interop/node_modules) and the
// system Chromium (CHROMIUM, default /usr/bin/chromium), never a downloaded browser.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node demo_browser.mjs HTTP_URL SCREENSHOT.png');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');
const profile = mkdtempSync(join(tmpdir(), 'wsengine-demo-'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const errors = [];
const timeout = 15000;
try {
  const open = async (name, viewport) => {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(`${name}: ${msg.text()}`); });
    page.on('pageerror', (error) => errors.push(`${name}: ${error.message}`));
    await page.goto(url, { timeout });
    await page.fill('#name', name);
    await page.fill('#room', 'lobby');
    await page.click('#join button');
    await page.waitForSelector('#status.online', { timeout });
    return page;
  };
  // A desktop and a phone-sized window.
  const alice = await open('alice', { width: 1280, height: 800 });
  const bob = await open('bob', { width: 390, height: 844 });
  await alice.waitForSelector('#members li[data-user="bob"]', { timeout });
  await bob.waitForSelector('#members li[data-user="alice"]', { timeout });
  // Typing sends a whisper; the other page shows it.
  await alice.type('#text', 'hello from alice');
  await bob.waitForFunction(() => document.querySelector('#typing').textContent.includes('alice typing'), null, { timeout });
  await alice.click('#send button');
  await bob.waitForFunction(() => document.querySelector('#messages').textContent.includes('hello from alice'), null, { timeout });
  await bob.fill('#text', 'hi alice');
  await bob.click('#send button');
  await alice.waitForFunction(() => document.querySelector('#messages').textContent.includes('hi alice'), null, { timeout });
  await bob.screenshot({ path: screenshot, fullPage: true });
  await alice.screenshot({ path: screenshot.replace(/\.png$/, '-desktop.png'), fullPage: true });
  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log('demo page: presence, typing and chat both ways OK');
} catch (error) {
  console.error(`demo page check failed: ${error.message}`);
  if (errors.length) console.error(errors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
