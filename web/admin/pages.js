// The console's History page (sessions with statistics, recordings with
// progress and download links, webhook deliveries with redelivery) and
// Settings page (team defaults, webhooks). Text only (textContent).

const PAGE = 20;
const $ = (id) => document.getElementById(id);

let api = null;
let sessionOffset = 0;
let rotated = () => {};

/// `request(method, path, body)` answers `{status, data}`; `unauth()` runs
/// on a 401; `onRotated(key)` after the developer key was rotated.
export function initPages(request, unauth, onRotated) {
  rotated = onRotated;
  api = async (...args) => {
    const r = await request(...args);
    if (r.status === 401) unauth();
    return r;
  };
  $('sessions-prev').addEventListener('click', () => { sessionOffset = Math.max(0, sessionOffset - PAGE); loadSessions(); });
  $('sessions-next').addEventListener('click', () => { sessionOffset += PAGE; loadSessions(); });
  $('history-refresh').addEventListener('click', loadHistory);
  $('defaults-form').addEventListener('submit', saveDefaults);
  $('webhook-form').addEventListener('submit', createWebhook);
  $('rotate-start').addEventListener('click', () => { $('rotate-confirm').hidden = false; $('rotate-text').focus(); });
  $('rotate-cancel').addEventListener('click', () => { $('rotate-confirm').hidden = true; $('rotate-text').value = ''; });
  $('rotate-go').addEventListener('click', rotateKey);
}

async function rotateKey() {
  const r = await api('POST', '/key/rotate', { confirm: $('rotate-text').value });
  $('rotate-text').value = '';
  $('rotate-confirm').hidden = true;
  if (r.status === 200) rotated(r.data.developer_key);
  else note('settings-note', r.data?.message || String(r.status));
}

function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
  return e;
}

function row(cells, attrs = {}) {
  const tr = el('tr', null, attrs);
  for (const c of cells) {
    const td = el('td');
    if (c instanceof Node) td.appendChild(c); else td.textContent = c ?? '–';
    tr.appendChild(td);
  }
  return tr;
}

function button(text, onClick, attrs = {}) {
  const b = el('button', text, { type: 'button', ...attrs });
  b.addEventListener('click', onClick);
  return b;
}

function note(id, text) {
  $(id).textContent = text;
}

// ---- History ----

export async function loadHistory() {
  await Promise.all([loadSessions(), loadRecordings(), loadDeliveries()]);
}

async function loadSessions() {
  const r = await api('GET', `/sessions?order=desc&limit=${PAGE}&offset=${sessionOffset}`);
  if (r.status !== 200) { note('history-note', r.data?.message || `sessions: ${r.status}`); return; }
  const body = $('sessions').querySelector('tbody');
  body.replaceChildren();
  for (const s of r.data.data) {
    const stats = el('td', '', { 'data-stats': s.id });
    const tr = row([s.room_friendly_url, s.start_time, s.end_time || (s.live ? 'live' : '–'),
      `${s.session_duration} s`, s.participants_total, s.end_reason || '–'], { 'data-session': s.id });
    stats.appendChild(button('Statistics', async () => {
      const st = await api('GET', `/sessions/${encodeURIComponent(s.id)}/statistics`);
      stats.textContent = st.status === 200
        ? Object.entries(st.data).filter(([, v]) => typeof v !== 'object').map(([k, v]) => `${k}: ${v}`).join(', ')
        : (st.data?.message || String(st.status));
    }, { 'data-stats-button': s.id }));
    tr.appendChild(stats);
    body.appendChild(tr);
  }
  const total = r.data.total_count;
  note('sessions-page', total ? `${sessionOffset + 1}–${sessionOffset + r.data.data.length} of ${total}` : 'No sessions.');
  $('sessions-prev').disabled = sessionOffset === 0;
  $('sessions-next').disabled = sessionOffset + r.data.data.length >= total;
}

async function loadRecordings() {
  const r = await api('GET', `/recordings?order=desc&limit=${PAGE}`);
  if (r.status !== 200) return;
  const body = $('recordings').querySelector('tbody');
  body.replaceChildren();
  for (const rec of r.data.data) {
    const state = el('span', rec.status, { 'data-status': rec.status });
    const cellState = el('span');
    cellState.appendChild(state);
    if (rec.status === 'PROCESSING') {
      const bar = el('progress', null, { max: '100', value: String(rec.progress) });
      bar.title = `${rec.progress} %`;
      cellState.appendChild(bar);
    }
    const action = el('span');
    if (rec.status === 'READY') {
      action.appendChild(button('Download', async () => {
        const l = await api('GET', `/recordings/${encodeURIComponent(rec.id)}/download`);
        if (l.status !== 200) { note('history-note', l.data?.message || String(l.status)); return; }
        // The signed link names the public URL; the console is served by the
        // same server, so its path and query work from here whatever
        // address the operator reached the console at.
        const u = new URL(l.data.link, location.href);
        const a = el('a', 'link', { href: u.pathname + u.search, 'data-download': rec.id, download: '' });
        action.replaceChildren(a);
        a.click();
      }, { 'data-download-button': rec.id }));
    }
    body.appendChild(row([rec.friendly_url || rec.room_id, rec.started_at, `${rec.duration} s`,
      cellState, action], { 'data-recording': rec.id }));
  }
  $('no-recordings').hidden = r.data.data.length > 0;
}

