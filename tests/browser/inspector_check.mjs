#!/usr/bin/env node
// Drives the inspector page in headless Chromium through one scenario: a request shows up live,
// its detail renders, Replay and Edit & replay produce replay records, the filter narrows the
// list, a WebSocket's frames show up live in both directions, and Clear empties the list.
//
// Traffic comes from the caller: when the scenario needs some, this script prints a line
// {"need": NAME} on stdout and waits for {"done": NAME} (or {"error": TEXT}) on stdin. NAME is
//   http      send one request METHOD PATH (with a body containing BODY_TOKEN) through the tunnel
//   ws-open   open the WebSocket to WS_PATH through the tunnel and keep it open
//   ws-send   send the messages over it and read their echoes
//   ws-close  close it
// Every stdout line is JSON: {"step": ...} progress, {"need": ...}, and a last line
// {"ok": true, "result": {...}} or {"ok": false, "step": ..., "error": ...} (exit status 1).
//
// Usage: node inspector_check.mjs --url http://127.0.0.1:4040/ --public-url http://x.localhost:8080
//          --method POST --path /hello?x=1 --body-token TOKEN --edit-path /edited --edit-body TEXT
//          --ws-path /ws --ws-messages 3 --screenshot build/test-artifacts/inspector.png
//          [--chromium /usr/bin/chromium] [--timeout-ms 15000]
import { resolve } from 'node:path';

import { emit, fail, finish, loadChromium, need, openPage, options, state } from './check_io.mjs';

const opt = options({
  'url': { type: 'string' },
  'public-url': { type: 'string' },
  'method': { type: 'string', default: 'POST' },
  'path': { type: 'string' },
  'body-token': { type: 'string', default: '' },
  'edit-path': { type: 'string' },
  'edit-body': { type: 'string' },
  'ws-path': { type: 'string' },
  'ws-messages': { type: 'string', default: '3' },
  'screenshot': { type: 'string' },
  'chromium': { type: 'string', default: '/usr/bin/chromium' },
  'timeout-ms': { type: 'string', default: '15000' },
}, ['url', 'public-url', 'path', 'edit-path', 'edit-body', 'ws-path', 'screenshot']);

const TIMEOUT = state.timeoutMs;
const WS_MESSAGES = Number(opt['ws-messages']);
const screenshot = resolve(opt.screenshot);
const extraShot = screenshot.replace(/(\.png)?$/, '-http.png');

const chromium = await loadChromium();

// ------------------------------------------------------------------ helpers

const css = (s) => JSON.stringify(String(s));
const rowSel = (attrs) => '[data-testid="request-row"]' +
  Object.entries(attrs).map(([k, v]) => `[data-${k}=${css(v)}]`).join('');

async function waitRow(page, attrs, what) {
  const loc = page.locator(rowSel(attrs)).first();
  try {
    await loc.waitFor({ state: 'attached', timeout: TIMEOUT });
  } catch (_) {
    const rows = await listRows(page);
    fail(`no row for ${what} (${rowSel(attrs)}) within ${TIMEOUT} ms; rows: ${JSON.stringify(rows)}`);
  }
  return loc;
}

async function listRows(page) {
  return page.$$eval('[data-testid="request-row"]', (rows) => rows.map((r) => ({
    id: r.dataset.id, method: r.dataset.method, uri: r.dataset.uri, state: r.dataset.state,
    status: r.dataset.status, replay_of: r.dataset.replayOf || null, hidden: r.hidden,
  })));
}

async function select(page, id) {
  await page.locator(rowSel({ id })).click({ timeout: TIMEOUT });
  await page.locator(`#detail-main[data-id=${css(id)}]`).waitFor({ state: 'visible', timeout: TIMEOUT });
}

async function text(page, testid) {
  const loc = page.locator(`#detail-main [data-testid=${css(testid)}]`).first();
  await loc.waitFor({ state: 'attached', timeout: TIMEOUT });
  return (await loc.innerText()).trim();
}

async function waitText(page, testid, needle, what) {
  const loc = page.locator(`#detail-main [data-testid=${css(testid)}]`).first();
  try {
    await page.waitForFunction(([sel, n]) => {
      const el = document.querySelector(sel);
      return el && el.innerText.includes(n);
    }, [`#detail-main [data-testid=${css(testid)}]`, needle], { timeout: TIMEOUT });
  } catch (_) {
    const got = await loc.count() ? await loc.innerText() : '(missing)';
    fail(`${what}: ${testid} does not contain ${JSON.stringify(needle)} within ${TIMEOUT} ms; it shows ${JSON.stringify(got.slice(0, 500))}`);
  }
  return (await loc.innerText()).trim();
}

async function visibleRowCount(page) {
  return page.$$eval('[data-testid="request-row"]', (rows) => rows.filter((r) => !r.hidden).length);
}

