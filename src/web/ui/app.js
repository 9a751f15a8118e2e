// smarthost console: a small single-page app over the JSON API (no build step, no framework).
// All text from the server is inserted with textContent, never as HTML. State-changing calls carry
// the session's CSRF token; live updates arrive over Server-Sent Events and re-render the page.
'use strict';

// seq: each render gets a number; a slower, older render never overwrites a newer page.
const state = { csrf: '', user: '', page: '', source: null, refreshTimer: 0, seq: 0, badmailOpen: '' };

// ---- small DOM helpers -----------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const $ = (id) => document.getElementById(id);
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '');
const badge = (s) => h('span', { class: `state ${s || ''}`, 'data-state': s || '' }, s || '');
function toast(text) {
  const t = h('div', { text });
  $('toast').append(t);
  setTimeout(() => t.remove(), 5000);
}
function table(columns, rows, onRow) {
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { text: c[0] })))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', { class: onRow ? 'clickable' : undefined, onclick: onRow ? () => onRow(r) : undefined, 'data-id': r.id || r.name },
      columns.map((c) => h('td', { 'data-label': c[0] }, c[1](r))))) : h('tr', {}, h('td', { colspan: columns.length, class: 'muted', text: 'nothing here' }))));
}

// ---- API -------------------------------------------------------------------------------------
async function api(method, url, body) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = state.csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const data = res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text();
  if (res.status === 401 && url !== '/api/login') { showLogin(); throw new Error('log in first'); }
  if (!res.ok) { const e = new Error(data.error || `HTTP ${res.status}`); e.problems = data.problems; e.status = res.status; throw e; }
  return data;
}
async function act(label, fn) {
  try { const r = await fn(); toast(`${label}: done`); refresh(); return r; }
  catch (e) { toast(`${label}: ${e.message}`); return undefined; }
}

// ---- session ---------------------------------------------------------------------------------
function showLogin() {
  $('login').hidden = false; $('page').hidden = true; $('nav').hidden = true;
  if (state.source) { state.source.close(); state.source = null; }
}
async function startSession() {
  try {
    const s = await api('GET', '/api/session');
    state.csrf = s.csrf; state.user = s.user;
    $('who').textContent = `${s.user}`;
    if (s.canLogout) $('who').append(' ', h('button', { class: 'secondary', id: 'logout', onclick: logout }, 'Log out'));
    $('login').hidden = true; $('page').hidden = false;
    if (window.innerWidth > 700) $('nav').hidden = false;
    connectEvents();
    route();
  } catch { showLogin(); }
}
async function logout() { await api('POST', '/api/logout').catch(() => {}); location.hash = ''; showLogin(); }
$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  try { await api('POST', '/api/login', { user: $('login-user').value, password: $('login-password').value }); $('login-password').value = ''; await startSession(); }
  catch (e) { $('login-error').textContent = e.message; }
});
$('menu-toggle').addEventListener('click', () => { const n = $('nav'); n.hidden = !n.hidden; $('menu-toggle').setAttribute('aria-expanded', String(!n.hidden)); });

// ---- live updates ----------------------------------------------------------------------------
function connectEvents() {
  if (state.source) return;
  const src = new EventSource('/api/events');
  state.source = src;
  src.onopen = () => $('live').classList.add('on');
  src.onerror = () => $('live').classList.remove('on');
  const later = () => {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refresh, 250);
  };
  src.addEventListener('queue', later);
  src.addEventListener('refusal', () => { if (state.page === 'refusals' || state.page === 'dashboard') later(); });
}

// ---- routing ---------------------------------------------------------------------------------
const pages = {};
function route() {
  const [page, arg] = (location.hash.slice(1) || 'dashboard').split('/');
  state.page = page;
  const navPage = { queued: 'queue', message: 'history' }[page] || page;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === navPage);
  if (window.innerWidth <= 700) $('nav').hidden = true;
  const render = pages[page] || pages.dashboard;
  render(arg ? decodeURIComponent(arg) : undefined, true, ++state.seq);
}
function refresh() { if (!$('page').hidden) { const [page, arg] = (location.hash.slice(1) || 'dashboard').split('/'); (pages[page] || pages.dashboard)(arg ? decodeURIComponent(arg) : undefined, false, ++state.seq); } }
window.addEventListener('hashchange', route);
function setPage(token, ...children) { if (token === state.seq) $('page').replaceChildren(...children); }
function errorBox(e) { return h('p', { class: 'error', role: 'alert', text: e.message }); }

