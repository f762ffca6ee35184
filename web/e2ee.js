// End-to-end encrypted media (docs/e2ee.md): the media key from the room's
// passphrase, the ECDH key exchange over signaling that rotates the key
// when someone leaves, and the encoded transforms (in `e2ee_worker.js`)
// that encrypt every frame before it leaves the browser.

import { t } from './i18n.js';

const enc = new TextEncoder();
/** PBKDF2 rounds for the passphrase (SHA-256). */
const PBKDF2_ROUNDS = 200000;
/** A replaced key is kept this long for frames still in flight. */
const OLD_KEY_GRACE_MS = 5000;
/** The leader switches its own sending key this long after handing out a new one. */
const SWITCH_DELAY_MS = 300;

const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const unb64 = (s) => Uint8Array.from(atob(String(s)), (c) => c.charCodeAt(0));

/** Whether this browser can transform encoded frames at all. */
export function e2eeSupport() {
  if (typeof RTCRtpScriptTransform === 'function') return 'script';
  if (typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype) return 'streams';
  return null;
}

/** The `#e2ee=<passphrase>` of the page address (never sent to the server). */
function fragmentPassphrase() {
  const m = /(?:^#|&)e2ee=([^&]*)/.exec(location.hash);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]) || null;
  } catch {
    return null;
  }
}

/** The page's E2EE in a room with `e2ee_enabled` (else null); shows the join screen's passphrase field if needed. */
export function e2eeFor(app) {
  if (app.room.e2ee_enabled !== true) return null;
  const e2ee = new E2ee({ roomId: app.room.id, onChange: () => e2ee.render(), send: (msg) => app.send(msg) });
  const row = document.getElementById('e2ee-row');
  if (row) row.hidden = Boolean(e2ee.passphrase);
  e2ee.render();
  return e2ee;
}

/** The passphrase typed on the join screen, if its field is shown. */
export function typedPassphrase() {
  const row = document.getElementById('e2ee-row');
  return row && !row.hidden ? document.getElementById('e2ee-input').value || null : null;
}

/**
 * Before `app` joins an E2EE room: the keys from the typed passphrase or
 * the page's `#e2ee=`. False (with a hint) when the join screen is shown
 * and there is none, or when another join started meanwhile; an automatic
 * join goes on without a key (it sends no media and shows every tile as
 * "cannot decrypt").
 */
export async function e2eeBeforeJoin(app, hint) {
  const e2ee = app.e2ee;
  if (!e2ee) return true;
  const keyed = await e2ee.ready(typedPassphrase());
  if (app.state === 'joining' || app.state === 'joined' || app.state === 'lobby') return false;
  if (keyed || document.getElementById('screen-join').hidden) return true;
  hint(t('This room is end-to-end encrypted: enter its passphrase.'));
  return false;
}

export class E2ee {
  /**
   * @param {object} o
   * @param {string} o.roomId  the room's id: the per-room salt of the passphrase
   * @param {() => void} o.onChange  the state shown to the user changed
   * @param {(msg: object) => void} o.send  sends a signaling message
   */
  constructor({ roomId, onChange, send }) {
    this.roomId = roomId;
    this.onChange = onChange;
    this.sendSignal = send;
    this.support = e2eeSupport();
    /** The browser must create its peer connection with `encodedInsertableStreams`. */
    this.insertableStreams = this.support === 'streams';
    this.worker = this.support ? new Worker('/static/e2ee_worker.js') : null;
    if (this.worker) this.worker.onmessage = (ev) => this.onWorker(ev.data);
    this.passphrase = fragmentPassphrase();
    this.derived = null;
    this.macKey = null;
    /** index -> CryptoKey (AES-GCM) */
    this.keys = new Map();
    this.sendIndex = null;
    this.rotations = 0;
    this.me = null;
    /** participant id -> {wrapKey} of peers whose public key verified under the passphrase. */
    this.peers = new Map();
    this.ecdh = null;
    /** transform id -> receiver; receiver -> participant id */
    this.receivers = new Map();
    this.receiverOwner = new WeakMap();
    this.protected = new WeakSet();
    this.nextId = 1;
    /** transform id -> 'ok' | 'fail' */
    this.status = new Map();
  }

  get hasKey() {
    return this.sendIndex !== null;
  }

