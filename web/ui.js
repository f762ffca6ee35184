// The DOM: screens, the join form, the tile grid, the controls, the lobby
// panel. No protocol knowledge here; main.js calls these functions.

import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

/**
 * Builds an element: `h('button', {class: 'small', onclick: fn}, 'text', child)`.
 * Strings become text nodes (never HTML); null/false children are skipped.
 */
export function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  e.append(...children.flat().filter((c) => c != null && c !== false));
  return e;
}

/** `12:34` for an RFC 3339 timestamp ('' when unparsable). */
export function clock(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

const SCREENS = ['loading', 'join', 'lobby', 'error', 'left', 'call'];

/** Shows one screen and hides the others. */
export function showScreen(name) {
  for (const s of SCREENS) $(`screen-${s}`).hidden = s !== name;
}

export function setStatus(text) {
  $('status').textContent = text;
}

export function setRoomTitle(room) {
  $('room-title').textContent = room.friendly_url || '';
  $('join-title').textContent = room.friendly_url ? t('Join {room}', { room: room.friendly_url }) : t('Join the room');
  $('join-description').textContent = room.description || '';
  if (room.topbar_enabled === false) $('topbar').hidden = true;
  if (room.primary_color) document.documentElement.style.setProperty('--primary', room.primary_color);
  if (room.background_color) document.documentElement.style.setProperty('--bg', room.background_color);
}

export function showError(title, message, code, retry) {
  $('error-title').textContent = title;
  $('error-message').textContent = message;
  $('error-code').textContent = code || '';
  $('error-retry').hidden = !retry;
  $('error-retry').onclick = retry || null;
  showScreen('error');
}

let noticeTimer = null;
/** A transient message over the call (refused offer, forbidden action, ...). */
export function notice(text, ms = 8000) {
  const el = $('notice');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    el.hidden = true;
  }, ms);
}

export function setReconnecting(on) {
  $('reconnecting').hidden = !on;
}

/** A two-state button: `on` is shown with aria-pressed. */
export function setToggle(id, on, { disabled = false, title = '' } = {}) {
  const b = $(id);
  b.setAttribute('aria-pressed', on ? 'true' : 'false');
  b.classList.toggle('off', !on);
  b.disabled = disabled;
  b.title = title;
}

export function onClick(id, fn) {
  $(id).addEventListener('click', fn);
}

// ---- join screen ----------------------------------------------------------

export function joinForm({ needName, name, onSubmit }) {
  $('name-row').hidden = !needName;
  $('name-input').required = needName;
  if (name) $('name-input').value = name;
  $('join-form').onsubmit = (ev) => {
    ev.preventDefault();
    onSubmit($('name-input').value.trim());
  };
}

export function typedName() {
  return $('name-input').value;
}

export function setJoinHint(text) {
  $('join-hint').textContent = text || '';
  $('join-hint').hidden = !text;
}

export function setJoinBusy(busy) {
  $('join-button').disabled = busy;
  $('join-button').textContent = busy ? t('Joining…') : t('Join');
}

export function setPreview(track) {
  const v = $('preview-video');
  v.srcObject = track ? new MediaStream([track]) : null;
  $('preview-off').hidden = Boolean(track);
}

/** Fills a device <select>; `onChange(deviceId)` on selection. */
export function fillDevices(id, devices, selected, onChange) {
  const sel = $(id);
  sel.replaceChildren(
    ...devices.map((d, i) => {
      const o = document.createElement('option');
      o.value = d.id;
      o.textContent = d.label || t('Device {n}', { n: i + 1 });
      o.selected = d.id === selected;
      return o;
    }),
  );
  sel.disabled = devices.length === 0;
  sel.onchange = () => onChange(sel.value);
}

// ---- lobby (moderators) ---------------------------------------------------