// ---- dashboard -------------------------------------------------------------------------------
function chart(stats) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 480 180'); svg.setAttribute('preserveAspectRatio', 'none'); svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'messages per time bucket');
  const series = [['accepted', '#1f5fbf'], ['delivered', '#1e7b34'], ['deferred', '#a86400'], ['failed', '#b3261e']];
  const max = Math.max(1, ...stats.flatMap((b) => series.map(([k]) => b[k])));
  const w = 480 / Math.max(1, stats.length);
  stats.forEach((b, i) => series.forEach(([k, color], j) => {
    const r = document.createElementNS(ns, 'rect');
    const height = (b[k] / max) * 160;
    r.setAttribute('x', String(i * w + j * (w / 4))); r.setAttribute('width', String(Math.max(1, w / 4 - 0.5)));
    r.setAttribute('y', String(170 - height)); r.setAttribute('height', String(height)); r.setAttribute('fill', color);
    const t = document.createElementNS(ns, 'title'); t.textContent = `${fmtTime(b.start)}: ${b[k]} ${k}`; r.append(t);
    svg.append(r);
  }));
  const axis = stats.length ? h('div', { class: 'axis' }, h('span', { text: fmtTime(stats[0].start) }), h('span', { text: 'now' })) : '';
  return h('div', { class: 'chart' }, svg, axis, h('div', { class: 'legend' }, series.map(([k, c]) => { const i = h('i'); i.style.background = c; return h('span', {}, i, k); })));
}
/** Old devices (docs/devices.md): listeners with old TLS, clients STARTTLS is withheld from. */
function devicesSection(dv) {
  if (!dv || (!dv.oldTls.length && !dv.starttlsWithheld.length)) return [];
  return [h('h2', { text: 'Old devices' }),
    ...dv.oldTls.map((l) => h('p', { class: 'notice', 'data-listener': l.listener, text: l.note })),
    dv.starttlsWithheld.length ? table([['Client', (c) => c.client], ['Listener', (c) => c.listener], ['TLS failed', (c) => fmtTime(c.at)], ['STARTTLS withheld until', (c) => fmtTime(c.until)],
      ['Offered', (c) => c.offered.versions.join(', ') || '—'], ['Why / what to set', (c) => h('div', {}, h('div', { text: c.reason }), h('div', { class: 'reason', text: c.advice }))]], dv.starttlsWithheld) : ''];
}
pages.dashboard = async (_arg, _fresh, token) => {
  try {
    const d = await api('GET', '/api/dashboard?hours=24');
    const quotas = (await api('GET', '/api/quotas').catch(() => ({ quotas: [] }))).quotas;
    const sum = (k) => d.stats.reduce((n, b) => n + b[k], 0);
    setPage(token,
      h('h1', { text: 'Dashboard (last 24 hours)' }),
      healthPanel(d.health),
      h('div', { class: 'cards' },
        [['accepted', sum('accepted')], ['delivered', sum('delivered')], ['deferred', sum('deferred')], ['failed', sum('failed')], ['in queue', d.queue.size], ['oldest in queue', !d.queue.size ? '—' : d.queue.oldestAgeSeconds < 60 ? `${d.queue.oldestAgeSeconds} s` : `${Math.round(d.queue.oldestAgeSeconds / 60)} min`],
          ...(d.refusals === undefined ? [] : [['refused since start', d.refusals, '#refusals']])]
          .map(([k, n, href]) => h(href ? 'a' : 'div', { class: 'card', 'data-metric': k, href }, h('div', { class: 'n', text: n }), h('div', { class: 'k', text: k })))),
      chart(d.stats),
      h('h2', { text: 'Upstreams' }),
      table([['Name', (u) => u.name], ['State', (u) => badge(u.state)], ['Why', (u) => h('span', { class: 'reason', text: u.reason || '' })],
        ['Token expires', (u) => (u.tokenExpiresAt ? fmtTime(u.tokenExpiresAt) : '—')],
        ['', (u) => (u.state === 'parked' ? h('button', { class: 'secondary', onclick: (e) => { e.stopPropagation(); act(`release ${u.name}`, () => api('POST', `/api/upstreams/${encodeURIComponent(u.name)}/release`)); } }, 'Release') : '')]], d.upstreams),
      ...devicesSection(d.devices),
      quotas.length ? h('h2', { text: 'Sending quotas (per mailbox)' }) : '',
      quotas.length ? table([['Mailbox', (q) => q.key.replace(/^[a-z]+:/, '')], ['Upstreams', (q) => q.upstreams.join(', ')],
        ['Last minute', (q) => `${q.messagesLastMinute}${q.maxMessagesPerMinute ? ` / ${q.maxMessagesPerMinute}` : ''}`],
        ['Recipients, 24 h', (q) => `${q.recipientsLast24h}${q.maxRecipientsPerDay ? ` / ${q.maxRecipientsPerDay}` : ''}`],
        ['Sending resumes', (q) => (q.resumesAt ? h('div', {}, fmtTime(q.resumesAt), h('div', { class: 'reason', text: q.reason || '' })) : 'now')]], quotas) : '',
      h('h2', { text: 'Last errors' }),
      table([['When', (e) => fmtTime(e.at)], ['Message', (e) => h('a', { href: `#message/${encodeURIComponent(e.id)}`, text: e.id })], ['Recipient', (e) => e.recipient || ''],
        ['What happened', (e) => h('div', {}, badge(e.action), ' ', h('span', { text: e.diagnostic || '' }), h('div', { class: 'reason', text: e.reason || '' }))]], d.recentErrors),
      h('p', { class: d.history.ok ? 'muted' : 'error', text: `History: ${d.history.summary}` }),
      d.problems.length ? h('p', { class: 'error', text: d.problems.join('\n') }) : '',
    );
  } catch (e) { setPage(token, h('h1', { text: 'Dashboard' }), errorBox(e)); }
};

