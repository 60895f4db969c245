// What the browser checks share: options, JSON lines on stdout, the step a failure names, and asking the
// calling test for traffic ({"need": NAME} out, {"done": NAME} or {"error": TEXT} back on stdin).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

export const state = { step: 'start', timeoutMs: 15000 };

export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

export function fail(message) {
  const err = new Error(message);
  err.step = state.step;
  throw err;
}

let stdinLines;

export async function need(name) {
  stdinLines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  emit({ need: name });
  const wait = state.timeoutMs * 2;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer to need ' + name + ' within ' + wait + ' ms')), wait);
  });
  try {
    const next = await Promise.race([stdinLines.next(), timeout]);
    if (next.done) fail('stdin closed while waiting for ' + name);
    let msg;
    try {
      msg = JSON.parse(next.value);
    } catch (_) {
      fail('answer to ' + name + ' is not JSON: ' + next.value);
    }
    if (msg.error) fail('caller could not do ' + name + ': ' + msg.error);
    if (msg.done !== name) fail('expected {"done": "' + name + '"}, got ' + next.value);
  } finally {
    clearTimeout(timer);
  }
}

// Headless Chromium with one page; page errors and console errors go to `problems`.
// `session` gets .browser and .page, for finish() to close.
export async function openPage(session, chromium, executablePath, viewport, problems) {
  session.browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: state.timeoutMs * 2,
  });
  const context = await session.browser.newContext({ viewport, colorScheme: 'light' });
  const page = await context.newPage();
  session.page = page;
  page.setDefaultTimeout(state.timeoutMs);
  page.on('pageerror', (err) => problems.push('page error: ' + err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push('console error: ' + msg.text()); });
  return page;
}

// Runs `scenario`, prints the last line ({"ok": true, "result"} or the failure with its step, what
// `details()` adds and a screenshot of the page as it was) and exits with its status.
export async function finish(scenario, { session, result, screenshot, fullPage = false, details = () => ({}) }) {
  let code = 0;
  try {
    mkdirSync(dirname(screenshot), { recursive: true });
    await scenario();
    emit({ ok: true, result });
  } catch (err) {
    code = 1;
    const out = { ok: false, step: err.step || state.step, error: err.message, ...details() };
    if (session.page) {
      try {
        await session.page.screenshot({ path: screenshot, fullPage });
        out.screenshot = screenshot;
      } catch (_) { /* page gone */ }
    }
    emit(out);
  } finally {
    if (session.browser) await session.browser.close().catch(() => {});
  }
  process.exit(code);
}

// The command line's options (node:util parseArgs); exits 2 when one is unknown or a `required`
// one is missing.
export function options(spec, required) {
  let values;
  try {
    ({ values } = parseArgs({ options: spec }));
  } catch (err) {
    emit({ ok: false, step: 'arguments', error: err.message });
    process.exit(2);
  }
  for (const k of required) {
    if (!values[k]) {
      emit({ ok: false, step: 'arguments', error: 'missing --' + k });
      process.exit(2);
    }
  }
  state.timeoutMs = Number(values['timeout-ms'] || state.timeoutMs);
  return values;
}

// playwright-core's chromium, or exit 1 telling how to install it.
export async function loadChromium() {
  try {
    return (await import('playwright-core')).chromium;
  } catch (err) {
    emit({ ok: false, step: 'setup', error: 'playwright-core is not installed (run: npm ci --prefix tests/browser): ' + err.message });
    process.exit(1);
  }
}
