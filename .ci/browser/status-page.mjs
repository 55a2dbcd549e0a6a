// The status page in headless Chromium (see .ci/browser.sh for the setup).
// Env: URL, API_KEY, CA, SPKI, CUT_PID, SCREENSHOT, USER_DATA_DIR, NODE_PATH.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import https from 'node:https';

const require = createRequire(process.env.NODE_PATH + '/');
const { chromium } = require('playwright-core');
const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };
const url = new URL(env('URL'));
const ca = readFileSync(env('CA'));

// A sale through the API, answered at once (Prefer: respond-async), over verified TLS.
function startSale(id, deviceId, amount) {
  const body = JSON.stringify({ deviceId, transactionId: id, paymentApp: 'browser-test', amount,
                                currencyCode: 'EUR', otherData: {} });
  return new Promise((resolve, reject) => {
    const req = https.request({ host: url.hostname, port: url.port, path: '/v1/sale', method: 'POST', ca,
      headers: { 'content-type': 'application/json', prefer: 'respond-async',
                 authorization: 'Bearer ' + env('API_KEY'), 'content-length': Buffer.byteLength(body) } },
      (res) => { let d = ''; res.on('data', (c) => d += c); res.on('end', () => resolve([res.statusCode, d])); });
    req.on('error', reject);
    req.end(body);
  });
}

const step = (what) => console.log(`status page: ${what}`);
const browser = await chromium.launchPersistentContext(env('USER_DATA_DIR'), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1100, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         `--ignore-certificate-errors-spki-list=${env('SPKI')}`],
});
let failed = false;
const page = browser.pages()[0] || await browser.newPage();
page.on('pageerror', (e) => { console.error('page error:', e.message); failed = true; });
try {
  const T = { timeout: 20000 };
  await page.goto(url.href);
  // The key is asked for, and kept only in the tab's session.
  await page.locator('#key').waitFor({ state: 'visible', ...T });
  step('asks for the API key');
  await page.fill('#keyInput', env('API_KEY'));
  await page.click('#key button');
  const stored = await page.evaluate(() => [sessionStorage.getItem('ecrlink.apiKey'), localStorage.length]);
  if (stored[0] !== env('API_KEY') || stored[1] !== 0) throw new Error(`key storage: ${stored}`);
  for (const lane of ['LANE-1', 'LANE-2']) {
    await page.locator(`.card[data-device="${lane}"][data-state="up"]`).waitFor(T);
    const word = await page.locator(`.card[data-device="${lane}"] [data-role=state]`).innerText();
    if (!/^up$/i.test(word.trim())) throw new Error(`${lane} state word: ${word}`);
  }
  step('both lanes up');
  // The journal's health, read with the key (/healthz follows the API's key rule).
  await page.locator('#journal', { hasText: 'journal: writable' }).waitFor(T);
  step('the journal is writable');
  const [status, answer] = await startSale('BROWSER-1', 'LANE-1', 1000);
  if (status !== 202) throw new Error(`sale: ${status} ${answer}`);
  // Live progress: a card stage while the sale runs, then the result in the list.
  await page.locator('.card[data-device="LANE-1"] [data-role=live][data-stage="waiting_for_card"], ' +
                     '.card[data-device="LANE-1"] [data-role=live][data-stage="pin"]').first().waitFor(T);
  step('the sale shows its stage live');
  await page.locator('tr.txn[data-id="BROWSER-1"][data-status="approved"]').waitFor(T);
  step('the sale ends approved');
  await page.selectOption('#filter', 'declined');
  await page.locator('tr.txn[data-id="BROWSER-1"]').waitFor({ state: 'detached', ...T });
  await page.selectOption('#filter', 'approved');
  await page.locator('tr.txn[data-id="BROWSER-1"][data-status="approved"]').waitFor(T);
  step('the status filter hides and shows it');
  process.kill(Number(env('CUT_PID')), 'SIGKILL');
  await page.locator('.card[data-device="LANE-2"][data-state="down"]').waitFor(T);
  await page.locator('.card[data-device="LANE-1"][data-state="up"]').waitFor(T);
  step('the cut lane is down, the other still up');
  await page.screenshot({ path: env('SCREENSHOT'), fullPage: true });
  step(`screenshot ${env('SCREENSHOT')}`);
} catch (e) {
  console.error('status page test failed:', e.message);
  try { await page.screenshot({ path: env('SCREENSHOT'), fullPage: true }); } catch {}
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