export function renderLobby(requests, { onAdmit, onReject }) {
  const list = $('lobby-list');
  list.replaceChildren(
    ...requests.map((r) => {
      const li = document.createElement('li');
      li.dataset.id = r.id;
      const name = document.createElement('span');
      name.textContent = r.name;
      const admit = document.createElement('button');
      admit.type = 'button';
      admit.className = 'primary admit';
      admit.textContent = t('Admit');
      admit.onclick = () => onAdmit(r.id);
      const reject = document.createElement('button');
      reject.type = 'button';
      reject.className = 'reject';
      reject.textContent = t('Reject');
      reject.onclick = () => onReject(r.id);
      li.append(name, admit, reject);
      return li;
    }),
  );
  $('lobby-panel').hidden = requests.length === 0;
}

// ---- tiles ------------------------------------------------------------------

const QUALITY_TEXT = { excellent: '●●●', good: '●●○', poor: '●○○', lost: '○○○' };

class Tile {
  constructor(key, { local = false, screen = false } = {}) {
    this.key = key;
    this.el = document.createElement('div');
    this.el.className = 'tile';
    this.el.dataset.key = key;
    if (screen) this.el.classList.add('screen');
    this.video = document.createElement('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true; // audio plays through its own element
    this.audio = document.createElement('audio');
    this.audio.autoplay = true;
    this.placeholder = document.createElement('div');
    this.placeholder.className = 'avatar';
    const bar = document.createElement('div');
    bar.className = 'bar';
    this.nameEl = document.createElement('span');
    this.nameEl.className = 'name';
    this.micEl = document.createElement('span');
    this.micEl.className = 'mic-off';
    this.micEl.textContent = t('muted');
    this.micEl.title = t('Microphone muted');
    this.qualityEl = document.createElement('span');
    this.qualityEl.className = 'quality';
    this.actions = document.createElement('span');
    this.actions.className = 'actions';
    this.handEl = document.createElement('span');
    this.handEl.className = 'hand';
    this.handEl.hidden = true;
    // Pin (for yourself): the grid calls `onPin`.
    this.pinEl = document.createElement('button');
    this.pinEl.type = 'button';
    this.pinEl.className = 'pin';
    this.pinEl.textContent = '📌';
    this.pinEl.setAttribute('aria-pressed', 'false');
    this.pinEl.addEventListener('click', () => this.onPin && this.onPin());
    this.onPin = null;
    // Full screen and picture-in-picture of this tile: the grid calls
    // `onFullscreen` / `onPip`.
    this.fsEl = this.barButton('fullscreen', '⛶', () => this.onFullscreen && this.onFullscreen());
    this.pipEl = this.barButton('pip', '⧉', () => this.onPip && this.onPip());
    this.onFullscreen = null;
    this.onPip = null;
    bar.append(this.nameEl, this.handEl, this.micEl, this.actions, this.pinEl, this.fsEl, this.pipEl, this.qualityEl);
    this.el.append(this.video, this.placeholder, this.audio, bar);
    if (local) this.el.classList.add('local');
    this.videoTrack = null;
    this.audioTrack = null;
    this.videoMuted = false;
    this.refresh();
  }

  /** A small icon button of the tile's bar (labelled by `setName`). */
  barButton(cls, icon, fn) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `tile-button ${cls}`;
    b.textContent = icon;
    b.addEventListener('click', fn);
    return b;
  }

  /** Plays this tile's audio on output device `id` (where the browser can). */
  setSink(id) {
    if (this.sinkId === id || typeof this.audio.setSinkId !== 'function') return;
    this.sinkId = id;
    this.audio.setSinkId(id).catch(() => {
      this.sinkId = null;
    });
  }

  setName(name) {
    this.pinEl.title = t('Pin {name} (for you)', { name });
    this.pinEl.setAttribute('aria-label', this.pinEl.title);
    this.fsEl.title = t('Show {name} full screen', { name });
    this.fsEl.setAttribute('aria-label', this.fsEl.title);
    this.pipEl.title = t('Picture-in-picture of {name}', { name });
    this.pipEl.setAttribute('aria-label', this.pipEl.title);
    this.nameEl.textContent = name;
    this.placeholder.textContent = (name || '?').trim().charAt(0).toUpperCase();
  }

  setVideo(track) {
    if (track === this.videoTrack) return;
    this.videoTrack = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    this.refresh();
  }