// The same words as /healthz: ok / degraded / down, then each check and its reason.
function healthPanel(report) {
  if (!report) return '';
  const title = { ok: 'Healthy: the relay accepts and delivers mail', degraded: 'Degraded: mail is accepted, but something needs a look', down: 'Down: new mail cannot be accepted' }[report.status];
  const shown = report.checks.filter((c) => c.status !== 'ok');
  return h('section', { class: `health ${report.status}`, id: 'health', 'data-status': report.status },
    h('h2', {}, badge(report.status), ' ', title),
    shown.length ? h('ul', {}, shown.map((c) => h('li', { 'data-check': c.name }, h('strong', { text: `${c.name}: ` }), c.reason))) : '',
    h('details', {}, h('summary', { text: `All ${report.checks.length} checks (as /healthz reports them)` }),
      table([['Check', (c) => c.name], ['State', (c) => badge(c.status)], ['Why', (c) => h('span', { class: 'reason', text: c.reason })]], report.checks.map((c) => ({ ...c, id: c.name })))));
}

// ---- queue -----------------------------------------------------------------------------------
pages.queue = async (_arg, fresh, token) => {
  const prev = fresh ? {} : { q: $('queue-q')?.value, state: $('queue-state')?.value };
  const q = h('input', { id: 'queue-q', placeholder: 'sender, recipient, subject, id', value: prev.q || '' });
  const st = h('select', { id: 'queue-state' }, ['', 'queued', 'active', 'deferred', 'parked'].map((s) => h('option', { value: s, text: s || 'any state' })));
  st.value = prev.state || '';
  const body = h('div', { id: 'queue-body' });
  const load = async () => {
    try {
      const params = new URLSearchParams(); if (q.value) params.set('q', q.value); if (st.value) params.set('state', st.value);
      const r = await api('GET', `/api/queue?${params}`);
      body.replaceChildren(h('p', { class: 'muted', text: `${r.total} message(s)` }), table([
        ['Received', (m) => fmtTime(m.receivedAt)], ['Id', (m) => h('a', { href: `#queued/${encodeURIComponent(m.id)}`, class: 'id', text: m.id })],
        ['Subject', (m) => h('a', { href: `#queued/${encodeURIComponent(m.id)}`, class: 'subject', text: m.subject || '(no subject)' })], ['From', (m) => m.mailFrom || '<>'], ['To', (m) => m.recipients.join(', ')],
        ['Route', (m) => m.route || ''], ['State', (m) => badge(m.state)], ['Why', (m) => h('div', { class: 'why' }, m.lastMeaning ? h('div', { class: 'meaning', text: m.lastMeaning }) : '', h('div', { class: 'reason', text: m.lastReason || '' }))],
        ['Next try', (m) => fmtTime(m.nextAttemptAt)],
        ['', (m) => h('span', {},
          h('button', { class: 'secondary', 'data-action': 'retry', onclick: () => act(`retry ${m.id}`, () => api('POST', `/api/queue/${encodeURIComponent(m.id)}/retry`)) }, 'Retry'), ' ',
          h('button', { class: 'danger', 'data-action': 'delete', onclick: () => { if (confirm(`Delete ${m.id} for good?`)) act(`delete ${m.id}`, () => api('DELETE', `/api/queue/${encodeURIComponent(m.id)}`)); } }, 'Delete'))]], r.messages));
    } catch (e) { body.replaceChildren(errorBox(e)); }
  };
  setPage(token, h('h1', { text: 'Queue' }),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(); } }, h('label', {}, 'Search', q), h('label', {}, 'State', st), h('button', { type: 'submit' }, 'Filter'),
      h('button', { type: 'button', class: 'secondary', id: 'queue-flush', onclick: () => act('flush', () => api('POST', '/api/queue/flush')) }, 'Retry all deferred now')),
    body);
  await load();
};