async function loadDeliveries() {
  const w = await api('GET', '/webhooks');
  if (w.status !== 200) return;
  const body = $('deliveries').querySelector('tbody');
  body.replaceChildren();
  let n = 0;
  for (const hook of w.data.data) {
    const d = await api('GET', `/webhooks/${encodeURIComponent(hook.id)}/deliveries?limit=${PAGE}`);
    if (d.status !== 200) continue;
    for (const del of d.data.data) {
      n += 1;
      const action = el('span');
      if (del.status === 'failed') {
        action.appendChild(button('Redeliver', async () => {
          const r = await api('POST', `/webhooks/${encodeURIComponent(hook.id)}/deliveries/${encodeURIComponent(del.id)}/redeliver`);
          note('history-note', r.status === 202 ? 'Redelivery queued.' : (r.data?.message || String(r.status)));
          loadDeliveries();
        }, { 'data-redeliver': del.id }));
      }
      body.appendChild(row([hook.endpoint, del.event, del.status, del.attempts,
        del.last_status_code ?? '–', del.last_error || '–', del.last_attempt_at || '–', action],
      { 'data-delivery': del.id, 'data-delivery-status': del.status }));
    }
  }
  $('no-deliveries').hidden = n > 0;
}

// ---- Settings ----

let defaults = {};

export async function loadSettings() {
  await Promise.all([loadDefaults(), loadWebhooks()]);
}

async function loadDefaults() {
  const r = await api('GET', '/defaults');
  if (r.status !== 200) return;
  defaults = r.data;
  const root = $('defaults-fields');
  root.replaceChildren();
  for (const [k, v] of Object.entries(defaults)) {
    if (v !== null && typeof v === 'object') continue;
    const label = el('label', `${k} `);
    let input;
    if (typeof v === 'boolean') {
      input = el('input', null, { type: 'checkbox' });
      input.checked = v;
    } else if (typeof v === 'number') {
      input = el('input', null, { type: 'number' });
      input.value = String(v);
    } else {
      input = el('input', null, { type: 'text' });
      input.value = v ?? '';
    }
    input.dataset.default = k;
    label.appendChild(input);
    root.appendChild(label);
  }
}

async function saveDefaults(e) {
  e.preventDefault();
  const patch = {};
  for (const input of document.querySelectorAll('[data-default]')) {
    const k = input.dataset.default;
    const old = defaults[k];
    let v;
    if (input.type === 'checkbox') v = input.checked;
    else if (input.type === 'number') v = Number(input.value);
    else v = input.value === '' && old === null ? null : input.value;
    if (v !== old) patch[k] = v;
  }
  if (Object.keys(patch).length === 0) { note('settings-note', 'Nothing changed.'); return; }
  const r = await api('PATCH', '/defaults', patch);
  note('settings-note', r.status === 200 ? 'Defaults saved.' : (r.data?.message || String(r.status)));
  if (r.status === 200) loadDefaults();
}

async function loadWebhooks() {
  const r = await api('GET', '/webhooks');
  if (r.status !== 200) return;
  const body = $('webhooks').querySelector('tbody');
  body.replaceChildren();
  for (const w of r.data.data) {
    const del = button('Delete', async () => {
      if (!confirm(`Delete the webhook to ${w.endpoint}?`)) return;
      const d = await api('DELETE', `/webhooks/${encodeURIComponent(w.id)}`);
      note('settings-note', d.status < 300 ? 'Webhook deleted.' : (d.data?.message || String(d.status)));
      loadWebhooks();
    }, { 'data-delete-webhook': w.id });
    body.appendChild(row([w.endpoint, (w.events || []).join(', '), w.has_secret ? 'yes' : 'no', del],
      { 'data-webhook': w.id }));
  }
}

async function createWebhook(e) {
  e.preventDefault();
  const body = {
    endpoint: $('webhook-endpoint').value,
    events: $('webhook-events').value.split(',').map((s) => s.trim()).filter(Boolean),
  };
  if ($('webhook-secret').value) body.secret = $('webhook-secret').value;
  const r = await api('POST', '/webhooks', body);
  if (r.status === 200 || r.status === 201) {
    $('webhook-form').reset();
    note('settings-note', 'Webhook created.');
    loadWebhooks();
  } else {
    note('settings-note', r.data?.message || String(r.status));
  }
}