  setAudio(track, onBlocked) {
    if (track === this.audioTrack) return;
    this.audioTrack = track;
    this.audio.srcObject = track ? new MediaStream([track]) : null;
    if (track) this.audio.play().catch(() => onBlocked());
  }

  /** Moderator buttons: `{mute, remove, lowerHand}`, each a handler or null. */
  setActions({ mute = null, remove = null, lowerHand = null } = {}) {
    const key = `${Boolean(mute)}${Boolean(remove)}${Boolean(lowerHand)}`;
    this.onMute = mute;
    this.onRemove = remove;
    this.onLowerHand = lowerHand;
    if (this.actionsKey === key) return;
    this.actionsKey = key;
    const buttons = [];
    if (lowerHand) {
      buttons.push(this.actionButton('lower-hand', t('Lower hand'), t('Lower their raised hand'), () => this.onLowerHand()));
    }
    if (mute) buttons.push(this.actionButton('mute', t('Mute'), t('Turn off their microphone'), () => this.onMute()));
    if (remove) buttons.push(this.actionButton('remove', t('Remove'), t('Remove from the meeting'), () => this.onRemove()));
    this.actions.replaceChildren(...buttons);
  }

  /** The raised-hand badge with the queue position (null: no hand). */
  setHand(position) {
    this.handEl.hidden = !position;
    this.handEl.textContent = position ? `✋ ${position}` : '';
    this.handEl.title = position ? t('Hand raised (#{n} in line)', { n: position }) : '';
    this.el.classList.toggle('hand-raised', Boolean(position));
  }

  /** A short floating emoji over the tile. */
  react(emoji) {
    const e = document.createElement('span');
    e.className = 'reaction';
    e.textContent = emoji;
    e.style.left = `${15 + Math.random() * 60}%`;
    this.el.append(e);
    setTimeout(() => e.remove(), 2600);
  }

  actionButton(cls, text, title, fn) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `small ${cls}`;
    b.textContent = text;
    b.title = title;
    b.onclick = fn;
    return b;
  }

  setMicMuted(muted) {
    this.micEl.hidden = !muted;
  }

  setVideoMuted(muted) {
    this.videoMuted = muted;
    this.el.classList.toggle('video-muted', muted);
    this.refresh();
  }

  /** Video when there is a track and it is not muted, else the initial. */
  refresh() {
    const show = Boolean(this.videoTrack) && !this.videoMuted;
    this.video.hidden = !show;
    this.placeholder.hidden = show;
    // Picture-in-picture needs a video to show.
    this.pipEl.hidden = !show || !document.pictureInPictureEnabled;
  }

  setQuality(q) {
    this.qualityEl.textContent = q ? QUALITY_TEXT[q] || '' : '';
    this.qualityEl.title = q ? t('Connection: {q}', { q: t(q) }) : '';
    this.qualityEl.dataset.quality = q || '';
  }

  setSpeaking(on) {
    this.el.classList.toggle('speaking', on);
  }
}

/**
 * The tiles, keyed by participant id (`id:screen` for screens). Layouts:
 * `grid` (all equal), `speaker` (the active speaker large, everyone else,
 * screens included, in a filmstrip) or `presentation` (a screen share, own
 * included, large with a filmstrip of the cameras; else as `speaker`). A tile pinned by the user is
 * large in any layout until unpinned. Pages: at most `pageSize` tiles show
 * at once (the large tile always shows, whichever page it is on). `onLayout`
 * runs after each change (the app asks for simulcast layers and pauses the
 * video of hidden tiles).
 */
export class Grid {
  constructor() {
    this.el = $('grid');
    this.tiles = new Map();
    this.mode = 'grid';
    this.pinned = null;
    this.loudest = null;
    this.focus = null;
    this.onLayout = null;
    /** `(key) => …`: the user asked for a tile full screen / in picture-in-picture. */
    this.onFullscreen = null;
    this.onPip = null;
    this.pageSize = Infinity;
    this.page = 0;
    /** Keys of the tiles shown now. */
    this.visible = new Set();
  }

  /** How many pages the tiles fill. */
  pages() {
    return Math.max(1, Math.ceil(this.tiles.size / this.pageSize));
  }