// One queued message: what it is, why it waits, each recipient's last outcome, and the actions.
pages.queued = async (id, _fresh, token) => {
  try {
    const m = await api('GET', `/api/queue/${encodeURIComponent(id)}`);
    setPage(token, h('h1', { text: m.subject || '(no subject)' }),
      h('p', {}, badge(m.state), ' ', h('span', { text: `queued message ${m.id}` })),
      m.lastReason ? h('p', { class: 'why' }, h('div', { class: 'meaning', text: m.lastMeaning || (m.outcomes || []).find((o) => o.action !== 'delivered' && o.reason)?.reason || '' }), h('div', { class: 'reason', text: m.lastReason })) : '',
      table([['Field', (r) => h('span', { class: 'field', text: r[0] })], ['Value', (r) => r[1]]], [['Subject', m.subject || '(no subject)'], ['From', m.mailFrom || '<>'], ['To (waiting)', m.recipients.join(', ')], ['Received', fmtTime(m.receivedAt)],
        ['Size', `${m.size} bytes`], ['Attempts', String(m.attempts ?? 0)], ['Next try', fmtTime(m.nextAttemptAt) || '—'], ['Upstream', m.upstream || '(first that works)']].map((r) => Object.assign(r, { id: r[0] }))),
      h('h2', { text: 'Last outcome per recipient' }),
      table([['Recipient', (o) => o.recipient], ['What happened', (o) => badge(o.action)], ['Upstream said', (o) => o.diagnostic || ''], ['Meaning', (o) => h('span', { class: 'reason', text: o.reason || '' })]], m.outcomes || []),
      h('p', { class: 'actions' },
        h('button', { class: 'secondary', 'data-action': 'retry', onclick: () => act(`retry ${m.id}`, () => api('POST', `/api/queue/${encodeURIComponent(m.id)}/retry`)) }, 'Retry now'), ' ',
        h('a', { href: `/api/queue/${encodeURIComponent(m.id)}/raw`, download: `${m.id}.eml` }, 'Download'), ' ',
        h('a', { href: `#message/${encodeURIComponent(m.id)}` }, 'Timeline in history'), ' ',
        h('button', { class: 'danger', 'data-action': 'delete', onclick: () => { if (confirm(`Delete ${m.id} for good?`)) act(`delete ${m.id}`, () => api('DELETE', `/api/queue/${encodeURIComponent(m.id)}`)); } }, 'Delete')));
  } catch (e) {
    setPage(token, h('h1', { text: `Queued message ${id}` }), errorBox(e), h('p', {}, h('a', { href: `#message/${encodeURIComponent(id)}`, text: 'Look it up in history' })));
  }
};

