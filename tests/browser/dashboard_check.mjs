#!/usr/bin/env node
// Drives the relay's dashboard in headless Chromium through one scenario: the token form, the
// client and tunnel in their panels, the request counter moving with traffic, a basic_auth
// refusal showing up live with its reason, and Kick closing the client's session (the client
// comes back with another id). Any CSP violation, page error or console error fails it.
//
// Traffic comes from the caller: when the scenario needs some, this script prints a line
// {"need": NAME} on stdout and waits for {"done": NAME} (or {"error": TEXT}) on stdin. NAME is
//   traffic   send --requests requests that the relay answers 2xx
//   refusal   send one request to --refused-path that basic_auth refuses
// Every stdout line is JSON: {"step": ...} progress, {"need": ...}, and a last line
// {"ok": true, "result": {...}} or {"ok": false, "step": ..., "error": ...} (exit status 1).
//
// Usage: node dashboard_check.mjs --url http://127.0.0.1:7836/ --token TOKEN --client-id HEX
//          --tunnel demo --site shop.test --requests 20 --refused-path /private
//          --screenshot build/test-artifacts/dashboard.png [--chromium /usr/bin/chromium]
//          [--timeout-ms 15000]
import { resolve } from 'node:path';

import { emit, fail, finish, loadChromium, need, openPage, options, state } from './check_io.mjs';

const opt = options({
  'url': { type: 'string' },
  'token': { type: 'string' },
  'client-id': { type: 'string' },
  'tunnel': { type: 'string' },
  'site': { type: 'string' },
  'requests': { type: 'string', default: '20' },
  'refused-path': { type: 'string' },
  'screenshot': { type: 'string' },
  'chromium': { type: 'string', default: '/usr/bin/chromium' },
  'timeout-ms': { type: 'string', default: '15000' },
}, ['url', 'token', 'client-id', 'tunnel', 'site', 'refused-path', 'screenshot']);
const TIMEOUT = state.timeoutMs;
const REQUESTS = Number(opt.requests);
const screenshot = resolve(opt.screenshot);
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const chromium = await loadChromium();

const css = (s) => JSON.stringify(String(s));

// Waits for `predicate(arg)` in the page; on a timeout fails with what `describe` says.
async function waitFor(page, predicate, arg, what, describe) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: TIMEOUT });
  } catch (_) {
    fail(`${what} within ${TIMEOUT} ms; ${describe ? await describe() : ''}`);
  }
}

const rowsOf = (page, testid) => page.$$eval(`[data-testid=${css(testid)}]`,
  (rows) => rows.map((r) => ({ data: { ...r.dataset }, text: r.innerText.replace(/\s+/g, ' ').trim() })));

async function counted(page) {
  return page.$eval('[data-testid="requests-total"]', (e) => Number(e.dataset.value || 'NaN'));
}

// ----------------------------------------------------------------- scenario

const result = { problems: [], csp_violations: [] };
const session = {};
let page;

