// The one RTCPeerConnection of a participant (both directions) and its
// negotiation with the server: the client offers to publish, the server
// offers when remote tracks change, and the client is the polite peer.

/** Camera simulcast layers, lowest first (RIDs `q`, `h`, `f`). */
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4 },
  { rid: 'h', scaleResolutionDownBy: 2 },
  { rid: 'f' },
];

/**
 * The RTP header extensions the server reads or writes (str0m's set). A
 * transceiver offers only these: nothing else is used, and an extension the
 * server does not answer keeps the id the browser picked for it, which after
 * a rolled-back first offer can collide with the id the server's offer gave
 * another extension (Chromium numbers the dependency descriptor 13 in a
 * video-only offer; the server's offer gives 13 to video orientation).
 */
const HEADER_EXTENSIONS = new Set([
  'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'urn:ietf:params:rtp-hdrext:sdes:mid',
  'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
  'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
  'urn:3gpp:video-orientation',
]);

/** Offers only `HEADER_EXTENSIONS` on `transceiver` (where the browser lets us choose). */
function limitHeaderExtensions(transceiver) {
  if (typeof transceiver.setHeaderExtensionsToNegotiate !== 'function') return;
  try {
    const exts = transceiver.getHeaderExtensionsToNegotiate().map((e) => ({
      uri: e.uri,
      direction: HEADER_EXTENSIONS.has(e.uri) || e.direction === 'stopped' ? e.direction : 'stopped',
    }));
    transceiver.setHeaderExtensionsToNegotiate(exts);
  } catch (e) {
    // A mandatory extension cannot be stopped; keep the browser's choice.
    console.warn('convene: header extensions left as they are', e);
  }
}

/**
 * Removes `a=msid` (and `a=ssrc:... msid:`) lines from inactive m-sections of
 * a remote offer. They carry no media, and a server that reuses a track's
 * msid on a new m-line while the old one is still listed inactive (seen after
 * a publisher resumes) would otherwise get the whole offer refused by Chromium
 * ("Duplicate a=msid lines detected").
 */
export function dropInactiveMsids(sdp) {
  const sections = sdp.split(/\r\n(?=m=)/);
  return sections
    .map((section) => {
      if (!section.startsWith('m=') || !/\r\na=inactive(\r\n|$)/.test(section)) return section;
      return section
        .split('\r\n')
        .filter((line) => !line.startsWith('a=msid:') && !/^a=ssrc:\d+ msid:/.test(line))
        .join('\r\n');
    })
    .join('\r\n');
}

/** A media path "disconnected" this long gets an ICE restart. */
const ICE_RESTART_AFTER_MS = 2000;
/** A path that fails this soon after a restart is rebuilt from scratch. */
const ICE_RESTART_GRACE_MS = 15000;

