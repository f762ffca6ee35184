// The room page: reads the room's public facts and the token, shows the join
// screen, joins over signaling, and ties the peer connection to the UI.
// Test hooks live on `window.convene` (see docs/browser-client.md).

import { Signaling, PROTOCOL_VERSION, moveTo, mediaVia, forgetMediaVia } from './signaling.js';
import { Peer } from './peer.js';
import * as media from './media.js';
import * as ui from './ui.js';
import { Breakouts } from './breakouts.js';
import { Collab } from './collab.js';
import { Captions } from './captions.js';
import { isDisplayView, enterDisplayView } from './display.js';
import { bindShortcuts } from './shortcuts.js';
import { setupInvite } from './people.js';
import { deviceMethods } from './devices.js';
import { viewMethods } from './view.js';
import { layoutMethods } from './layout.js';
import { pipMethods } from './pip.js';
import { effectMethods } from './effects.js';
import { controlMethods } from './controls.js';
import { t, chooseLanguage, setLanguage, translatePage } from './i18n.js';
import { hooksFor } from './hooks.js';
import * as password from './password.js';
import { e2eeFor, e2eeBeforeJoin } from './e2ee.js';

/** How long a dropped connection may be resumed (docs/signaling.md). */
const RESUME_WINDOW_MS = 20000;

/** Human titles and messages for refused joins and fatal errors. */
const ERRORS = {
  TOKEN_REQUIRED: ['This room is private', 'You need an invitation link (with a token) to join this room.'],
  TOKEN_INVALID: ['Invalid invitation', 'This invitation link is not valid for this room.'],
  TOKEN_EXPIRED: ['Invitation expired', 'This invitation link has expired. Ask for a new one.'],
  TOKEN_NOT_YET_VALID: ['Invitation not valid yet', 'This invitation link is not valid yet. Try again later.'],
  ROOM_NOT_FOUND: ['Room not found', 'This room does not exist (any more).'],
  ROOM_FULL: ['The room is full', 'The room has reached its maximum number of participants. Try again later.'],
  REJECTED: ['Not admitted', 'A moderator declined your request to join.'],
  REMOVED: ['Removed from the meeting', 'A moderator removed you from this meeting.'],
  SESSION_ENDED: ['The meeting has ended', 'This meeting is over.'],
  SERVER_SHUTDOWN: ['The server is restarting', 'The server is shutting down. Try again in a moment.'],
  TIMEOUT: ['Connection timed out', 'The server did not hear from this browser for too long.'],
  PROTOCOL_VERSION: ['Please reload', 'This page is out of date. Reload it to join.'],
  BAD_MESSAGE: ['Something went wrong', 'The server did not understand this browser.'],
  CONNECTION_LOST: ['Connection lost', 'The server could not be reached. Check your network and try again.'],
  NO_WEBRTC: ['Browser not supported', 'This browser cannot make video calls (no WebRTC).'],
  GUEST_LINK_INVALID: ['Invalid guest link', 'This guest link is not valid for this room.'],
  GUEST_LINK_EXPIRED: ['Guest link expired', 'This guest link has expired. Ask for a new one.'],
  GUEST_LINK_USED_UP: ['Guest link used up', 'This guest link cannot be used any more. Ask for a new one.'],
  GUEST_LINK_RATE_LIMITED: ['Too many attempts', 'Too many invalid links for this room. Try again later.'],
};
const RETRYABLE = new Set(['CONNECTION_LOST', 'SERVER_SHUTDOWN', 'TIMEOUT', 'ROOM_FULL', 'SESSION_ENDED']);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The room's public facts injected by the server (`#convene-room`). */
function readRoomFacts() {
  const el = document.getElementById('convene-room');
  if (!el) return {};
  try {
    return JSON.parse(el.textContent) || {};
  } catch {
    return {};
  }
}

/** `/x` or `/rooms/x` -> `x`. */
function roomKeyFromPath(pathname) {
  const path = pathname.replace(/\/+$/, '');
  const m = /^\/rooms\/([^/]+)$/.exec(path) || /^\/([^/]+)$/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}

/** The display name a token carries (`u`), without verifying it. */
function tokenName(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    const u = JSON.parse(json).u;
    return typeof u === 'string' && u.trim() ? u : null;
  } catch {
    return null;
  }
}