// The page's CSP forbids eval, so predicates are functions with arguments, never strings.
async function waitVisibleRows(page, want, what) {
  try {
    await page.waitForFunction((w) => {
      const rows = [...document.querySelectorAll('[data-testid="request-row"]')].filter((r) => !r.hidden).map((r) => r.dataset);
      const hasAll = (w.ids || []).every((id) => rows.some((r) => r.id === id));
      if (w.uri !== undefined) return hasAll && rows.every((r) => r.uri === w.uri);
      if (w.replays) return hasAll && rows.every((r) => r.replayOf);
      return hasAll && rows.length >= (w.min || 0);
    }, want, { timeout: TIMEOUT });
  } catch (err) {
    fail(`${what}: visible rows are ${JSON.stringify((await listRows(page)).filter((r) => !r.hidden))} (${err.message.split('\n')[0]})`);
  }
}

async function frames(page) {
  return page.$$eval('[data-testid="ws-frame"]', (rows) => rows.map((r) => ({
    dir: r.dataset.dir, opcode: r.dataset.opcode,
    payload: r.querySelector('[data-testid="ws-payload"]').textContent,
  })));
}

// ----------------------------------------------------------------- scenario

const result = { screenshots: [] };
const problems = [];
const session = {};
let page;

async function scenario() {
  state.step = 'launch';
  page = await openPage(session, chromium, opt.chromium, { width: 1440, height: 900 }, problems);
  result.browser = session.browser.version();

  state.step = 'open';
  const response = await page.goto(opt.url, { timeout: TIMEOUT });
  if (!response || !response.ok()) fail(`GET ${opt.url} answered ${response ? response.status() : 'nothing'}`);
  const ctype = response.headers()['content-type'] || '';
  if (!ctype.startsWith('text/html')) fail(`GET ${opt.url} has Content-Type ${JSON.stringify(ctype)}, expected text/html`);
  const tunnel = page.locator(`[data-testid="tunnel"][data-url=${css(opt['public-url'])}]`);
  try {
    await tunnel.waitFor({ timeout: TIMEOUT });
  } catch (_) {
    fail(`tunnel list does not show ${opt['public-url']}; it shows ${JSON.stringify(await page.locator('[data-testid="tunnel-list"]').innerText())}`);
  }
  result.tunnel_text = (await tunnel.innerText()).trim();
  await page.locator('[data-testid="live"][data-state="live"]').waitFor({ timeout: TIMEOUT });
  emit({ step: state.step, tunnel: result.tunnel_text });

  // A request made while the page is open arrives through the event stream.
  state.step = 'live request';
  await need('http');
  const row = await waitRow(page, { uri: opt.path, method: opt.method, state: 'complete' }, `${opt.method} ${opt.path}`);
  const id = await row.getAttribute('data-id');
  result.original_id = id;
  result.original_row = (await row.innerText()).replace(/\s+/g, ' ').trim();
  emit({ step: state.step, id, row: result.original_row });

  state.step = 'detail';
  await select(page, id);
  result.request_line = await waitText(page, 'request-line', `${opt.method} ${opt.path}`, 'request line');
  result.response_line = await waitText(page, 'response-line', '200', 'response line');
  if (opt['body-token']) result.request_body = await waitText(page, 'request-body', opt['body-token'], 'request body');
  result.request_headers = await text(page, 'request-headers');
  result.response_body = await text(page, 'response-body');
  result.summary = await text(page, 'detail-summary');
  if (!/Duration\s+[\d.]+ ms/.test(result.summary)) fail('summary shows no duration in ms: ' + result.summary);
  emit({ step: state.step, request_line: result.request_line, response_line: result.response_line });

  state.step = 'replay';
  await page.locator('[data-testid="replay-button"]').click();
  const replayRow = await waitRow(page, { 'replay-of': id, uri: opt.path, state: 'complete' }, 'the replay');
  result.replay_id = await replayRow.getAttribute('data-id');
  if (!(await replayRow.locator('[data-testid="replay-badge"]').count())) fail('replay row carries no replay badge');
  result.replay_row = (await replayRow.innerText()).replace(/\s+/g, ' ').trim();
  emit({ step: state.step, id: result.replay_id, row: result.replay_row });

  state.step = 'edit & replay';
  await select(page, id);
  await page.locator('[data-testid="edit-button"]').click();
  const area = page.locator('[data-testid="edit-textarea"]');
  await area.waitFor({ state: 'visible' });
  const original = await area.inputValue();
  result.edit_prefill = original;
  const firstLine = original.split('\n', 1)[0];
  if (!firstLine.startsWith(`${opt.method} ${opt.path} `)) fail('editor does not start with the request line: ' + JSON.stringify(firstLine));
  if (opt['body-token'] && !original.includes(opt['body-token'])) fail('editor lacks the request body: ' + JSON.stringify(original));
  const split = original.replace(/\r\n/g, '\n').indexOf('\n\n');
  if (split < 0) fail('editor text has no blank line between head and body');
  const head = original.replace(/\r\n/g, '\n').slice(0, split).split('\n');
  head[0] = head[0].replace(/^(\S+) \S+/, `$1 ${opt['edit-path']}`);
  await area.fill(head.join('\n') + '\n\n' + opt['edit-body']);
  await page.locator('[data-testid="send-button"]').click();
  const editRow = await waitRow(page, { 'replay-of': id, uri: opt['edit-path'], state: 'complete' }, 'the edited replay');
  result.edit_id = await editRow.getAttribute('data-id');
  await select(page, result.edit_id);
  result.edit_request_line = await waitText(page, 'request-line', `${opt.method} ${opt['edit-path']}`, 'edited request line');
  // The Text view shows the body exactly as sent (the default view may pretty-print it).
  await page.locator('#detail-main [data-testid="request-pane"] .modes button[data-mode="text"]').click();
  result.edit_request_body = await waitText(page, 'request-body', opt['edit-body'], 'edited request body');
  await page.locator('#detail-main [data-testid="request-pane"] .modes button[data-mode="auto"]').click();
  await page.screenshot({ path: extraShot });
  result.screenshots.push(extraShot);
  emit({ step: state.step, id: result.edit_id, request_line: result.edit_request_line });

  state.step = 'filter';
  const search = page.locator('[data-testid="search"]');
  await search.fill(opt['edit-path']);
  await waitVisibleRows(page, { uri: opt['edit-path'], ids: [result.edit_id] },
    'searching the edited path should leave only rows with that path');
  await search.fill(opt['body-token'] || opt.method);
  await waitVisibleRows(page, { uri: opt.path, ids: [id, result.replay_id] },
    'searching a token of the original body should leave the original and its replay');
  await search.fill('');
  await waitVisibleRows(page, { min: 3, ids: [id, result.replay_id, result.edit_id] }, 'an empty search should show every row');
  await page.locator('[data-testid="status-filter"][data-filter="replay"]').click();
  await waitVisibleRows(page, { replays: true, ids: [result.replay_id, result.edit_id] },
    'the Replays filter should show the replays only');
  await page.locator('[data-testid="status-filter"][data-filter="all"]').click();
  await waitVisibleRows(page, { min: 3, ids: [id, result.replay_id, result.edit_id] }, 'the All filter should show every row');
  emit({ step: state.step });

  state.step = 'websocket';
  await need('ws-open');
  const wsRow = await waitRow(page, { uri: opt['ws-path'], state: 'upgraded' }, 'the WebSocket upgrade');
  result.ws_id = await wsRow.getAttribute('data-id');
  await select(page, result.ws_id);
  await page.locator('#detail-main [data-testid="ws-pane"]').waitFor({ state: 'visible' });
  const before = (await frames(page)).length;
  await need('ws-send');
  try {
    await page.waitForFunction((n) => {
      const rows = [...document.querySelectorAll('#detail-main [data-testid="ws-frame"]')];
      const count = (dir) => rows.filter((r) => r.dataset.dir === dir && r.dataset.opcode === 'text').length;
      return count('in') >= n && count('out') >= n;
    }, WS_MESSAGES, { timeout: TIMEOUT });
  } catch (_) {
    fail(`expected ${WS_MESSAGES} text frames each way in the selected record; the page shows ${JSON.stringify(await frames(page))}`);
  }
  result.frames = await frames(page);
  result.frames_before_send = before;
  result.ws_row = (await wsRow.innerText()).replace(/\s+/g, ' ').trim();
  await page.locator('#detail-main [data-testid="ws-pane"]').scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot });
  result.screenshots.unshift(screenshot);
  emit({ step: state.step, id: result.ws_id, frames: result.frames.length });

  state.step = 'websocket close';
  await need('ws-close');
  await waitRow(page, { id: result.ws_id, state: 'closed' }, 'the closed WebSocket');
  result.frames_after_close = await frames(page);
  emit({ step: state.step });

  state.step = 'clear';
  await page.locator('[data-testid="clear-button"]').click();
  try {
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="request-row"]').length === 0, null, { timeout: TIMEOUT });
  } catch (_) {
    fail('rows left after Clear: ' + JSON.stringify(await listRows(page)));
  }
  await page.locator('#detail-none').waitFor({ state: 'visible' });
  emit({ step: state.step });

  state.step = 'page errors';
  if (problems.length) fail(problems.join('\n'));
}

await finish(scenario, {
  session, result, screenshot,
  details: () => (problems.length ? { page_problems: problems } : {}),
});
