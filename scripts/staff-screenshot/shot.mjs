// Drives the Hydrogen web client in headless Chromium: signs in as the demo's nurse (a new
// device with end-to-end encryption), then runs `carebridge-demo script` so the whole
// triage conversation is encrypted to this device too, opens the patient's room and
// screenshots it once every message is shown decrypted.
//
//   node shot.mjs --client URL --homeserver URL --out FILE -- SCRIPT-COMMAND...
//
// run.sh starts everything and calls this; see README.md.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const dash = args.indexOf('--');
const scriptCmd = dash >= 0 ? args.slice(dash + 1) : [];
const opts = {
  client: 'http://127.0.0.1:18449/', homeserver: 'http://127.0.0.1:8008',
  user: 'nurse', password: 'carebridge-demo', out: 'staff-room.png',
  chromium: '/usr/bin/chromium', debug: '',
};
for (let i = 0; i < (dash >= 0 ? dash : args.length); i += 2) {
  const key = args[i].replace(/^--/, '');
  if (!(key in opts)) throw new Error(`unknown option ${args[i]}`);
  opts[key] = args[i + 1];
}
if (scriptCmd.length === 0) throw new Error('give the demo script command after --');

const step = (msg) => console.log(`==> ${msg}`);
// Words of each text message of the script's conversation (the patient's photo is checked
// as a loaded image), and what Hydrogen shows for a message it cannot decrypt.
const expected = ['Hi, this is Maria', '!sms secure', 'Secure mode', 'Thanks Maria', 'He is drinking'];
const undecryptable = /sent us the key|could not decrypt|unable to decrypt|decryption/i;

const profile = mkdtempSync(join(tmpdir(), 'carebridge-shot-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: opts.chromium,
  headless: true,
  viewport: { width: 1280, height: 800 },
  deviceScaleFactor: 1,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let exitCode = 1;
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  const debugShot = async (name) => {
    if (opts.debug) await page.screenshot({ path: join(opts.debug, `${name}.png`) });
  };

  step(`Hydrogen at ${opts.client}: signing in as ${opts.user} on ${opts.homeserver}`);
  await page.goto(opts.client);
  const hs = page.locator('#homeserver');
  await hs.waitFor({ timeout: 60_000 });
  await hs.fill(opts.homeserver);
  await hs.press('Enter');
  await page.locator('#username').waitFor({ timeout: 60_000 });
  await page.locator('#username').fill(opts.user);
  await page.locator('#password').fill(opts.password);
  await debugShot('1-login');
  await page.locator('#password').press('Enter');
  // The session is ready when the room list shows (first sync done, keys uploaded).
  await page.locator('.SessionView .RoomList').waitFor({ timeout: 120_000 });
  await page.waitForTimeout(3000);
  await debugShot('2-session');

  step(`Signed in; playing the conversation: ${scriptCmd.join(' ')}`);
  const script = spawn(scriptCmd[0], scriptCmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  let transcript = '';
  script.stdout.on('data', (chunk) => { transcript += chunk; process.stdout.write(chunk); });
  const scriptCode = await new Promise((resolve) => script.on('close', resolve));
  if (scriptCode !== 0) throw new Error(`the demo script failed (exit ${scriptCode})`);
  const patient = transcript.match(/patient (\+\d+)/)?.[1];
  if (!patient) throw new Error('no patient number in the script output');
  const digits = patient.slice(-4);

  // Hydrogen lists the room under the ghost's name, the number as the bridge formats it.
  const room = page.locator('.RoomList li', { hasText: digits }).first();
  const timeline = page.locator('.Timeline_scroller');
  const badge = page.locator('.RoomList .badge:not(.hidden)');
  const openRoom = async () => {
    await room.waitFor({ timeout: 60_000 });
    await room.click();
    await timeline.waitFor({ timeout: 60_000 });
    const deadline = Date.now() + 90_000;
    for (;;) {
      const text = await timeline.innerText();
      const missing = expected.filter((w) => !text.includes(w));
      const imageShown = await timeline.locator('img').evaluateAll(
        (imgs) => imgs.some((img) => img.complete && img.naturalWidth > 64));
      if (missing.length === 0 && !undecryptable.test(text) && imageShown) return;
      if (Date.now() > deadline) {
        await debugShot('3-timeout');
        throw new Error(`timed out; missing: ${missing.join(', ') || '-'}; image shown: ${imageShown}; ` +
          `undecryptable: ${undecryptable.test(text)}\n${text}`);
      }
      await page.waitForTimeout(1000);
    }
  };
  step(`Opening the room of ${patient}; waiting for every message to show, decrypted`);
  await openRoom();
  // Hydrogen marks the room read 2 s after it is opened, but Dendrite resets its unread
  // count a moment after answering the sync that echoes the receipt, and sends no update
  // after that, so the room list can keep the old count: come back to the room, as a nurse
  // would, until the list shows it read.
  for (let attempt = 0; ; attempt++) {
    await page.waitForTimeout(5000);
    if (await badge.count() === 0) break;
    if (attempt === 3) {
      console.error('staff-screenshot: warning: the room list still shows unread messages');
      break;
    }
    step('Coming back to the room so the room list shows it read');
    await page.reload();
    await openRoom();
  }
  // Scroll to the newest message and let the layout settle.
  await timeline.evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page.mouse.move(1270, 10);
  await page.waitForTimeout(1500);
  await page.screenshot({ path: opts.out });
  step(`Screenshot written to ${opts.out}`);
  exitCode = 0;
} catch (err) {
  console.error(`staff-screenshot: ${err.stack || err}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