// ---- history ---------------------------------------------------------------------------------
const HISTORY_LABELS = { recipient: 'Recipient (or part)', sender: 'Sender (or part)', subject: 'Subject (part)', client: 'Client IP', status: 'Status', from: 'Received after', to: 'Received before' };
pages.history = async (_arg, fresh, token) => {
  const fields = ['recipient', 'sender', 'subject', 'client', 'status', 'from', 'to'];
  const prev = {};
  if (!fresh) for (const f of fields) prev[f] = $(`h-${f}`)?.value;
  const inputs = Object.fromEntries(fields.map((f) => [f, f === 'status'
    ? h('select', { id: 'h-status' }, ['', 'queued', 'deferred', 'delivered', 'failed', 'badmail', 'deleted'].map((s) => h('option', { value: s, text: s || 'any' })))
    : h('input', { id: `h-${f}`, name: f, type: f === 'from' || f === 'to' ? 'datetime-local' : 'text', value: prev[f] || '' })]));
  if (prev.status) inputs.status.value = prev.status;
  const body = h('div', { id: 'history-body' });
  const load = async (cursor) => {
    try {
      const params = new URLSearchParams();
      for (const f of fields) if (inputs[f].value) params.set(f, inputs[f].value);
      if (cursor) params.set('cursor', cursor);
      const r = await api('GET', `/api/history?${params}`);
      const n = `${r.messages.length}${r.next ? '+' : ''} message${r.messages.length === 1 && !r.next ? '' : 's'}`;
      const hint = r.matched ? `${n} ${r.matched.replace(/^messages /, '')}` : `${n}, newest first`;
      body.replaceChildren(h('p', { class: 'muted', id: 'history-hint', text: hint }), table([
        ['Received', (m) => fmtTime(m.receivedAt)], ['From', (m) => m.mailFrom || '<>'],
        ['To', (m) => h('span', {}, m.recipients.flatMap((a, i) => [i ? ', ' : '', a === m.matchedRecipient ? h('mark', { text: a }) : a]))], ['Subject', (m) => m.subject || ''],
        ['Client', (m) => m.client || m.source], ['Status', (m) => badge(m.status)], ['Why', (m) => h('span', { class: 'reason', text: m.reason || '' })]],
      r.messages, (m) => { location.hash = `message/${encodeURIComponent(m.id)}`; }),
      r.next ? h('button', { class: 'secondary', onclick: () => load(r.next) }, 'Older…') : '');
    } catch (e) { body.replaceChildren(errorBox(e)); }
  };
  setPage(token, h('h1', { text: 'History: where did my scan go?' }),
    h('p', { class: 'muted', text: 'Type part of an address or subject: "scan", "@contoso.com", "sales@". A whole address is matched exactly.' }),
    h('form', { class: 'filters', id: 'history-form', onsubmit: (e) => { e.preventDefault(); load(); } },
      fields.map((f) => h('label', {}, HISTORY_LABELS[f], inputs[f])), h('button', { type: 'submit', id: 'history-search' }, 'Search')),
    body);
  await load();
};
pages.message = async (id, _fresh, token) => {
  try {
    const m = await api('GET', `/api/history/${encodeURIComponent(id)}`);
    setPage(token, h('h1', { text: `Message ${m.id}` }),
      h('p', {}, badge(m.status), ' ', h('span', { class: 'reason', text: m.reason || '' })),
      table([['Field', (r) => r[0]], ['Value', (r) => r[1]]], [['From', m.mailFrom || '<>'], ['To', m.recipients.join(', ')], ['Subject', m.subject || ''], ['Received', fmtTime(m.receivedAt)],
        ['Client', `${m.client} (${m.source})`], ['Size', `${m.size} bytes`], ['Upstream', m.upstream || ''], ['Route', m.route || '']].map((r) => Object.assign(r, { id: r[0] }))),
      h('h2', { text: 'Timeline' }),
      h('div', { id: 'timeline' }, table([['When', (e) => fmtTime(e.at)], ['What', (e) => h('span', {}, e.kind, ' ', badge(e.action))], ['Recipient', (e) => e.recipient || ''],
        ['Upstream said', (e) => h('div', {}, h('span', { text: e.diagnostic || '' }), h('div', { class: 'reason', text: e.reason || '' }), e.possibleDuplicate ? h('div', { class: 'reason', text: 'possible duplicate: the connection dropped after the message was sent' }) : '')],
        ['Took', (e) => (e.durationMs !== undefined ? `${e.durationMs} ms` : '')]], m.timeline)));
  } catch (e) { setPage(token, h('h1', { text: `Message ${id}` }), errorBox(e)); }
};

// ---- badmail ---------------------------------------------------------------------------------
pages.badmail = async (_arg, fresh, token) => {
  try {
    const r = await api('GET', '/api/badmail');
    const detail = h('div', { id: 'badmail-detail' });
    // Live refreshes rebuild the page: keep the reason the admin opened on screen.
    if (fresh) state.badmailOpen = '';
    const showReason = async (name) => {
      state.badmailOpen = name;
      try { const d = await api('GET', `/api/badmail/${encodeURIComponent(name)}`); detail.replaceChildren(h('h2', { text: name }), h('pre', { text: d.reason })); } catch (err) { detail.replaceChildren(errorBox(err)); }
    };
    setPage(token, h('h1', { text: 'Badmail' }), h('p', { class: 'muted', text: 'Messages that could not be delivered. Read the reason, fix the cause, then retry.' }),
      table([['When', (b) => fmtTime(b.at)], ['Name', (b) => b.name], ['Reason', (b) => h('span', { class: 'reason', text: b.summary })],
        ['', (b) => h('span', {},
          h('button', { class: 'secondary', 'data-action': 'reason', onclick: (e) => { e.stopPropagation(); return showReason(b.name); } }, 'Reason'), ' ',
          h('a', { href: `/api/badmail/${encodeURIComponent(b.name)}/download`, download: `${b.name}.eml` }, 'Download'), ' ',
          h('button', { 'data-action': 'retry', onclick: (e) => { e.stopPropagation(); act(`retry ${b.name}`, () => api('POST', `/api/badmail/${encodeURIComponent(b.name)}/retry`)); } }, 'Retry'))]], r.entries),
      detail);
    if (state.badmailOpen && r.entries.some((b) => b.name === state.badmailOpen)) await showReason(state.badmailOpen);
  } catch (e) { setPage(token, h('h1', { text: 'Badmail' }), errorBox(e)); }
};

