// The admin console page: sign-in, the live WebSocket, rooms table with
// moderation buttons, plots, recent errors, and the History/Settings tabs.
// Plain English (no i18n): an operator tool.

import { drawPlot, si, mib } from './plot.js';
import { initPages, loadHistory, loadSettings } from './pages.js';

const HISTORY = 300;
const $ = (id) => document.getElementById(id);

let ws = null;
let samples = [];
let selected = null; // participant id
const perParticipant = new Map(); // id -> [{send, recv}]

async function api(method, path, body) {
  const opts = { method, headers: { 'X-Convene-Admin': '1' }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(`/admin/api${path}`, opts);
  let data = null;
  if (r.status !== 204) {
    try { data = await r.json(); } catch { data = null; }
  }
  return { status: r.status, data };
}

function status(text) {
  $('status').textContent = text;
}

function showSignIn() {
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  $('console').hidden = true;
  $('history').hidden = true;
  $('settings').hidden = true;
  $('tabs').hidden = true;
  $('sign-out').hidden = true;
  $('team').textContent = '';
  $('who').textContent = '';
  document.body.classList.remove('read-only');
  $('sign-in').hidden = false;
  status('');
}

function showConsole(team) {
  $('sign-in').hidden = true;
  $('tabs').hidden = false;
  showTab('console');
  $('sign-out').hidden = false;
  $('team').textContent = team.team_name || '';
  // A fleet viewer may only look: the buttons that change something go.
  document.body.classList.toggle('read-only', !!team.read_only);
  $('who').textContent = team.email
    ? `${team.email} · ${team.role}${team.read_only ? ' (read-only)' : ''}` : '';
  connect();
  loadErrors();
}

function showTab(name) {
  for (const b of document.querySelectorAll('[data-tab]')) {
    const on = b.dataset.tab === name;
    $(b.dataset.tab).hidden = !on;
    if (on) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
  }
  if (name === 'history') loadHistory();
  if (name === 'settings') loadSettings();
}

// The server's last WARN/ERROR log events, newest first (text only).
async function loadErrors() {
  const r = await api('GET', '/errors');
  if (r.status === 401) { showSignIn(); return; }
  if (r.status !== 200) return;
  const rows = r.data.data || [];
  const body = $('errors').querySelector('tbody');
  body.replaceChildren();
  for (const e of rows) {
    const tr = document.createElement('tr');
    tr.dataset.level = e.level;
    cell(tr, new Date(e.t).toISOString().replace('T', ' ').slice(0, 19));
    cell(tr, e.level, e.level === 'ERROR' ? 'error' : '');
    cell(tr, e.target);
    cell(tr, e.message);
    body.appendChild(tr);
  }
  $('errors').hidden = rows.length === 0;
  $('no-errors').hidden = rows.length > 0;
}

function drawServer() {
  drawPlot($('plot-pps'), [samples.map((s) => s.pps_out)], si);
  drawPlot($('plot-bitrate'), [samples.map((s) => s.bps_in), samples.map((s) => s.bps_out)], si);
  drawPlot($('plot-cpu'), [samples.map((s) => s.cpu_percent)], (v) => `${v.toFixed(1)} %`);
  drawPlot($('plot-mem'), [samples.map((s) => s.rss_bytes)], mib);
}

function drawParticipant() {
  const h = (selected && perParticipant.get(selected)) || [];
  drawPlot($('plot-participant'), [h.map((x) => x.send), h.map((x) => x.recv)], si);
}

function fmt(v, digits = 0, suffix = '') {
  return v === null || v === undefined ? '–' : `${Number(v).toFixed(digits)}${suffix}`;
}

async function moderate(path, label) {
  const r = await api('POST', path, path.endsWith('/mute') ? {} : undefined);
  if (r.status === 401) { showSignIn(); return; }
  status(r.status < 300 ? `${label}: done` : `${label}: ${r.data?.message || r.status}`);
}

function button(text, onClick, attrs = {}) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  Object.entries(attrs).forEach(([k, v]) => b.setAttribute(k, v));
  b.addEventListener('click', onClick);
  return b;
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function renderRooms(rooms) {
  const root = $('rooms');
  root.replaceChildren();
  $('no-rooms').hidden = rooms.length > 0;
  for (const room of rooms) {
    const head = document.createElement('div');
    head.className = 'room-head';
    const h3 = document.createElement('h3');
    h3.textContent = `${room.friendly_url} (${room.participants.length})`;
    head.appendChild(h3);
    if (room.session_id) {
      head.appendChild(button('End session', () => {
        if (confirm(`End the session of ${room.friendly_url}?`)) {
          moderate(`/sessions/${encodeURIComponent(room.session_id)}/end`, 'end session');
        }
      }, { 'data-end-session': room.id }));
    }
    root.appendChild(head);
    const table = document.createElement('table');
    table.dataset.room = room.id;
    table.innerHTML = '<thead><tr><th>Name</th><th>Role</th><th>Tracks</th><th>Layers received</th>'
      + '<th>Send bit/s</th><th>Receive bit/s</th><th>Loss in/out</th><th>RTT</th><th>Jitter</th><th></th></tr></thead>';
    const body = document.createElement('tbody');
    for (const p of room.participants) {
      const tr = document.createElement('tr');
      tr.dataset.participant = p.id;
      tr.dataset.sendBps = String(p.send_bps);
      tr.dataset.recvBps = String(p.recv_bps);
      if (p.id === selected) tr.className = 'selected';
      tr.addEventListener('click', () => { selected = p.id; $('selected-name').textContent = p.name; drawParticipant(); });
      cell(tr, p.name);
      cell(tr, p.role);
      const tracks = cell(tr, p.tracks.map((t) => `${t.source}${t.muted ? ' (muted)' : ''}`).join(', ') || '–');
      tracks.dataset.tracks = JSON.stringify(p.tracks);
      cell(tr, p.receiving.map((v) => v.layer || '–').join(' ') || '–');
      cell(tr, si(p.send_bps), 'num');
      cell(tr, si(p.recv_bps), 'num');
      cell(tr, `${fmt(p.loss_in === null ? null : p.loss_in * 100, 1, '%')} / ${fmt(p.loss_out === null ? null : p.loss_out * 100, 1, '%')}`, 'num');
      cell(tr, fmt(p.rtt_ms, 0, ' ms'), 'num');
      cell(tr, fmt(p.jitter_ms, 1, ' ms'), 'num');
      const actions = cell(tr, '');
      const base = `/rooms/${encodeURIComponent(room.id)}/live/participants/${encodeURIComponent(p.id)}`;
      actions.appendChild(button('Mute', (e) => { e.stopPropagation(); moderate(`${base}/mute`, `mute ${p.name}`); }, { 'data-mute': p.id }));
      actions.appendChild(button('Remove', (e) => { e.stopPropagation(); moderate(`${base}/remove`, `remove ${p.name}`); }, { 'data-remove': p.id }));
      body.appendChild(tr);
    }
    table.appendChild(body);
    root.appendChild(table);
  }
}

function onTick(msg) {
  if (msg.server) {
    samples.push(msg.server);
    if (samples.length > HISTORY) samples = samples.slice(-HISTORY);
  }
  const seen = new Set();
  for (const room of msg.rooms) {
    for (const p of room.participants) {
      seen.add(p.id);
      const h = perParticipant.get(p.id) || [];
      h.push({ send: p.send_bps, recv: p.recv_bps });
      if (h.length > HISTORY) h.shift();
      perParticipant.set(p.id, h);
    }
  }
  for (const id of [...perParticipant.keys()]) if (!seen.has(id)) perParticipant.delete(id);
  if (!selected || !seen.has(selected)) {
    const first = msg.rooms.flatMap((r) => r.participants)[0];
    selected = first ? first.id : null;
    $('selected-name').textContent = first ? first.name : '';
  }
  renderRooms(msg.rooms);
  drawServer();
  drawParticipant();
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  ws = new WebSocket(`${scheme}://${location.host}/admin/api/live`);
  status('connecting…');
  ws.onopen = () => status('live');
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === 'history') { samples = msg.samples; drawServer(); }
    if (msg.type === 'tick') onTick(msg);
  };
  ws.onclose = async () => {
    ws = null;
    // Signed out or expired: back to sign-in; otherwise retry.
    const r = await api('GET', '/session');
    if (r.status === 401) { showSignIn(); return; }
    status('reconnecting…');
    setTimeout(connect, 2000);
  };
}

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('sign-in-error').textContent = '';
  const r = await api('POST', '/session', { key: $('key').value });
  if (r.status === 200) {
    $('key').value = '';
    $('rotated').hidden = true;
    $('new-key').textContent = '';
    showConsole(r.data);
  } else {
    $('sign-in-error').textContent = r.data?.message || `sign-in failed (${r.status})`;
  }
});

$('account-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('account-error').textContent = '';
  const r = await api('POST', '/session', {
    email: $('account-email').value, password: $('account-password').value,
  });
  $('account-password').value = '';
  if (r.status === 200) {
    $('rotated').hidden = true;
    showConsole(r.data);
  } else {
    $('account-error').textContent = r.data?.message || `sign-in failed (${r.status})`;
  }
});

$('errors-refresh').addEventListener('click', loadErrors);
for (const b of document.querySelectorAll('[data-tab]')) {
  b.addEventListener('click', () => showTab(b.dataset.tab));
}
initPages(api, showSignIn, (key) => {
  // The rotation ended this session too: sign-in, with the new key once.
  showSignIn();
  $('new-key').textContent = key;
  $('rotated').hidden = false;
});

$('sign-out').addEventListener('click', async () => {
  await api('DELETE', '/session');
  showSignIn();
});

(async () => {
  const r = await api('GET', '/session');
  if (r.status === 200) showConsole(r.data); else showSignIn();
})();