class App {
  constructor() {
    const params = new URLSearchParams(location.search);
    this.room = readRoomFacts();
    this.roomKey = roomKeyFromPath(location.pathname) || this.room.friendly_url || null;
    this.token = params.get('token') || null;
    /** `?guest=`: a guest link's secret; the join asks only for a name. */
    this.guest = this.token ? null : params.get('guest') || null;
    /** `?ice=relay`: media only through TURN (a test of the relay path). */
    this.relayOnly = params.get('ice') === 'relay';
    this.tokenName = this.token ? tokenName(this.token) : null;
    this.name = this.tokenName;

    this.state = 'idle';
    this.error = null;
    this.participantId = null;
    this.me = null;
    this.permissions = {};
    this.resumeToken = null;
    this.sessionId = null;
    /** id -> {id, name, role, tracks: [{id, kind, source, muted}], quality} */
    this.participants = new Map();
    /** id -> {id, name} */
    this.lobbyRequests = new Map();
    this.remote = [];
    this.speakers = [];
    this.lastRefusal = null;
    /** The last signaling messages, `in:type` / `out:type` (for debugging). */
    this.trace = [];
    /** How many times a dropped connection was resumed. */
    this.resumes = 0;

    this.sig = null;
    this.peer = null;
    this.fatal = false;
    this.reconnecting = false;
    /** Local capture: the tracks we have open, by source. */
    this.local = { microphone: null, camera: null, screen: null };
    /** Whether the user wants each source on. */
    this.want = {
      microphone: this.room.audio_on_join_enabled === true,
      camera: this.room.video_on_join_enabled !== false,
    };
    if (isDisplayView()) enterDisplayView(this);
    this.deviceIds = { camera: null, microphone: null };
    this.grid = null;
    this.collab = null;
    /** Notices shown to the user, oldest first: `{text, at}` (test hook). */
    this.notices = [];
    this.e2ee = e2eeFor(this); // end-to-end encrypted media (docs/e2ee.md)
  }

  /** Shows a transient notice and remembers it. */
  notify(text) {
    this.notices.push({ text, at: new Date().toISOString() });
    if (this.notices.length > 50) this.notices.shift();
    ui.notice(text);
  }

  setState(state) {
    this.state = state;
    document.body.dataset.state = state;
    const text = { joining: 'Joining…', lobby: 'In the lobby', joined: 'Connected', reconnecting: 'Reconnecting…' };
    ui.setStatus(text[state] ? t(text[state]) : '');
  }

  // ---- start -----------------------------------------------------------------

  async start() {
    setLanguage(chooseLanguage(this.room, navigator.languages || [navigator.language]));
    translatePage();
    this.grid = new ui.Grid();
    this.grid.onLayout = () => {
      this.requestLayers();
      this.afterLayout();
    };
    this.breakouts = new Breakouts({
      send: (msg) => this.send(msg),
      people: () => [...this.participants.values()],
      notify: (text) => this.notify(text),
      // Moved: resume, which puts our media in the new breakout's room.
      onMoved: () => {
        if (this.state === 'joined') this.sig.abandon('moved to another breakout room');
      },
    });
    this.collab = new Collab({
      send: (msg) => this.send(msg),
      notify: (text) => this.notify(text),
      onHands: () => this.renderTiles(),
      onReaction: (pid, emoji) => {
        const tile = this.grid.get(pid);
        if (tile) tile.react(emoji);
      },
    });
    this.captions = new Captions();
    ui.setRoomTitle(this.room);
    this.bindControls();
    setupInvite();
    if (typeof RTCPeerConnection === 'undefined') return this.fail('NO_WEBRTC');
    if (this.room.is_private && !this.token && !this.guest) return this.fail('TOKEN_REQUIRED');
    if (this.display && this.token) return this.join(this.tokenName || t('Room display'));
    if (this.token && this.tokenName && this.room.join_screen_enabled === false) {
      await this.openWanted();
      return this.join(this.tokenName);
    }
    return this.showJoinScreen();
  }

