// The signaling WebSocket (docs/signaling.md, protocol v1): one JSON object
// per text frame. This module knows nothing about rooms or media.

export const PROTOCOL_VERSION = 1;

/** The node this page signals to when not the one that served it. */
let nodeBase = null;
/** When the last `moved` messages were followed (a bound against a loop). */
let moves = [];
/** The node that sent this page away (`moved`'s `via`): its media stays there. */
let via = null;

/**
 * A cluster node said the room runs on another node (`moved`): later
 * sockets go to `url`. False when the page was moved too often in a row.
 */
export function moveTo(url, from = null) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const now = Date.now();
  moves = moves.filter((t) => now - t < 30000);
  if (moves.length >= 8 || (u.protocol !== 'http:' && u.protocol !== 'https:')) return false;
  moves.push(now);
  nodeBase = u;
  via = typeof from === 'string' && from ? from : null;
  return true;
}

/** The node whose media plane should keep this page's peer (sent in `join`). */
export function mediaVia() {
  return via;
}

/**
 * Media through the `via` node failed (e.g. only TURN gets through, and the
 * page's TURN credentials are the room node's): the next join keeps the
 * peer on the room's node.
 */
export function forgetMediaVia() {
  via = null;
}

/** The `/rtc` URL of the server that served this page (or of its node). */
export function signalingUrl() {
  const base = nodeBase || location;
  const scheme = base.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${base.host}/rtc`;
}

/** Send a `ping` after this long without sending anything. */
const PING_AFTER_MS = 10000;
/** Consider the connection dead after this long without hearing anything. */
const DEAD_AFTER_MS = 30000;

export class Signaling {
  /**
   * @param {object} handlers `onMessage(msg)` for every server message,
   *   `onClose(event)` once the socket is closed after it was open.
   */
  constructor({ onMessage, onClose }) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.ws = null;
    this.closedByUs = false;
    this.lastSent = 0;
    this.lastHeard = 0;
    this.heartbeat = null;
  }

  /** Opens the socket; resolves once it is open (rejects after `timeoutMs`). */
  open(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(signalingUrl());
      this.ws = ws;
      let opened = false;
      const timer = setTimeout(() => {
        if (!opened) {
          ws.close();
          reject(new Error('signaling connection timed out'));
        }
      }, timeoutMs);
      ws.onopen = () => {
        opened = true;
        clearTimeout(timer);
        this.lastHeard = Date.now();
        this.heartbeat = setInterval(() => this.beat(), 2000);
        resolve();
      };
      ws.onmessage = (ev) => {
        this.lastHeard = Date.now();
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          console.warn('convene: unparsable signaling message', ev.data);
          return;
        }
        this.onMessage(msg);
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        clearInterval(this.heartbeat);
        if (!opened) {
          // The node we were moved to is gone: the next try asks the
          // page's own server, which knows where the room runs now.
          nodeBase = null;
          via = null;
          reject(new Error('signaling connection failed'));
          return;
        }
        if (this.ws === ws) this.onClose(ev, this.closedByUs);
      };
    });
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(msg) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(msg));
    this.lastSent = Date.now();
    return true;
  }

  /**
   * Keepalive: a `ping` when we have been quiet (the server answers `pong`),
   * and a close when the server has been silent too long: a dead network
   * may not close a WebSocket for minutes. `onClose` then sees an
   * unexpected close, so the page reconnects.
   */
  beat() {
    if (!this.isOpen) return;
    const now = Date.now();
    if (now - this.lastHeard > DEAD_AFTER_MS) {
      this.abandon('no answer from the server');
    } else if (now - this.lastSent > PING_AFTER_MS) {
      this.send({ type: 'ping' });
    }
  }

  /**
   * Gives the connection up as lost (without waiting for a closing
   * handshake that a dead network never completes); `onClose` follows.
   */
  abandon(reason) {
    const ws = this.ws;
    if (!ws) return;
    clearInterval(this.heartbeat);
    ws.onclose = null;
    ws.onmessage = null;
    ws.close(4001, reason);
    this.onClose({ code: 4001, reason }, false);
  }

  /** Closes on purpose (no reconnect follows). */
  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close(1000);
  }
}