// ---- test send -------------------------------------------------------------------------------
pages.send = async (_arg, fresh, token) => {
  if (!fresh && $('send-form')) return; // keep what the admin typed across live refreshes
  const out = h('div', { id: 'send-result' });
  const f = (name, attrs) => h('label', {}, name, h(attrs.tag || 'input', { id: `send-${name.toLowerCase()}`, ...attrs }));
  setPage(token, h('h1', { text: 'Test send' }),
    h('p', { class: 'muted', text: 'The classic Email.txt test: a short message through the relay, like a scanner would send it.' }),
    h('form', { id: 'send-form', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api('POST', '/api/send-test', { from: $('send-from').value, to: $('send-to').value, subject: $('send-subject').value, body: $('send-body').value });
        out.replaceChildren(h('p', { class: 'ok-text' }, 'Queued as ', h('a', { href: `#message/${encodeURIComponent(r.id)}`, id: 'send-queued', text: r.id }), '. Follow it in History.'));
      } catch (err) { out.replaceChildren(errorBox(err)); }
    } },
    f('From', { type: 'email', required: true, placeholder: 'scanner@yourdomain.com' }), f('To', { type: 'email', required: true, placeholder: 'you@yourdomain.com' }),
    f('Subject', { value: 'Test email' }), f('Body', { tag: 'textarea' }), h('button', { type: 'submit', id: 'send-submit' }, 'Send test message')), out);
  $('send-body').value = 'This is a test email sent from my SMTP server';
};