async function scenario() {
  state.step = 'launch';
  page = await openPage(session, chromium, opt.chromium, { width: 1440, height: 1100 }, result.problems);
  result.browser = session.browser.version();
  // Violations are reported to the page as events as well as to the console.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });

  state.step = 'open';
  const response = await page.goto(opt.url, { timeout: TIMEOUT });
  if (!response || !response.ok()) fail(`GET ${opt.url} answered ${response ? response.status() : 'nothing'}`);
  const csp = response.headers()['content-security-policy'];
  if (csp !== CSP) fail(`the page's CSP is ${JSON.stringify(csp)}`);
  await page.locator('[data-testid="token-panel"]').waitFor({ state: 'visible' });
  if (await page.locator('#main').isVisible()) fail('the panels show before the token was given');
  emit({ step: state.step });

  state.step = 'token';
  await page.locator('[data-testid="token-input"]').fill(opt.token);
  await page.locator('[data-testid="token-submit"]').click();
  const client = page.locator(`[data-testid="client-row"][data-id=${css(opt['client-id'])}]`);
  try {
    await client.waitFor({ timeout: TIMEOUT });
  } catch (_) {
    fail(`no row for client ${opt['client-id']}; clients: ${JSON.stringify(await rowsOf(page, 'client-row'))}; ` +
      `token error: ${JSON.stringify(await page.locator('[data-testid="token-error"]').innerText())}`);
  }
  result.client_row = (await client.innerText()).replace(/\s+/g, ' ').trim();
  if (!result.client_row.includes('http:' + opt.tunnel)) fail('the client row does not name its tunnel: ' + result.client_row);
  const tunnel = page.locator(`[data-testid="tunnel-row"][data-name=${css(opt.tunnel)}][data-state="serving"]`);
  try {
    await tunnel.waitFor({ timeout: TIMEOUT });
  } catch (_) {
    fail(`no serving row for tunnel ${opt.tunnel}; tunnels: ${JSON.stringify(await rowsOf(page, 'tunnel-row'))}`);
  }
  result.tunnel_row = (await tunnel.innerText()).replace(/\s+/g, ' ').trim();
  await page.locator(`[data-testid="site-row"][data-host=${css(opt.site)}]`).first().waitFor();
  result.members = await page.$$eval('[data-testid="member"]', (m) => m.map((e) => e.dataset.health));
  await page.locator('[data-testid="live"][data-state="live"]').waitFor();
  result.token_kept = await page.evaluate(() => sessionStorage.getItem('porthole-admin-token') !== null);
  if (!result.token_kept) fail('the token is not in sessionStorage');
  emit({ step: state.step, client: result.client_row, tunnel: result.tunnel_row });

  state.step = 'request counter';
  await waitFor(page, () => {
    const e = document.querySelector('[data-testid="requests-total"]');
    return e && e.dataset.value !== '';
  }, null, 'no rate event reached the page');
  result.counted_before = await counted(page);
  await need('traffic');
  await waitFor(page, (want) => Number(document.querySelector('[data-testid="requests-total"]').dataset.value) >= want,
    result.counted_before + REQUESTS, `the request counter did not reach ${result.counted_before + REQUESTS}`,
    async () => `it shows ${await counted(page)}`);
  result.counted_after = await counted(page);
  await waitFor(page, () => Number(document.querySelector('[data-testid="graph-requests"]').dataset.samples) >= 2,
    null, 'the requests graph has fewer than two samples');
  emit({ step: state.step, before: result.counted_before, after: result.counted_after });

  state.step = 'refusal';
  await need('refusal');
  const refusal = page.locator('[data-testid="event-row"][data-kind="refusal"][data-reason="basic_auth"][data-status="401"]');
  try {
    await refusal.first().waitFor({ timeout: TIMEOUT });
  } catch (_) {
    fail('no basic_auth refusal row; rows: ' + JSON.stringify(await rowsOf(page, 'event-row')));
  }
  result.refusal_row = (await refusal.first().innerText()).replace(/\s+/g, ' ').trim();
  if (!result.refusal_row.includes(opt['refused-path'])) fail('the refusal row lacks the path: ' + result.refusal_row);
  if (!result.refusal_row.includes(opt.site)) fail('the refusal row lacks the site: ' + result.refusal_row);
  await page.screenshot({ path: screenshot, fullPage: true });
  emit({ step: state.step, row: result.refusal_row });

  state.step = 'kick';
  const kick = client.locator('[data-testid="kick-button"]');
  await kick.click();
  await kick.click();  // the second click confirms
  await waitFor(page, (id) => {
    const n = document.querySelector('[data-testid="notice"]');
    return n && !n.hidden && n.textContent.includes('Closed client ' + id.slice(0, 8));
  }, opt['client-id'], 'no notice that the client was closed',
  async () => `notice: ${JSON.stringify(await page.locator('[data-testid="notice"]').innerText())}`);
  result.kicked = opt['client-id'];
  // The client reconnects; the list, refreshed every 5 s, shows it under its new id.
  await waitFor(page, (id) => {
    const rows = [...document.querySelectorAll('[data-testid="client-row"]')];
    return rows.length === 1 && rows[0].dataset.id !== id;
  }, opt['client-id'], 'the reconnected client did not show up',
  async () => `clients: ${JSON.stringify(await rowsOf(page, 'client-row'))}`);
  emit({ step: state.step });

  state.step = 'page errors';
  result.csp_violations = await page.evaluate(() => window.__cspViolations);
  if (result.csp_violations.length) fail('CSP violations: ' + result.csp_violations.join('; '));
  if (result.problems.length) fail(result.problems.join('\n'));
}

await finish(scenario, { session, result, screenshot, fullPage: true, details: () => ({ result }) });
