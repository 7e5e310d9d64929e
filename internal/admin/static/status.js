'use strict';
// llmgate status page: polls /admin/backends and /admin/keys every second
// with the admin key kept in this tab's session storage (never in a URL).
(() => {
  const STORE = 'llmgate-admin-key';
  const POLL_MS = 1000;
  const COLORS = ['#3056d3', '#1a7f37', '#b35900', '#8250df', '#0a7ea4', '#c62828', '#6e7781', '#bf3989'];
  const $ = (id) => document.getElementById(id);
  let timer = 0;
  let running = false;

  class AuthError extends Error {}

  // A key given as #key=... is taken once and removed from the address bar.
  function takeKeyFromFragment() {
    const m = /(?:^#|&)key=([^&]*)/.exec(location.hash);
    if (!m) return;
    try { sessionStorage.setItem(STORE, decodeURIComponent(m[1])); } catch (e) { /* storage off */ }
    history.replaceState(null, '', location.pathname + location.search);
  }

  function storedKey() {
    try { return sessionStorage.getItem(STORE) || ''; } catch (e) { return ''; }
  }

  async function getJSON(path) {
    const key = storedKey();
    // The origin, never the page's URL: it may carry user:password@.
    const res = await fetch(location.origin + path, {
      headers: key ? { 'api-key': key } : {},
      cache: 'no-store',
      credentials: 'same-origin',
    });
    if (res.status === 401) throw new AuthError('refused');
    if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
    return res.json();
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'style') e.style.cssText = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  const num = (n) => (n < 0 ? '–' : Number(n).toLocaleString('en-US'));
  const pct = (f) => (f * 100).toFixed(f > 0 && f < 0.1 ? 1 : 0) + '%';
  const msText = (ms) => (ms <= 0 ? '–' : ms < 1000 ? ms.toFixed(ms < 10 ? 1 : 0) + ' ms' : (ms / 1000).toFixed(2) + ' s');
  const color = (i) => COLORS[i % COLORS.length];

  function stateCell(b) {
    const td = el('td', { class: 'state' }, el('span', { class: 'badge state-' + b.state }, b.state.replace('_', ' ')));
    if (b.throttled_for_ms > 0) td.append(el('span', { class: 'detail' }, 'for ' + (b.throttled_for_ms / 1000).toFixed(1) + ' s'));
    else if (b.circuit !== 'closed' && b.state !== 'circuit_open' && b.state !== 'half_open') td.append(el('span', { class: 'detail' }, 'circuit ' + b.circuit));
    return td;
  }

  function renderBackends(r) {
    const rows = r.backends.map((b, i) => el('tr', { 'data-backend': b.name, 'data-state': b.state },
      el('td', { class: 'name' }, el('span', { class: 'swatch', style: 'background:' + color(i) }), b.name),
      stateCell(b),
      el('td', { class: 'n' }, pct(b.share)),
      el('td', { class: 'n' }, num(b.inflight) + (b.max_inflight > 0 ? ' / ' + num(b.max_inflight) : '')),
      el('td', { class: 'n', title: 'mean of the last ' + r.recent_seconds + ' s; moving average ' + msText(b.latency_ms) },
        msText(b.recent.latency_ms > 0 ? b.recent.latency_ms : b.latency_ms)),
      el('td', { class: 'n' }, num(b.recent.attempts)),
      el('td', { class: 'n' }, num(b.recent.errors)),
      el('td', { class: 'n' }, num(b.recent.throttles)),
      el('td', { class: 'n' }, num(b.remaining_tokens)),
      el('td', { class: 'n', title: 'attempts / failures / 429s since start' },
        num(b.requests) + ' / ' + num(b.failures) + ' / ' + num(b.throttles)),
      el('td', { class: 'n' }, b.weight + ' / ' + b.priority)));
    $('backends').tBodies[0].replaceChildren(...rows);
    $('backends-note').textContent = 'Attempts, errors, throttles and latency over the last ' + r.recent_seconds +
      ' s; share of the attempts of the last ' + r.share_seconds + ' s.';

    const segs = [];
    r.backends.forEach((b, i) => {
      if (b.share > 0) segs.push(el('div', { style: 'width:' + (b.share * 100) + '%;background:' + color(i), title: b.name + ' ' + pct(b.share), 'data-backend': b.name }, b.name + ' ' + pct(b.share)));
    });
    $('split').replaceChildren(...segs);
    $('split-note').textContent = segs.length ? 'Live traffic split (last ' + r.share_seconds + ' s).' : 'No traffic in the last ' + r.share_seconds + ' s.';
  }

  function renderKeys(r) {
    const rows = [];
    for (const k of r.keys) {
      const label = k.name + (k.team ? ' (' + k.team + ')' : '') + (k.configured ? '' : ' [removed]');
      rows.push(el('tr', { class: 'total', 'data-key': k.name },
        el('td', {}, label), el('td', {}, k.models.length ? 'all models' : 'no requests yet'),
        el('td', { class: 'n' }, num(k.requests)), el('td', { class: 'n' }, num(k.errors)),
        el('td', { class: 'n' }, num(k.prompt_tokens)), el('td', { class: 'n' }, num(k.completion_tokens))));
      for (const m of k.models) {
        rows.push(el('tr', { 'data-key': k.name, 'data-model': m.model },
          el('td', {}, ''), el('td', {}, m.model),
          el('td', { class: 'n' }, num(m.requests)), el('td', { class: 'n' }, num(m.errors)),
          el('td', { class: 'n' }, num(m.prompt_tokens)), el('td', { class: 'n' }, num(m.completion_tokens))));
      }
    }
    $('keys').tBodies[0].replaceChildren(...rows);
  }

  function setLive(state, text) {
    $('live').dataset.live = state;
    $('live-text').textContent = text;
  }

  function showLogin(message) {
    stop();
    $('dashboard').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    setLive('idle', 'not connected');
    $('key').focus();
  }

  async function poll() {
    timer = 0;
    try {
      const [b, k] = await Promise.all([getJSON('/admin/backends'), getJSON('/admin/keys')]);
      if (!running) return;
      $('login').hidden = true;
      $('dashboard').hidden = false;
      $('logout').hidden = !storedKey();
      renderBackends(b);
      renderKeys(k);
      setLive('ok', 'live · updated ' + new Date(b.time).toLocaleTimeString());
    } catch (e) {
      if (e instanceof AuthError) {
        const had = storedKey() !== '';
        try { sessionStorage.removeItem(STORE); } catch (_) { /* storage off */ }
        showLogin(had ? 'That key was refused.' : '');
        return;
      }
      setLive('error', 'connection lost: ' + e.message + ' (retrying)');
    }
    if (running) timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    stop();
    running = true;
    poll();
  }

  function stop() {
    running = false;
    if (timer) clearTimeout(timer);
    timer = 0;
  }

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('key').value.trim();
    $('key').value = '';
    if (!key) return;
    try { sessionStorage.setItem(STORE, key); } catch (e) { /* storage off */ }
    start();
  });
  $('logout').addEventListener('click', () => {
    try { sessionStorage.removeItem(STORE); } catch (e) { /* storage off */ }
    showLogin('');
  });

  takeKeyFromFragment();
  start();
})();