// ---- diagnostics -----------------------------------------------------------------------------
// A tool's answer: its verdict in a sentence, then headings with lines, tables or copyable text.
function diagnosticView(v) {
  return h('article', { class: `diag-result ${v.verdict}`, 'data-verdict': v.verdict },
    h('h2', {}, badge({ ok: 'ok', problem: 'problem', unknown: 'could not check' }[v.verdict] || v.verdict), ' ', v.title),
    h('p', { class: 'summary', text: v.summary }),
    v.sections.map((s) => h('section', {},
      h('h3', { text: s.heading }),
      s.lines ? h('ul', {}, s.lines.map((l) => h('li', { text: l }))) : '',
      s.table ? (s.table.rows.length ? h('table', {}, h('thead', {}, h('tr', {}, s.table.columns.map((c) => h('th', { text: c })))),
        h('tbody', {}, s.table.rows.map((r) => h('tr', {}, r.map((cell, i) => h('td', { 'data-label': s.table.columns[i], text: cell })))))) : h('p', { class: 'muted', text: 'none' })) : '',
      s.pre ? h('pre', { text: s.pre }) : '')));
}
pages.diagnostics = async (_arg, fresh, token) => {
  if (!fresh && $('diag-out')) return; // keep a result on screen across live refreshes
  try {
    const avail = await api('GET', '/api/diagnostics');
    const out = h('div', { id: 'diag-out' }, h('p', { class: 'muted', text: 'Pick a tool above; its answer appears here.' }));
    const run = async (label, url, body) => {
      out.replaceChildren(h('p', { class: 'muted', text: `${label}…` }));
      try { out.replaceChildren(diagnosticView((await api('POST', url, body)).result)); } catch (e) { out.replaceChildren(errorBox(e)); }
    };
    const val = (id) => $(id).value.trim();
    const tool = (id, title, help, fields, button, onrun) => h('form', { class: 'tool', id, onsubmit: (e) => { e.preventDefault(); e.target.after(out); onrun(); } }, // the answer appears under the tool that asked
      h('h2', { text: title }), h('p', { class: 'muted', text: help }), h('div', { class: 'inline' }, fields, h('button', { type: 'submit' }, button)));
    const input = (label, id, attrs = {}) => h('label', {}, label, h('input', { id, ...attrs }));
    const tools = [];
    if (avail.spf) tools.push(tool('tool-spf', 'SPF check', 'May this address send for the domain? Leave the address empty to lint the record instead (CLI: smarthost spf check / spf lint).',
      [input('Domain', 'spf-domain', { required: true, placeholder: 'contoso.com' }), input('Sending IP (optional)', 'spf-ip', { placeholder: '203.0.113.7' })], 'Check SPF',
      () => run('Checking SPF', '/api/diagnostics/spf', { domain: val('spf-domain'), ip: val('spf-ip') || undefined })));
    if (avail.spfExplain) tools.push(tool('tool-spf-explain', 'SPF explained', 'Each term of the record in words, the includes resolved and the DNS lookups counted (CLI: smarthost spf explain).',
      [input('Domain', 'spfx-domain', { required: true, placeholder: 'contoso.com' })], 'Explain',
      () => run('Explaining SPF', '/api/diagnostics/spf-explain', { domain: val('spfx-domain') })));
    if (avail.spfBuild) tools.push(tool('tool-spf-build', 'SPF record builder', 'Compose a record for your domain from the services that send for it (CLI: smarthost spf build).',
      [input('Domain', 'spfb-domain', { required: true, placeholder: 'contoso.com' }), input('Includes', 'spfb-include', { placeholder: 'spf.protection.outlook.com' }),
        input('IP addresses', 'spfb-ip', { placeholder: '203.0.113.7' }), h('label', { class: 'check' }, h('input', { id: 'spfb-mx', type: 'checkbox' }), 'its MX servers send'),
        h('label', {}, 'Everyone else', h('select', { id: 'spfb-all' }, h('option', { value: '-all', text: '-all (reject)' }), h('option', { value: '~all', text: '~all (mark as suspicious)' })))], 'Build record',
      () => run('Building the record', '/api/diagnostics/spf-build', { domain: val('spfb-domain'), include: val('spfb-include'), ip: val('spfb-ip'), mx: $('spfb-mx').checked, all: $('spfb-all').value })));
    if (avail.dns) tools.push(tool('tool-dns', 'Microsoft 365 DNS records', 'MX, SPF, autodiscover, DKIM and the rest: found vs expected, and the fix (CLI: smarthost dns m365).',
      [input('Domain', 'dns-domain', { required: true, placeholder: 'contoso.com' }), input('Tenant prefix (optional, exact DKIM)', 'dns-tenant', { placeholder: 'contoso' }),
        input('Verification TXT (optional)', 'dns-verification', { placeholder: 'MS=ms12345678' })], 'Check Microsoft 365 DNS',
      () => run('Checking the records', '/api/diagnostics/dns', { domain: val('dns-domain'), tenantPrefix: val('dns-tenant'), verification: val('dns-verification') })));
    if (avail.propagation) tools.push(tool('tool-propagation', 'DNS propagation', 'The same question to several resolvers, side by side, with how long each may keep its answer (CLI: smarthost dns propagation).',
      [input('Name', 'prop-name', { required: true, placeholder: 'contoso.com' }),
        h('label', {}, 'Type', h('select', { id: 'prop-type' }, ['TXT', 'MX', 'A', 'AAAA', 'CNAME', 'NS', 'SOA', 'SRV', 'PTR', 'CAA'].map((t) => h('option', { value: t, text: t })))),
        input('Expected value (optional)', 'prop-expect', { placeholder: 'the new value' })], 'Ask the resolvers',
      () => run('Asking the resolvers', '/api/diagnostics/propagation', { domain: val('prop-name'), type: $('prop-type').value, expect: val('prop-expect') })));
    if (avail.headers) tools.push(tool('tool-headers', 'Message header analysis', 'Paste the headers of a message (Outlook: File → Properties → Internet headers): hops and delays, SPF/DKIM/DMARC, why it was junked (CLI: smarthost headers analyze).',
      [h('label', { class: 'wide' }, 'Message headers', h('textarea', { id: 'hdr-text', required: true }))], 'Analyse headers',
      () => run('Analysing the headers', '/api/diagnostics/headers', { text: $('hdr-text').value })));
    setPage(token, h('h1', { text: 'Diagnostics' }), ...(tools.length ? tools : [h('p', { class: 'muted', text: 'No diagnostic tools are available in this relay.' })]), out);
  } catch (e) { setPage(token, h('h1', { text: 'Diagnostics' }), errorBox(e)); }
};