  bindControls() {
    ui.onClick('preview-mic', () => this.togglePreview('microphone'));
    ui.onClick('preview-cam', () => this.togglePreview('camera'));
    ui.onClick('ctl-mic', () => this.toggleMicrophone());
    ui.onClick('ctl-cam', () => this.toggleCamera());
    ui.onClick('ctl-screen', () => this.toggleScreen());
    ui.onClick('ctl-leave', () => this.leave());
    ui.onClick('lobby-cancel', () => this.leave());
    ui.onClick('rejoin', () => location.reload());
    ui.onClick('ctl-settings', () => this.openSettings());
    this.bindLayout();
    this.bindPip();
    this.bindEffects();
    const mirror = document.getElementById('set-mirror');
    try {
      this.mirror = localStorage.getItem('convene.mirror') !== 'off';
    } catch {
      this.mirror = true;
    }
    mirror.checked = this.mirror;
    mirror.addEventListener('change', () => {
      this.mirror = mirror.checked;
      try {
        localStorage.setItem('convene.mirror', this.mirror ? 'on' : 'off');
      } catch {
        /* private mode */
      }
      this.renderTiles();
    });
    if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      navigator.mediaDevices.addEventListener('devicechange', () => this.onDeviceChange());
    }
    bindShortcuts({
      active: () => this.state === 'joined',
      onUsed: (s) => this.note(`key:${s.key}`),
    });
  }

  async showJoinScreen() {
    ui.showScreen('join');
    let saved = null;
    try {
      saved = localStorage.getItem('convene.name');
    } catch {
      saved = null;
    }
    ui.joinForm({
      needName: !this.tokenName,
      name: saved,
      onSubmit: (name) => this.join(name),
    });
    password.setupPassword(this.room, this.token || this.guest);
    if (!media.canCapture()) ui.setJoinHint(t('Camera and microphone need a secure (https) page.'));
    await this.openWanted();
    this.renderPreview();
    await this.refreshDevices();
  }

  /** Opens the sources the user wants on; a failure turns that source off. */
  async openWanted() {
    if (!media.canCapture()) {
      this.want.camera = false;
      this.want.microphone = false;
      return;
    }
    for (const source of ['camera', 'microphone']) {
      if (this.want[source] && !this.local[source]) {
        try {
          this.local[source] = await this.openSource(source);
        } catch (e) {
          this.want[source] = false;
          ui.setJoinHint(media.captureErrorText(e, source));
        }
      }
    }
  }

  async openSource(source) {
    const track = await (source === 'camera'
      ? media.openCamera(this.deviceIds.camera)
      : media.openMicrophone(this.deviceIds.microphone, this.effects.noise));
    if (track) this.watchEnded(source, track);
    return track;
  }

  stopSource(source) {
    if (source === 'camera') this.stopBlur();
    if (this.local[source]) this.local[source].stop();
    this.local[source] = null;
  }

  async togglePreview(source) {
    this.want[source] = !this.want[source];
    if (this.want[source]) await this.openWanted();
    else this.stopSource(source);
    this.renderPreview();
  }

  renderPreview() {
    ui.setPreview(this.want.camera ? this.local.camera : null);
    ui.setToggle('preview-cam', this.want.camera);
    ui.setToggle('preview-mic', this.want.microphone);
  }

  async refreshDevices() {
    const d = await media.listDevices().catch(() => ({ cameras: [], microphones: [] }));
    const current = (source) => {
      const t = this.local[source];
      return (t && t.getSettings && t.getSettings().deviceId) || this.deviceIds[source];
    };
    ui.fillDevices('select-camera', d.cameras, current('camera'), (id) => this.selectDevice('camera', id));
    ui.fillDevices('select-mic', d.microphones, current('microphone'), (id) => this.selectDevice('microphone', id));
  }

  // ---- joining -----------------------------------------------------------------

  /** Joins with `name` (default: the name typed in; ignored when the token carries one). */
  async join(name) {
    if (this.state === 'joining' || this.state === 'joined' || this.state === 'lobby') return;
    const typed = typeof name === 'string' ? name : ui.typedName();
    const chosen = this.tokenName || typed.trim();
    if (!chosen) {
      ui.setJoinHint(t('Please enter your name.'));
      return;
    }
    if (!(await e2eeBeforeJoin(this, ui.setJoinHint))) return;
    this.name = chosen;
    if (!this.tokenName) {
      try {
        localStorage.setItem('convene.name', chosen);
      } catch {
        /* private mode */
      }
    }
    this.error = null;
    this.fatal = false;
    this.setState('joining');
    ui.setJoinBusy(true);
    try {
      await this.connect(null);
    } catch {
      this.fail('CONNECTION_LOST');
    }
  }

  async connect(resume) {
    this.resumeSent = resume;
    const sig = new Signaling({
      onMessage: (m) => this.onMessage(sig, m),
      onClose: (_ev, byUs) => this.onSocketClose(sig, byUs),
    });
    this.sig = sig;
    // One peer connection per signaling connection, ready before `join`:
    // the server may offer its tracks as soon as it has admitted us.
    this.newPeer();
    await sig.open();
    const join = {
      type: 'join',
      v: PROTOCOL_VERSION,
      token: this.token,
      name: this.name,
      resume,
      client: { kind: 'browser', user_agent: navigator.userAgent },
    };
    if (this.guest) join.guest = this.guest;
    else if (!this.token) join.password = password.typedPassword();
    if (this.roomKey) join.room = this.roomKey;
    if (mediaVia()) join.via = mediaVia();
    this.note('out:join');
    sig.send(join);
  }

  newPeer() {
    if (this.peer) this.peer.close();
    this.remote = [];
    this.layers = new Map();
    this.peer = new Peer({
      send: (msg) => this.send(msg),
      onRemote: (remote) => {
        this.remote = remote;
        this.renderTiles();
      },
      onRefused: (sources, msg) => this.onRefused(sources, msg),
      onNote: (entry) => this.note(entry),
      // A media path that failed even after an ICE restart is rebuilt like
      // a lost socket: resume with a fresh peer connection, on the room's
      // own node (whose TURN server the page was given).
      onFailed: () => {
        forgetMediaVia();
        if (this.state === 'joined') this.sig.abandon('media connection failed');
      },
      e2ee: this.e2ee,
    });
  }

  send(msg) {
    this.note(`out:${msg.type}`);
    return this.sig ? this.sig.send(msg) : false;
  }

  note(entry) {
    this.trace.push(entry);
    if (this.trace.length > 200) this.trace.shift();
  }

  onMessage(sig, m) {
    if (sig !== this.sig) return;
    this.note(m.type === 'error' ? `in:error:${m.code}` : `in:${m.type}`);
    if (this.e2ee && this.e2ee.onSignal(m)) return;
    switch (m.type) {
      case 'joined':
        return this.onJoined(m);
      case 'moved': // the room runs on another node of the cluster
        if (!moveTo(m.url, m.via)) return this.fail('ROOM_ON_OTHER_NODE');
        sig.close();
        return this.connect(this.resumeSent).catch(() => this.state !== 'reconnecting' && this.fail('CONNECTION_LOST'));
      case 'lobby':
        this.setState('lobby');
        if (m.message) document.getElementById('lobby-message').textContent = m.message;
        return ui.showScreen('lobby');
      case 'error':
        if (m.fatal && password.PASSWORD_CODES.has(m.code) && this.state === 'joining') return this.passwordRefused(m);
        if (m.code === 'CLUSTER_UNAVAILABLE' && this.state === 'reconnecting') return; // the reconnect loop tries again
        if (m.fatal) {
          this.fatal = true;
          return this.fail(m.code, m.message);
        }
        // The server closed our silent media connection: rebuild it.
        if (m.code === 'MEDIA_LOST' && this.state === 'joined') return this.sig.abandon('media connection lost');
        return this.notify(m.message || m.code);
      case 'offer':
        return this.peer && this.peer.handleOffer(m.sdp, m.tracks);
      case 'answer':
        return this.peer && this.peer.handleAnswer(m.sdp);
      case 'offer_rejected':
        this.lastRefusal = { code: m.code, message: m.message };
        return this.peer && this.peer.handleRefused(m);
      case 'participant_joined':
        this.upsertParticipant(m.participant);
        this.breakouts.renderPanel();
        return this.renderTiles();
      case 'participant_left':
        this.participants.delete(m.participant_id);
        this.breakouts.renderPanel();
        return this.renderTiles();
      case 'track_published':
        return this.onTrackPublished(m);
      case 'track_unpublished':
        return this.onTrackUnpublished(m);
      case 'track_muted':
        return this.onTrackMuted(m);
      case 'muted_by_moderator':
        return this.onMutedByModerator(m);
      case 'role_changed':
        return this.onRoleChanged(m);
      case 'active_speakers':
        this.speakers = m.speakers || [];
        return this.grid.setSpeakers(this.speakers);
      case 'connection_quality':
        return this.onQuality(m);
      case 'lobby_request':
        this.lobbyRequests.set(m.participant.id, { id: m.participant.id, name: m.participant.name });
        return this.renderLobby();
      case 'lobby_resolved':
        this.lobbyRequests.delete(m.participant_id);
        return this.renderLobby();
      case 'ping':
        return this.send({ type: 'pong' });
      case 'layout':
        return this.applyRoomLayout(m.mode, m.by);
      case 'caption':
        return this.captions.add(m);
      default:
        return this.breakouts.handle(m) || this.collab.handle(m);
    }
  }

  onJoined(m) {
    this.participantId = m.participant.id;
    this.me = m.participant;
    this.permissions = m.permissions || {};
    this.resumeToken = m.resume_token;
    this.sessionId = m.session_id;
    if (m.room && m.room.settings) this.roomSettings = m.room.settings;
    if (this.peer) this.peer.setIceServers(m.ice_servers, this.relayOnly);
    this.participants = new Map();
    for (const p of m.participants || []) this.upsertParticipant(p);
    if (!m.resumed) this.lobbyRequests.clear();
    if (this.state === 'reconnecting') this.resumes += 1;
    this.reconnecting = false;
    ui.setReconnecting(false);
    ui.setJoinBusy(false);
    this.setState('joined');
    ui.showScreen('call');
    this.collab.onJoined(m);
    this.breakouts.onJoined(m);
    this.layoutJoined(this.roomSettings);
    this.pipJoined(this.roomSettings);
    this.captions.configure(this.roomSettings);
    this.renderTiles();
    this.renderLobby();
    this.publishLocal();
  }

  /** A moderator changed a role; ours comes with our new permissions. */
  onRoleChanged(m) {
    const p = this.participants.get(m.participant_id);
    if (p) p.role = m.role;
    if (m.participant_id === this.participantId && m.permissions) {
      this.me.role = m.role;
      this.permissions = m.permissions;
      this.collab.permissions = m.permissions;
      this.collab.slides.configure(m.permissions);
      this.publishLocal();
    }
    return this.renderTiles();
  }

  /** Publishes what the user wants on, as far as the role allows. */
  async publishLocal() {
    const peer = this.peer;
    const mayBroadcast = this.permissions.broadcast !== false;
    if (!mayBroadcast && (this.want.camera || this.want.microphone)) {
      this.notify(t('You can watch and listen in this room, but not broadcast.'));
      this.want.camera = false;
      this.want.microphone = false;
      this.stopSource('camera');
      this.stopSource('microphone');
    }
    await this.openWanted();
    if (peer !== this.peer) return;
    const pairs = [];
    for (const source of ['microphone', 'camera']) {
      if (this.want[source] && this.local[source]) {
        this.local[source].enabled = true;
        pairs.push([source, this.sendable(source)]);
      }
    }
    if (this.local.screen) pairs.push(['screen', this.local.screen]);
    if (pairs.length) peer.publishAll(pairs);
    this.renderControls();
    this.renderTiles();
  }

  // ---- leaving, errors, reconnecting ------------------------------------------------

  stopAll() {
    for (const s of ['microphone', 'camera', 'screen']) this.stopSource(s);
    if (this.peer) this.peer.close();
    this.peer = null;
    this.remote = [];
    if (this.grid) this.grid.clear();
  }

  leave() {
    if (this.state === 'left') return;
    this.send({ type: 'leave' });
    if (this.sig) this.sig.close();
    this.stopAll();
    this.setState('left');
    ui.setReconnecting(false);
    ui.showScreen('left');
  }

  /** A refused room password: back to the join screen to try again. */
  passwordRefused(m) {
    this.fatal = true;
    this.error = { code: m.code, message: m.message, detail: m.message };
    if (this.sig) this.sig.close();
    this.sig = null;
    if (this.peer) this.peer.close();
    this.peer = null;
    this.setState('idle');
    ui.setJoinBusy(false);
    ui.setJoinHint(password.refusalText(m));
    password.retryPassword();
  }

  fail(code, serverMessage) {
    let [title, message] = (ERRORS[code] || ['Cannot continue', serverMessage || 'Something went wrong.']).map((s) => t(s));
    // A refused guest link: the server's message says exactly why.
    if (code.startsWith('GUEST_LINK_') && serverMessage) message = serverMessage;
    this.error = { code, message, detail: serverMessage || null };
    if (this.sig) this.sig.close();
    this.stopAll();
    this.reconnecting = false;
    ui.setReconnecting(false);
    this.setState('error');
    ui.showError(title, message, code, RETRYABLE.has(code) ? () => location.reload() : null);
  }

  onSocketClose(sig, byUs) {
    if (sig !== this.sig || byUs || this.fatal) return;
    if (this.state === 'joined' || this.state === 'reconnecting') this.reconnect();
    else if (this.state === 'joining' || this.state === 'lobby') this.fail('CONNECTION_LOST');
  }

  /** Comes back as the same participant within the resume window. */
  async reconnect() {
    if (this.reconnecting) return;
    this.reconnecting = true;
    const deadline = Date.now() + RESUME_WINDOW_MS;
    this.setState('reconnecting');
    ui.setReconnecting(true);
    if (this.peer) this.peer.close();
    this.peer = null;
    this.remote = [];
    this.renderTiles();
    while (this.state === 'reconnecting' && Date.now() < deadline) {
      try {
        await this.connect(this.resumeToken);
        const sig = this.sig;
        const until = Math.min(deadline, Date.now() + 5000);
        while (this.state === 'reconnecting' && sig.isOpen && Date.now() < until) await sleep(100);
        if (this.state !== 'reconnecting') break;
        sig.close();
      } catch {
        /* server not reachable yet */
      }
      await sleep(1000);
    }
    this.reconnecting = false;
    if (this.state === 'reconnecting') this.fail('CONNECTION_LOST');
  }

  // ---- remote state ----------------------------------------------------------------

  upsertParticipant(p) {
    const old = this.participants.get(p.id);
    this.participants.set(p.id, {
      id: p.id,
      name: p.name,
      role: p.role,
      tracks: p.tracks || (old ? old.tracks : []),
      quality: old ? old.quality : null,
    });
  }

  onTrackPublished(m) {
    const p = this.participants.get(m.participant_id);
    if (!p) return;
    p.tracks = p.tracks.filter((t) => t.id !== m.track.id).concat([m.track]);
    this.renderTiles();
  }

  onTrackUnpublished(m) {
    const p = this.participants.get(m.participant_id);
    if (!p) return;
    p.tracks = p.tracks.filter((t) => t.id !== m.track_id);
    this.renderTiles();
  }

  onTrackMuted(m) {
    const p = this.participants.get(m.participant_id);
    if (p) {
      for (const t of p.tracks) if (t.id === m.track_id) t.muted = m.muted;
    }
    this.renderTiles();
  }

  onQuality(m) {
    const p = this.participants.get(m.participant_id);
    if (p) p.quality = m.quality;
    if (m.participant_id === this.participantId) this.myQuality = m.quality;
    this.renderTiles();
  }

  audioBlocked() {
    ui.showEnableAudio(() => {
      for (const t of this.grid.tiles.values()) if (t.audioTrack) t.audio.play().catch(() => {});
    });
  }

  renderLobby() {
    ui.renderLobby([...this.lobbyRequests.values()], {
      onAdmit: (id) => this.admit(id),
      onReject: (id) => this.reject(id),
    });
  }

  muteParticipant(id, source = null) {
    this.send({ type: 'mute_participant', participant_id: id, source });
  }

  removeParticipant(id) {
    this.send({ type: 'remove_participant', participant_id: id });
  }

  admit(id) {
    this.send({ type: 'admit', participant_id: id });
  }

  reject(id) {
    this.send({ type: 'reject', participant_id: id });
  }

  async stats() {
    const empty = { framesDecoded: 0, totalSamplesReceived: 0 };
    return this.peer ? this.peer.stats() : empty;
  }
}

// Devices during the call and the rendering live in their own modules.
Object.assign(App.prototype, deviceMethods, viewMethods, layoutMethods, pipMethods, effectMethods, controlMethods);

const app = new App();

/** Test and automation hooks (docs/browser-client.md). */
window.convene = hooksFor(app);

app.start().catch((e) => {
  console.error('convene: start failed', e);
  app.fail('CONNECTION_LOST', String(e));
});
