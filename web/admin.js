// The relay's dashboard: clients, tunnels and leases, sites, live rates and the last refusals and
// errors, from the admin API of the listener that served this page. Served with a strict CSP
// (script-src 'self', no eval, no inline code): the DOM is built with textContent only.
//
// On the TCP admin port every API call carries the admin token as `Authorization: Bearer`; the
// token stays in this tab's sessionStorage. /api/events is read with fetch() rather than
// EventSource, which cannot send that header.
'use strict';

(() => {
  const TOKEN_KEY = 'porthole-admin-token';
  const WINDOW_SECONDS = 300;
  const LIST_REFRESH_MS = 5000;
  const RETRY_MAX_MS = 10000;
  const CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'];
  const STACK_ORDER = ['2xx', '3xx', '1xx', '4xx', '5xx', 'none'];  // bottom to top
  const ARM_MS = 4000;  // a Kick or Release button waits this long for its confirming click

  const $ = (id) => document.getElementById(id);

  let token = null;  // the admin token, when this listener needs one
  let tokenNeeded = false;
  let events = null;  // the AbortController of the open /api/events request
  let retryMs = 1000;
  let listTimer = 0;
  let noticeTimer = 0;
  const samples = [];  // {t, secs, byClass, bytesIn, bytesOut}, oldest first
  const recent = [];  // refusals and errors, newest first
  const seen = new Set();  // their seq numbers
  let recentRender = 0;

  class Unauthorized extends Error {}

  // ------------------------------------------------------------------ DOM helpers

  // el('td', {class: 'mono', data: {id: 'x'}, text: 'y', title: 'z'}, child...)
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = String(v);
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = String(dv);
      else node.setAttribute(k, String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function emptyRow(columns, text) {
    return el('tr', { class: 'empty' }, el('td', { colspan: columns, text }));
  }

  function notice(text) {
    const n = $('notice');
    n.textContent = text;
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 8000);
  }

  function setLive(state, text) {
    const live = $('live');
    live.dataset.state = state;
    live.textContent = text || state;
  }

  // ---------------------------------------------------------------- formatting

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)) + ' ' + units[i];
  }

  function rate(n) {
    return n >= 100 ? String(Math.round(n)) : n.toFixed(1);
  }

  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function clock(iso) {
    const d = new Date(iso);
    const two = (n) => String(n).padStart(2, '0');
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }

  // ---------------------------------------------------------------------- API

  function headers(extra) {
    const h = Object.assign({}, extra);
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  async function api(method, path) {
    const init = { method, cache: 'no-store', credentials: 'omit', headers: headers() };
    // The admin API takes a change only as JSON: a foreign page cannot send that unasked.
    if (method !== 'GET') init.headers['Content-Type'] = 'application/json';
    const res = await fetch(path, init);
    if (res.status === 401) throw new Unauthorized();
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || `${method} ${path} answered ${res.status}`);
    return body;
  }

  // ---------------------------------------------------------------- the token

  function askToken(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    stopEvents();
    clearInterval(listTimer);
    $('main').hidden = true;
    $('forget-token').hidden = true;
    $('token-panel').hidden = false;
    const error = $('token-error');
    error.textContent = message || '';
    error.hidden = !message;
    setLive('token', 'token needed');
    $('token-input').focus();
  }

  function submitToken() {
    const given = $('token-input').value.trim();
    if (!given) {
      $('token-error').textContent = 'Enter the admin token.';
      $('token-error').hidden = false;
      return;
    }
    token = given;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    open();
  }

  // ------------------------------------------------------------------- lists

  // A button that asks for a second click before it acts. Armed buttons are remembered by `key`,
  // so a refresh of the list between the two clicks keeps them armed.
  const armedUntil = new Map();

  function armedButton(label, testid, key, act) {
    const button = el('button', { type: 'button', class: 'danger', text: label, data: { testid } });
    const show = () => {
      const armed = (armedUntil.get(key) || 0) > Date.now();
      button.textContent = armed ? label + '?' : label;
      button.classList.toggle('armed', armed);
    };
    show();
    button.addEventListener('click', async () => {
      if ((armedUntil.get(key) || 0) <= Date.now()) {
        armedUntil.set(key, Date.now() + ARM_MS);
        show();
        setTimeout(show, ARM_MS + 10);
        return;
      }
      armedUntil.delete(key);
      button.disabled = true;
      try {
        notice(await act());
      } catch (err) {
        if (err instanceof Unauthorized) return askToken('The relay no longer accepts this token.');
        notice(err.message);
      }
      refreshLists().catch(() => {});
    });
    return button;
  }

  function renderClients(doc) {
    const rows = doc.clients.map((c) => el('tr', { data: { testid: 'client-row', id: c.id } },
      el('td', { class: 'mono', text: c.id.slice(0, 8), title: c.id }),
      el('td', { class: 'mono', text: c.address }),
      el('td', { text: c.agent }),
      el('td', { text: ago(c.connected_since), title: c.connected_since }),
      el('td', { class: 'num', text: c.rtt_ms === null ? '–' : c.rtt_ms.toFixed(1) + ' ms' }),
      el('td', { class: 'wrap mono', text: c.tunnels.join(', ') || '–' }),
      el('td', { text: `${c.data_pool.idle} idle, ${c.data_pool.waiting} waiting` }),
      el('td', {}, armedButton('Kick', 'kick-button', 'kick:' + c.id, async () => {
        const r = await api('DELETE', '/api/clients/' + encodeURIComponent(c.id));
        return `Closed client ${r.closed.slice(0, 8)}; its tunnels wait for it as leases.`;
      }))));
    $('clients').replaceChildren(...(rows.length ? rows : [emptyRow(8, 'No client is connected.')]));
    $('clients-count').textContent = `(${doc.clients.length}${doc.truncated ? '+' : ''})`;
  }

  function renderTunnels(doc) {
    const rows = doc.tunnels.map((t) => {
      const leased = t.state === 'leased';
      const leaseName = t.kind === 'tcp' ? 'tcp:' + t.name : t.name;
      const url = t.url ? el('a', { href: t.url, target: '_blank', rel: 'noopener noreferrer', text: t.url }) : '–';
      return el('tr', { data: { testid: 'tunnel-row', name: t.name, kind: t.kind, state: t.state } },
        el('td', { class: 'mono', text: t.name }),
        el('td', { text: t.kind }),
        el('td', {
          text: leased && t.lease_until ? 'leased until ' + clock(t.lease_until) : t.state,
          title: t.lease_until || undefined,
        }),
        el('td', { class: 'wrap' }, url),
        el('td', { class: 'mono', text: leased ? '–' : (t.members || []).map((m) => m.client).join(', ') }),
        el('td', { class: 'num', text: leased ? '–' : t.open_connections }),
        el('td', {}, leased ? armedButton('Release', 'release-button', 'release:' + leaseName, async () => {
          const r = await api('DELETE', '/api/leases/' + encodeURIComponent(leaseName));
          return `Released ${r.released}: anyone may take it now.`;
        }) : null));
    });
    $('tunnels').replaceChildren(...(rows.length ? rows : [emptyRow(7, 'No tunnel and no lease.')]));
    $('tunnels-count').textContent = `(${doc.tunnels.length}${doc.truncated ? '+' : ''})`;
  }

  function memberCell(members) {
    const td = el('td', { class: 'wrap' });
    for (const m of members) {
      const title = [`weight ${m.weight}`, `${m.active} active`, `${m.fails} fails`];
      if (m.ejected_until) title.push('ejected until ' + clock(m.ejected_until));
      td.append(el('span', {
        class: 'health mono', text: `${m.url} ${m.health}`, title: title.join(', '),
        data: { testid: 'member', health: m.health, url: m.url },
      }));
    }
    return td;
  }

  function renderSites(doc) {
    const rows = [];
    for (const site of doc.sites) {
      site.routes.forEach((r, i) => rows.push(el('tr', { data: { testid: 'site-row', host: site.hosts[0] } },
        el('td', { class: 'wrap', text: i === 0 ? site.hosts.join(', ') : '' }),
        el('td', { class: 'mono', text: r.path }),
        el('td', { text: r.lb_policy }),
        memberCell(r.members))));
    }
    for (const t of doc.tcp_sites) {
      rows.push(el('tr', { data: { testid: 'site-row', listen: t.listen } },
        el('td', { class: 'mono', text: 'tcp ' + t.listen }), el('td', { text: '–' }), el('td', { text: '' }),
        memberCell(t.members)));
    }
    $('sites').replaceChildren(...(rows.length ? rows : [emptyRow(4, 'No site is configured.')]));
    $('sites-count').textContent = `(${doc.sites.length + doc.tcp_sites.length})`;
  }

  async function refreshLists() {
    const [clients, tunnels, sites] = await Promise.all([
      api('GET', '/api/clients'), api('GET', '/api/tunnels'), api('GET', '/api/sites')]);
    renderClients(clients);
    renderTunnels(tunnels);
    renderSites(sites);
  }

  // ------------------------------------------------------ refusals and errors

  function addRecent(e) {
    if (seen.has(e.seq)) return;
    seen.add(e.seq);
    if (!recent.length || e.seq > recent[0].seq) recent.unshift(e);
    else {
      recent.push(e);
      recent.sort((a, b) => b.seq - a.seq);
    }
    while (recent.length > 256) seen.delete(recent.pop().seq);
    // Rendered once per burst, not once per event.
    if (!recentRender) recentRender = setTimeout(renderRecent, 100);
  }

  function renderRecent() {
    recentRender = 0;
    const rows = recent.map((e) => {
      const request = e.method ? `${e.method} ${e.host || ''}${e.path || ''}` : '(connection)';
      return el('tr', { data: { testid: 'event-row', seq: e.seq, kind: e.kind, reason: e.reason, status: e.status || '' } },
        el('td', { text: clock(e.time), title: e.time }),
        el('td', {}, el('span', { class: 'kind', data: { kind: e.kind }, text: e.kind })),
        el('td', { class: 'mono', text: e.reason, data: { testid: 'event-reason' } }),
        el('td', { class: 'num', text: e.status || '–' }),
        el('td', { class: 'wrap mono', text: request }),
        el('td', { class: 'mono', text: e.visitor || '–' }),
        el('td', { class: 'mono', text: e.tunnel || e.site || '–' }));
    });
    $('events').replaceChildren(...(rows.length ? rows : [emptyRow(7, 'Nothing refused and no error since the relay started.')]));
    $('events-count').textContent = `(${recent.length})`;
  }

  async function loadRecent() {
    const doc = await api('GET', '/api/recent');
    recent.length = 0;
    seen.clear();
    for (const e of doc.events) addRecent(e);
    if (!recentRender) renderRecent();
  }

  // ----------------------------------------------------------------- graphs

  function color(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
  }

  // A round upper bound for the y axis: 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // Draws the last five minutes on `canvas`: stacked bars of `series` (one per second) when
  // `stacked`, else a line per series. Returns nothing; the canvas says how many samples it shows.
  function drawGraph(canvas, series, stacked, label) {
    const ratio = window.devicePixelRatio || 1;
    const box = canvas.getBoundingClientRect();
    if (box.width === 0) return;
    canvas.width = Math.round(box.width * ratio);
    canvas.height = Math.round(box.height * ratio);
    const g = canvas.getContext('2d');
    g.scale(ratio, ratio);
    g.font = '11px system-ui, sans-serif';
    const now = Date.now();
    const shown = samples.filter((s) => now - s.t <= WINDOW_SECONDS * 1000);
    canvas.dataset.samples = String(shown.length);
    const total = (s) => series.reduce((sum, x) => sum + x.value(s), 0);
    const peak = shown.reduce((m, s) => Math.max(m, stacked ? total(s) : Math.max(...series.map((x) => x.value(s)))), 0);
    const max = niceMax(peak);
    const ticks = [0, 0.5, 1].map((f) => [f, label(max * f)]);
    const left = 10 + Math.max(...ticks.map(([, text]) => g.measureText(text).width));
    const right = 6, top = 6, bottom = 16;
    const w = box.width - left - right, h = box.height - top - bottom;
    const x = (t) => left + w - ((now - t) / (WINDOW_SECONDS * 1000)) * w;
    const y = (v) => top + h - (v / max) * h;

    g.fillStyle = color('--fg-dim');
    g.strokeStyle = color('--grid');
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (const [f, text] of ticks) {
      const gy = Math.round(y(max * f)) + 0.5;
      g.beginPath();
      g.moveTo(left, gy);
      g.lineTo(left + w, gy);
      g.stroke();
      g.fillText(text, left - 6, gy);
    }
    g.textBaseline = 'alphabetic';
    g.textAlign = 'left';
    g.fillText('5 min ago', left, box.height - 3);
    g.textAlign = 'right';
    g.fillText('now', left + w, box.height - 3);

    if (stacked) {
      const bar = Math.max(1, w / WINDOW_SECONDS - 0.5);
      for (const s of shown) {
        let base = 0;
        for (const x0 of series) {
          const v = x0.value(s);
          if (v <= 0) continue;
          g.fillStyle = x0.color;
          g.fillRect(x(s.t) - bar, y(base + v), bar, y(base) - y(base + v));
          base += v;
        }
      }
      return;
    }
    g.lineWidth = 1.5;
    for (const x0 of series) {
      g.strokeStyle = x0.color;
      g.beginPath();
      shown.forEach((s, i) => (i ? g.lineTo(x(s.t), y(x0.value(s))) : g.moveTo(x(s.t), y(x0.value(s)))));
      g.stroke();
    }
  }

  function drawGraphs() {
    drawGraph($('graph-requests'), STACK_ORDER.map((c) => ({
      color: color('--c-' + c), value: (s) => s.byClass[c] || 0,
    })), true, (v) => rate(v));
    drawGraph($('graph-bytes'), [
      { color: color('--c-in'), value: (s) => s.bytesIn },
      { color: color('--c-out'), value: (s) => s.bytesOut },
    ], false, (v) => bytes(v) + '/s');
  }

  function legends() {
    $('requests-legend').replaceChildren(...STACK_ORDER.map((c) =>
      el('span', { class: 'key ' + (c === 'none' ? 'none' : 'c' + c), text: c })));
    $('bytes-legend').replaceChildren(el('span', { class: 'key in', text: 'in' }),
      el('span', { class: 'key out', text: 'out' }));
  }

  function onRate(r) {
    const secs = Math.max(0.001, (r.interval_ms || 1000) / 1000);
    const byClass = {};
    for (const c of CLASSES) byClass[c] = (r.by_class[c] || 0) / secs;
    samples.push({ t: Date.now(), byClass, bytesIn: r.bytes_in / secs, bytesOut: r.bytes_out / secs });
    while (samples.length && Date.now() - samples[0].t > WINDOW_SECONDS * 1000) samples.shift();
    $('requests-rate').textContent = rate(r.requests / secs);
    const total = $('requests-total');
    total.textContent = r.requests_total.toLocaleString('en');
    total.dataset.value = String(r.requests_total);
    $('bytes-in-rate').textContent = bytes(r.bytes_in / secs);
    $('bytes-out-rate').textContent = bytes(r.bytes_out / secs);
    $('sessions').textContent = String(r.sessions);
    drawGraphs();
  }

  // ------------------------------------------------------------ the event feed

  function dispatch(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    const doc = JSON.parse(data.join('\n'));
    if (name === 'rate') onRate(doc);
    else if (name === 'refusal' || name === 'error') addRecent(doc);
  }

  function stopEvents() {
    if (events) events.abort();
    events = null;
  }

  async function followEvents() {
    stopEvents();
    const ctl = new AbortController();
    events = ctl;
    setLive('connecting');
    try {
      const res = await fetch('/api/events', { cache: 'no-store', credentials: 'omit', headers: headers(), signal: ctl.signal });
      if (res.status === 401) return askToken('The relay no longer accepts this token.');
      if (!res.ok || !res.body) throw new Error('/api/events answered ' + res.status);
      setLive('live');
      retryMs = 1000;
      // What happened while the feed was away.
      loadRecent().catch((err) => notice(err.message));
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
          dispatch(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    if (ctl.signal.aborted) return;
    setLive('offline', `offline, retrying in ${Math.round(retryMs / 1000)}s`);
    setTimeout(() => { if (events === ctl) followEvents(); }, retryMs);
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  }

  // ------------------------------------------------------------------ start

  async function open() {
    try {
      await refreshLists();
    } catch (err) {
      if (err instanceof Unauthorized) return askToken('The relay refused this token.');
      setLive('offline', 'offline');
      notice(err.message);
      return;
    }
    $('token-panel').hidden = true;
    $('main').hidden = false;
    $('forget-token').hidden = !tokenNeeded;
    legends();
    drawGraphs();
    followEvents();
    clearInterval(listTimer);
    listTimer = setInterval(() => {
      refreshLists().catch((err) => {
        if (err instanceof Unauthorized) askToken('The relay no longer accepts this token.');
        else notice(err.message);
      });
    }, LIST_REFRESH_MS);
  }

  async function start() {
    // Never submitted: the CSP's form-action 'none' would refuse it, and the token stays here.
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      submitToken();
    });
    $('forget-token').addEventListener('click', () => askToken());
    window.addEventListener('resize', drawGraphs);
    try {
      // Whether this listener wants the token: its answer needs none.
      const res = await fetch('/dashboard.json', { cache: 'no-store', credentials: 'omit' });
      tokenNeeded = (await res.json()).token === 'required';
    } catch (err) {
      setLive('offline', 'offline');
      notice('The relay does not answer: ' + err.message);
      return;
    }
    if (tokenNeeded) {
      token = sessionStorage.getItem(TOKEN_KEY);
      if (!token) return askToken();
    }
    open();
  }

  start();
})();