// ---- refusals --------------------------------------------------------------------------------
const REFUSAL_WORDS = {
  'connection-denied': 'the client address is not in access.connection',
  'relay-denied': 'the client may not relay: not in access.relay (nor authenticated)',
  'auth-failed': 'wrong user name or password',
  'auth-locked-out': 'too many failed logins: the connection was closed',
  'auth-needs-tls': 'the client tried AUTH before STARTTLS',
  'auth-mechanism': 'the client asked for a login method the relay does not offer',
  'auth-required': 'auth.required is on and the client did not log in',
  'tls-required': 'this listener requires STARTTLS first',
  'sender-refused': 'the sender rules do not allow this sender for this client',
  'too-big': 'the message is larger than limits.maxMessageSize',
  'bad-recipient': 'the recipient has no domain',
  'bad-parameters': 'the client used an SMTP parameter the relay does not implement',
  'bad-line-endings': 'the message has bare CR or LF line ends',
  'mail-loop': 'too many Received headers: probably a mail loop',
  busy: 'the relay was at limits.maxConnections',
  'too-many-connections-from-client': 'the client was at limits.maxConnectionsPerClient',
  'local-error': 'the relay could not queue the message (see the log)',
};
pages.refusals = async (_arg, fresh, token) => {
  const prev = fresh ? '' : $('ref-client')?.value || '';
  const client = h('input', { id: 'ref-client', placeholder: '192.168.1.50', value: prev });
  const body = h('div', { id: 'refusals-body' });
  const load = async () => {
    try {
      const r = await api('GET', `/api/refusals${client.value ? `?client=${encodeURIComponent(client.value)}` : ''}`);
      const counts = Object.entries(r.counts).sort((a, b) => b[1] - a[1]);
      body.replaceChildren(
        counts.length ? h('div', { class: 'cards' }, counts.map(([k, n]) => h('div', { class: 'card', 'data-reason': k, title: REFUSAL_WORDS[k] || '' }, h('div', { class: 'n', text: n }), h('div', { class: 'k', text: k })))) : '',
        h('h2', { text: 'Latest refusals' }),
        table([['When', (x) => fmtTime(x.at)], ['Client', (x) => x.client], ['Reason', (x) => h('div', {}, h('span', { class: 'state refused', 'data-state': x.reason, text: x.reason }), h('div', { class: 'reason', text: REFUSAL_WORDS[x.reason] || '' }))],
          ['Command', (x) => x.stage], ['The client heard', (x) => h('code', { text: x.reply })],
          ['Details', (x) => [x.user ? `user ${x.user}` : '', x.mailFrom ? `from ${x.mailFrom}` : '', x.recipient ? `to ${x.recipient}` : ''].filter(Boolean).join(', ')]],
        r.refusals.map((x, i) => ({ ...x, id: `r${i}` }))),
        r.available ? '' : h('p', { class: 'muted', text: 'This relay does not record refusals.' }));
    } catch (e) { body.replaceChildren(errorBox(e)); }
  };
  setPage(token, h('h1', { text: 'Refusals: why did my device get an error?' }),
    h('p', { class: 'muted', text: 'What the relay refused since it started, newest first: connections, logins, senders and recipients, with the exact reply the client got.' }),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(); } }, h('label', {}, 'Client address', client), h('button', { type: 'submit', id: 'refusals-search' }, 'Show')),
    body);
  await load();
};

// ---- config ----------------------------------------------------------------------------------
pages.config = async (_arg, fresh, token) => {
  if (!fresh && $('config-text')) return; // never overwrite an edit in progress
  try {
    const c = await api('GET', '/api/config');
    const text = h('textarea', { id: 'config-text', spellcheck: 'false' }); text.value = c.text;
    const out = h('div', { id: 'config-result' });
    const show = (r) => out.replaceChildren(r.ok ? h('p', { class: 'ok-text', text: r.message || 'No problems found.' })
      : h('ul', { class: 'problems error' }, (r.problems || []).map((p) => h('li', { text: `${p.line ? `line ${p.line}${p.column ? `:${p.column}` : ''}: ` : p.path ? `${p.path}: ` : ''}${p.message}` }))));
    setPage(token, h('h1', { text: `Configuration (${c.source})` }),
      h('p', { class: 'muted', text: 'Secrets are shown as ********; leave them so to keep the current value.' }), text,
      h('p', {}, h('button', { class: 'secondary', id: 'config-validate', onclick: async () => { try { show(await api('POST', '/api/config/validate', { text: text.value })); } catch (e) { show({ ok: false, problems: e.problems || [{ message: e.message }] }); } } }, 'Validate'), ' ',
        h('button', { id: 'config-apply', onclick: async () => { try { show(await api('POST', '/api/config/apply', { text: text.value })); } catch (e) { show({ ok: false, problems: e.problems || [{ message: e.message }] }); } } }, 'Apply and reload')),
      out, h('h2', { text: 'Running configuration' }), h('pre', { id: 'config-current', text: JSON.stringify(c.current, null, 2) }));
  } catch (e) { setPage(token, h('h1', { text: 'Configuration' }), errorBox(e)); }
};

startSession();