export class Peer {
  /**
   * @param {object} o
   * @param {(msg: object) => void} o.send  sends a signaling message
   * @param {(remote: Array) => void} o.onRemote  the remote tracks now received
   * @param {(sources: string[], msg: object) => void} o.onRefused  sources the server refused
   * @param {(entry: string) => void} [o.onNote]  a line for the client's trace
   * @param {() => void} [o.onFailed]  the media path failed even after an ICE restart
   * @param {object} [o.e2ee]  the room's end-to-end encryption (`e2ee.js`), if on
   */
  constructor({ send, onRemote, onRefused, onNote = () => {}, onFailed = () => {}, e2ee = null }) {
    this.send = send;
    this.onRemote = onRemote;
    this.onRefused = onRefused;
    this.onNote = onNote;
    this.onFailed = onFailed;
    this.e2ee = e2ee;
    const config = { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
    if (e2ee && e2ee.insertableStreams) config.encodedInsertableStreams = true;
    this.pc = new RTCPeerConnection(config);
    /** mid -> {track_id, participant_id, kind, source}, from the latest server offer. */
    this.remote = new Map();
    /** source -> {transceiver, track, accepted} */
    this.local = new Map();
    this.queue = Promise.resolve();
    this.needOffer = false;
    this.closed = false;
    /** The last negotiation failure and the remote SDP that caused it (debugging). */
    this.lastError = null;
    this.lastRemoteOffer = null;
    this.pc.ontrack = () => this.reportRemote();
    this.watchIce();
  }

  /**
   * A network change (another Wi-Fi, a VPN coming up) first shows as
   * "disconnected": after a moment an ICE restart finds the new path on the
   * same connection. A path that fails even so soon after a restart is
   * reported (`onFailed`).
   */
  watchIce() {
    let restartedAt = 0;
    let waiting = null;
    const restart = () => {
      restartedAt = Date.now();
      this.onNote('ice:restart');
      this.restartIce();
    };
    this.pc.addEventListener('iceconnectionstatechange', () => {
      if (this.closed) return;
      const s = this.pc.iceConnectionState;
      if (s === 'disconnected' && !waiting) {
        waiting = setTimeout(() => {
          waiting = null;
          if (!this.closed && this.pc.iceConnectionState === 'disconnected') restart();
        }, ICE_RESTART_AFTER_MS);
      } else if (s === 'failed') {
        if (Date.now() - restartedAt > ICE_RESTART_GRACE_MS) {
          restart();
        } else {
          this.onNote('ice:failed');
          this.onFailed();
        }
      } else if (s === 'connected' || s === 'completed') {
        clearTimeout(waiting);
        waiting = null;
      }
    });
  }

  /** Runs negotiation steps one at a time, in order. */
  enqueue(step) {
    this.queue = this.queue.then(() => (this.closed ? undefined : step())).catch((e) => {
      console.error('convene: negotiation step failed', e);
      this.lastError = String(e);
    });
    return this.queue;
  }

  /** Starts (or resumes) sending `track` as `source`. */
  publish(source, track) {
    return this.publishAll([[source, track]]);
  }

  /** Starts sending several `[source, track]` pairs, in one offer. */
  publishAll(pairs) {
    return this.enqueue(async () => {
      for (const [source, track] of pairs) await this.attach(source, track);
      await this.maybeOffer();
    });
  }

  async attach(source, track) {
    const l = this.local.get(source);
    if (l) {
      await l.transceiver.sender.replaceTrack(track);
      l.track = track;
      if (l.transceiver.direction !== 'sendonly') {
        l.transceiver.direction = 'sendonly';
        l.accepted = false;
        this.needOffer = true;
      }
      return;
    }
    const init = { direction: 'sendonly', streams: [] };
    if (source === 'camera') init.sendEncodings = SIMULCAST;
    const transceiver = this.pc.addTransceiver(track, init);
    limitHeaderExtensions(transceiver);
    if (this.e2ee) this.e2ee.protectSender(transceiver, track.kind);
    this.local.set(source, { transceiver, track, accepted: false });
    this.needOffer = true;
  }

  /**
   * Sends `track` instead of the current track of `source` (another camera
   * or microphone) on the same sender: no renegotiation. A paused source
   * keeps sending nothing; the new track is used when it is resumed.
   */
  replaceSource(source, track) {
    return this.enqueue(async () => {
      const l = this.local.get(source);
      if (!l || !l.track) return;
      await l.transceiver.sender.replaceTrack(track);
      l.track = track;
    });
  }

  /** Stops sending `source` but keeps its m-line (camera off, microphone muted). */
  pause(source) {
    return this.enqueue(async () => {
      const l = this.local.get(source);
      if (!l) return;
      await l.transceiver.sender.replaceTrack(null);
      l.track = null;
    });
  }

  /** Stops publishing `source` (renegotiates: the server unpublishes the track). */
  unpublish(source) {
    return this.enqueue(async () => {
      const l = this.local.get(source);
      if (!l) return;
      await l.transceiver.sender.replaceTrack(null);
      l.track = null;
      if (l.transceiver.direction !== 'inactive') {
        l.transceiver.direction = 'inactive';
        this.needOffer = true;
      }
      await this.maybeOffer();
    });
  }

  /**
   * Restarts ICE (new credentials, fresh candidates) in one offer: after a
   * network change the media finds its new path without a new connection.
   */
  restartIce() {
    return this.enqueue(async () => {
      this.pc.restartIce();
      this.needOffer = true;
      await this.maybeOffer();
    });
  }

  /** Whether `source` was accepted by the server and is being sent. */
  isPublished(source) {
    const l = this.local.get(source);
    return Boolean(l && l.accepted && l.transceiver.direction === 'sendonly');
  }

  async maybeOffer() {
    if (!this.needOffer || this.pc.signalingState !== 'stable' || this.closed) return;
    this.needOffer = false;
    try {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
    } catch (e) {
      // The browser refused its own offer: what it would have added is
      // dropped (the user is told) instead of staying "on" and unsent.
      console.error('convene: local offer failed', e);
      this.lastError = String(e);
      if (this.pc.signalingState === 'have-local-offer') {
        await this.pc.setLocalDescription({ type: 'rollback' });
      }
      await this.dropUnaccepted({ code: 'NEGOTIATION_FAILED', message: `the browser could not offer it (${e && e.message ? e.message : e})` });
      return;
    }
    const tracks = [];
    for (const [source, l] of this.local) {
      const t = l.transceiver;
      if (t.mid !== null && t.direction === 'sendonly') tracks.push({ mid: t.mid, source });
    }
    this.send({ type: 'offer', sdp: this.pc.localDescription.sdp, tracks });
  }

  handleAnswer(sdp) {
    return this.enqueue(async () => {
      if (this.pc.signalingState !== 'have-local-offer') return;
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      for (const l of this.local.values()) {
        // A transceiver added after our offer has no mid yet: not part of this answer.
        if (l.transceiver.direction === 'sendonly' && l.transceiver.mid !== null) l.accepted = true;
      }
      await this.maybeOffer();
    });
  }

  handleOffer(sdp, tracks) {
    return this.enqueue(async () => {
      if (this.pc.signalingState === 'have-local-offer') {
        // Glare: we are polite. Roll back, answer, offer again afterwards.
        await this.pc.setLocalDescription({ type: 'rollback' });
        this.renewUnnegotiatedSimulcast();
        this.needOffer = true;
      }
      this.remote = new Map((tracks || []).map((t) => [t.mid, t]));
      this.lastRemoteOffer = sdp;
      await this.pc.setRemoteDescription({ type: 'offer', sdp: dropInactiveMsids(sdp) });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
      this.reportRemote();
      await this.maybeOffer();
    });
  }

  /**
   * Chromium cannot offer a simulcast transceiver again once an offer that
   * introduced it was rolled back ("Failed to set local offer sdp"), so such
   * never-negotiated transceivers are replaced by fresh ones.
   */
  renewUnnegotiatedSimulcast() {
    for (const [source, l] of this.local) {
      if (source !== 'camera' || l.transceiver.mid !== null) continue;
      const track = l.transceiver.sender.track;
      l.transceiver.stop();
      const init = { direction: 'sendonly', streams: [], sendEncodings: SIMULCAST };
      l.transceiver = this.pc.addTransceiver(track || 'video', init);
      limitHeaderExtensions(l.transceiver);
      if (this.e2ee) this.e2ee.protectSender(l.transceiver, 'video');
      l.accepted = false;
    }
  }

  /** The server refused our whole offer: roll back and drop what was new in it. */
  handleRefused(msg) {
    return this.enqueue(async () => {
      if (this.pc.signalingState === 'have-local-offer') {
        await this.pc.setLocalDescription({ type: 'rollback' });
      }
      await this.dropUnaccepted(msg);
      await this.maybeOffer();
    });
  }

  /** Drops the sources not yet accepted (back to the last agreed state) and reports them. */
  async dropUnaccepted(msg) {
    this.needOffer = false;
    const refused = [];
    for (const [source, l] of this.local) {
      if (l.accepted) continue;
      refused.push(source);
      if (l.track) l.track.stop();
      await l.transceiver.sender.replaceTrack(null);
      if (l.transceiver.mid === null) {
        l.transceiver.stop();
        this.local.delete(source);
      } else {
        l.transceiver.direction = 'inactive';
        l.track = null;
        l.accepted = true; // back to the last agreed state: inactive
      }
    }
    this.onRefused(refused, msg);
  }

  /** Maps the receivers to remote participants' tracks by mid. */
  reportRemote() {
    const remote = [];
    for (const t of this.pc.getTransceivers()) {
      const info = t.mid !== null ? this.remote.get(t.mid) : undefined;
      if (this.e2ee && t.receiver.track) this.e2ee.protectReceiver(t.receiver, info);
      if (!info || !t.receiver.track) continue;
      const dir = t.currentDirection || t.direction;
      if (dir !== 'recvonly' && dir !== 'sendrecv') continue;
      remote.push({ ...info, track: t.receiver.track });
    }
    this.onRemote(remote);
  }

  /** Totals over inbound-rtp (and the candidate pair's round trip). */
  async stats() {
    const out = {
      framesDecoded: 0,
      totalSamplesReceived: 0,
      packetsReceived: 0,
      packetsLost: 0,
      bytesReceived: 0,
      framesSent: 0,
      packetsSent: 0,
      roundTripTime: null,
      /** Types of the local candidates of nominated pairs (`host`, `relay`, ...). */
      localCandidateTypes: [],
      /** How those candidates reach the server: `udp` or `tcp` (for a relay, its leg to TURN). */
      localCandidateProtocols: [],
    };
    if (this.closed) return out;
    const report = await this.pc.getStats();
    const types = new Set();
    const protocols = new Set();
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated) {
        const local = report.get(s.localCandidateId);
        if (local) {
          types.add(local.candidateType);
          protocols.add(local.candidateType === 'relay' ? local.relayProtocol : local.protocol);
        }
      }
    });
    out.localCandidateTypes = [...types].sort();
    out.localCandidateProtocols = [...protocols].sort();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        out.framesDecoded += s.framesDecoded || 0;
        out.totalSamplesReceived += s.totalSamplesReceived || 0;
        out.packetsReceived += s.packetsReceived || 0;
        out.packetsLost += s.packetsLost || 0;
        out.bytesReceived += s.bytesReceived || 0;
      } else if (s.type === 'outbound-rtp') {
        out.framesSent += s.framesSent || 0;
        out.packetsSent += s.packetsSent || 0;
      } else if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) {
        out.roundTripTime = s.currentRoundTripTime;
      }
    });
    return out;
  }

  /**
   * Uses the ICE servers of a `joined` message (TURN with a credential for
   * this join); `relayOnly` forces media through them (`?ice=relay`).
   * Called before any offer, so gathering starts with them.
   */
  setIceServers(iceServers, relayOnly) {
    const config = this.pc.getConfiguration();
    config.iceServers = Array.isArray(iceServers) ? iceServers : [];
    config.iceTransportPolicy = relayOnly ? 'relay' : 'all';
    try {
      this.pc.setConfiguration(config);
    } catch (e) {
      console.warn('ICE servers not applied', e);
    }
  }

  close() {
    this.closed = true;
    this.pc.ontrack = null;
    this.pc.close();
  }
}