  /** Shows page `n` (clamped). */
  setPage(n) {
    this.page = Math.min(Math.max(0, n), this.pages() - 1);
    this.layout();
  }

  setPageSize(n) {
    this.pageSize = n > 0 ? n : Infinity;
    this.setPage(this.page);
  }

  tile(key, opts) {
    let t = this.tiles.get(key);
    if (!t) {
      t = new Tile(key, opts);
      t.onPin = () => this.pin(key);
      t.onFullscreen = () => this.onFullscreen && this.onFullscreen(key);
      t.onPip = () => this.onPip && this.onPip(key);
      this.tiles.set(key, t);
      this.el.append(t.el);
      this.layout();
    }
    return t;
  }

  get(key) {
    return this.tiles.get(key);
  }

  remove(key) {
    const t = this.tiles.get(key);
    if (!t) return;
    t.setVideo(null);
    t.setAudio(null);
    t.el.remove();
    this.tiles.delete(key);
    if (this.pinned === key) this.pinned = null;
    this.layout();
  }

  clear() {
    for (const key of [...this.tiles.keys()]) this.remove(key);
  }

  setSpeakers(ids) {
    const loudest = ids[0];
    for (const [key, t] of this.tiles) t.setSpeaking(key === loudest);
    if (loudest && loudest !== this.loudest) {
      this.loudest = loudest;
      if (this.mode !== 'grid') this.layout();
    }
  }

  /** Pins `key` for this user (or unpins it when it is pinned). */
  pin(key) {
    this.pinned = this.pinned === key ? null : key;
    this.layout();
  }

  setMode(mode) {
    this.mode = ['speaker', 'presentation'].includes(mode) ? mode : 'grid';
    this.layout();
  }

  /** The large tile: pinned, else (presentation layout) a screen share,
   * remote first, else (speaker and presentation) the loudest speaker or
   * the first remote camera; null in the grid layout. */
  focusKey() {
    if (this.pinned && this.tiles.has(this.pinned)) return this.pinned;
    if (this.mode === 'grid' || this.tiles.size < 2) return null;
    const all = [...this.tiles];
    const isScreen = ([, t]) => t.el.classList.contains('screen');
    const remote = all.filter(([, t]) => !t.el.classList.contains('local'));
    if (this.mode === 'presentation') {
      const screen = remote.find(isScreen) || all.find(isScreen);
      if (screen) return screen[0];
    }
    if (this.loudest && this.tiles.has(this.loudest)) return this.loudest;
    const camera = remote.find((e) => !isScreen(e)) || remote[0];
    return camera ? camera[0] : null;
  }

  /** Columns so tiles stay as large as possible, or one large tile. */
  layout() {
    this.page = Math.min(this.page, this.pages() - 1);
    this.focus = this.focusKey();
    const keys = [...this.tiles.keys()];
    const start = this.page * this.pageSize;
    this.visible = new Set(keys.slice(start, start + this.pageSize));
    // The large tile (pinned, a screen, the active speaker) is always shown.
    if (this.focus) this.visible.add(this.focus);
    const n = Math.max(1, this.visible.size);
    this.el.classList.toggle('focused', Boolean(this.focus));
    this.el.dataset.mode = this.mode;
    for (const [key, t] of this.tiles) {
      t.el.hidden = !this.visible.has(key);
      t.el.classList.toggle('large', key === this.focus);
      t.pinEl.setAttribute('aria-pressed', key === this.pinned ? 'true' : 'false');
      t.el.classList.toggle('pinned', key === this.pinned);
    }
    if (this.focus) {
      this.el.style.setProperty('--strip', String(Math.min(Math.max(n - 1, 1), 6)));
    } else {
      const cols = Math.ceil(Math.sqrt(n));
      this.el.style.setProperty('--cols', String(cols));
      this.el.style.setProperty('--rows', String(Math.ceil(n / cols)));
    }
    if (this.onLayout) this.onLayout();
  }
}

export function showEnableAudio(onClickFn) {
  const b = $('enable-audio');
  b.hidden = false;
  b.onclick = () => {
    b.hidden = true;
    onClickFn();
  };
}