  /** Derives the keys from `passphrase` (or the page's `#e2ee=`); whether there is one. */
  async ready(passphrase) {
    const pass = passphrase || this.passphrase;
    if (!pass) return false;
    if (this.derived && this.derived.pass === pass) return this.derived.done;
    const done = (async () => {
      const base = await crypto.subtle.importKey('raw', enc.encode(pass), 'PBKDF2', false, ['deriveBits']);
      const salt = enc.encode(`convene-e2ee/${this.roomId}`);
      const bits = new Uint8Array(
        await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: PBKDF2_ROUNDS }, base, 512),
      );
      const media = await crypto.subtle.importKey('raw', bits.slice(0, 32), 'AES-GCM', false, ['encrypt', 'decrypt']);
      this.macKey = await crypto.subtle.importKey('raw', bits.slice(32), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
      this.passphrase = pass;
      this.keys = new Map([[0, media]]);
      this.sendIndex = 0;
      this.pushKeys();
      // A key given after joining (`window.convene.setE2eeKey`): announce now.
      if (this.me) await this.joined(this.me);
      return true;
    })();
    this.derived = { pass, done };
    return done;
  }

  pushKeys() {
    if (this.worker) this.worker.postMessage({ type: 'keys', keys: [...this.keys], sendIndex: this.sendIndex });
    this.onChange();
  }

  // ---- transforms ----------------------------------------------------------

  /** Encrypts what `transceiver` sends; video is limited to VP8 (docs/e2ee.md). */
  protectSender(transceiver, kind) {
    const sender = transceiver.sender;
    if (!this.worker || this.protected.has(sender)) return;
    this.protected.add(sender);
    if (kind === 'video' && typeof transceiver.setCodecPreferences === 'function' && RTCRtpSender.getCapabilities) {
      const codecs = RTCRtpSender.getCapabilities('video').codecs.filter((c) => /^video\/(VP8|rtx)$/i.test(c.mimeType));
      try {
        transceiver.setCodecPreferences(codecs);
      } catch (e) {
        console.warn('convene: could not limit video to VP8', e);
      }
    }
    this.transform(sender, { side: 'send', kind, id: 0 });
  }

  /** Decrypts what `receiver` gets (`info`: the remote track it carries now, if known). */
  protectReceiver(receiver, info) {
    if (!this.worker) return;
    if (info) this.receiverOwner.set(receiver, info.participant_id);
    if (this.protected.has(receiver)) return;
    this.protected.add(receiver);
    const id = this.nextId++;
    this.receivers.set(id, receiver);
    this.transform(receiver, { side: 'receive', kind: receiver.track.kind, id });
  }

  transform(target, options) {
    if (this.support === 'script') {
      target.transform = new RTCRtpScriptTransform(this.worker, options);
    } else {
      const { readable, writable } = target.createEncodedStreams();
      this.worker.postMessage({ type: 'stream', readable, writable, ...options }, [readable, writable]);
    }
  }

  onWorker(m) {
    if (m.type === 'counts') this.counts = m.counts;
    if (m.type !== 'status') return;
    this.status.set(m.id, m.state);
    this.onChange();
  }

  /** Participant ids whose media this page receives but cannot decrypt. */
  failing() {
    const out = new Set();
    for (const [id, state] of this.status) {
      const owner = this.receiverOwner.get(this.receivers.get(id));
      if (state === 'fail' && owner) out.add(owner);
    }
    return [...out];
  }

  // ---- key exchange ----------------------------------------------------------

  /** The signaling messages E2EE follows; true for those it consumes (`e2ee`). */
  onSignal(m) {
    if (m.type === 'joined') this.joined(m.participant.id);
    else if (m.type === 'participant_left') this.participantLeft(m.participant_id);
    else if (m.type === 'e2ee') this.onMessage(m.from, m.payload);
    return m.type === 'e2ee';
  }

  send(msg) {
    this.sendSignal(msg);
  }

  /** Joined as `me`: announce our public key to everyone. */
  async joined(me) {
    this.me = me;
    if (!this.macKey) return;
    if (!this.ecdh) {
      this.ecdh = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
      this.ecdhRaw = b64(await crypto.subtle.exportKey('raw', this.ecdh.publicKey));
    }
    await this.announce(null);
  }

  async announce(to) {
    const mac = await crypto.subtle.sign('HMAC', this.macKey, enc.encode(`pub\n${this.me}\n${this.ecdhRaw}`));
    const msg = { type: 'e2ee', payload: { kind: 'pub', key: this.ecdhRaw, mac: b64(mac) } };
    if (to) msg.to = to;
    this.send(msg);
  }

  /** A relayed `e2ee` message of participant `from`. */
  async onMessage(from, payload) {
    if (!this.macKey || !payload || from === this.me) return;
    try {
      if (payload.kind === 'pub') await this.onPublicKey(from, payload);
      else if (payload.kind === 'key') await this.onMediaKey(from, payload);
    } catch (e) {
      // A forged or garbled message changes nothing.
      console.warn('convene: e2ee message ignored', e);
    }
  }

  async onPublicKey(from, p) {
    const ok = await crypto.subtle.verify('HMAC', this.macKey, unb64(p.mac), enc.encode(`pub\n${from}\n${p.key}`));
    if (!ok) return; // another passphrase, or a key the server made up
    const known = this.peers.has(from);
    const pub = await crypto.subtle.importKey('raw', unb64(p.key), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, this.ecdh.privateKey, 256);
    const hkdf = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
    const wrapKey = await crypto.subtle.deriveKey(
      { name: 'HKDF', hash: 'SHA-256', salt: enc.encode(`convene-e2ee/${this.roomId}`), info: enc.encode('convene-e2ee-wrap') },
      hkdf,
      { name: 'AES-GCM', length: 256 },
      false,
      ['encrypt', 'decrypt'],
    );
    this.peers.set(from, { wrapKey });
    this.onChange();
    if (!known) await this.announce(from);
    // A newcomer after a rotation gets the current key from the leader.
    if (!known && this.isLeader(from) && this.sendIndex && this.current) await this.wrapFor(from, this.sendIndex, this.current);
  }

  async onMediaKey(from, p) {
    const peer = this.peers.get(from);
    const index = Number(p.index);
    if (!peer || !Number.isInteger(index) || index < 1 || index > 255) return;
    const raw = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: unb64(p.iv), additionalData: enc.encode(`key\n${index}\n${this.me}`) },
      peer.wrapKey,
      unb64(p.wrapped),
    );
    this.install(index, new Uint8Array(raw), 0);
  }

  /** The lowest id of us and the peers we verified (but `except`) leads rotations. */
  isLeader(except) {
    return [...this.peers.keys()].every((id) => id === except || this.me < id);
  }

  /** `id` left: the leader makes a new key the leaver never sees. */
  async participantLeft(id) {
    const had = this.peers.delete(id);
    if (!had || !this.macKey || !this.isLeader()) return;
    const raw = crypto.getRandomValues(new Uint8Array(32));
    const index = ((this.sendIndex || 0) % 255) + 1;
    await Promise.all([...this.peers.keys()].map((pid) => this.wrapFor(pid, index, raw)));
    this.install(index, raw, SWITCH_DELAY_MS);
  }

  async wrapFor(pid, index, raw) {
    const peer = this.peers.get(pid);
    if (!peer) return;
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const wrapped = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: enc.encode(`key\n${index}\n${pid}`) },
      peer.wrapKey,
      raw,
    );
    this.send({ type: 'e2ee', to: pid, payload: { kind: 'key', index, iv: b64(iv), wrapped: b64(wrapped) } });
  }

  /** Uses media key `raw` as `index` (for sending after `delayMs`); older keys go after a grace. */
  async install(index, raw, delayMs) {
    const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    this.current = raw;
    this.keys.set(index, key);
    this.rotations += 1;
    const switchTo = () => {
      this.sendIndex = index;
      this.pushKeys();
      setTimeout(() => {
        for (const k of [...this.keys.keys()]) if (k !== this.sendIndex) this.keys.delete(k);
        this.pushKeys();
      }, OLD_KEY_GRACE_MS);
    };
    this.pushKeys();
    if (delayMs) setTimeout(switchTo, delayMs);
    else switchTo();
  }

  // ---- what the user sees ------------------------------------------------------

  /** The lock label and the "cannot decrypt" state of the tiles. */
  render() {
    const label = document.getElementById('e2ee-status');
    if (label) {
      label.hidden = false;
      label.textContent = this.hasKey ? `🔒 ${t('End-to-end encrypted')}` : `⚠ ${t('Encrypted room: no key')}`;
      label.classList.toggle('e2ee-nokey', !this.hasKey);
    }
    const failing = new Set(this.failing());
    for (const tile of document.querySelectorAll('#grid .tile')) {
      const bad = failing.has(tile.dataset.key);
      tile.classList.toggle('e2ee-failed', bad);
      let note = tile.querySelector('.e2ee-fail');
      if (bad && !note) {
        note = document.createElement('div');
        note.className = 'e2ee-fail';
        note.setAttribute('role', 'status');
        note.textContent = `🔒 ${t('Cannot decrypt: wrong or missing key')}`;
        tile.append(note);
      } else if (!bad && note) {
        note.remove();
      }
    }
  }

  /** A snapshot for `window.convene.e2ee`. */
  snapshot() {
    return {
      enabled: true,
      support: this.support,
      hasKey: this.hasKey,
      sendIndex: this.sendIndex,
      keyIndexes: [...this.keys.keys()].sort((a, b) => a - b),
      rotations: this.rotations,
      verifiedPeers: [...this.peers.keys()].sort(),
      failing: this.failing().sort(),
      frames: this.counts || null,
    };
  }
}
