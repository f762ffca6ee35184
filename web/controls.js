// The participant's own media controls: microphone, camera and screen on
// and off, what happens when the server refuses a source, and a
// moderator's mute (docs/browser-client.md). Methods of the app (main.js
// mixes them into `App`).

import * as media from './media.js';
import { t } from './i18n.js';

const SOURCE_TEXT = media.SOURCE_TEXT;

export const controlMethods = {

  async toggleMicrophone() {
    if (!this.peer || this.state !== 'joined') return;
    const source = 'microphone';
    if (this.want.microphone) {
      this.want.microphone = false;
      if (this.local.microphone) this.local.microphone.enabled = false;
      const published = this.peer.isPublished(source);
      await this.peer.pause(source);
      if (published) this.send({ type: 'mute', source, muted: true });
    } else {
      await this.startSource(source);
    }
    this.renderControls();
    this.renderTiles();
  },

  async toggleCamera() {
    if (!this.peer || this.state !== 'joined') return;
    const source = 'camera';
    if (this.want.camera) {
      this.want.camera = false;
      const published = this.peer.isPublished(source);
      await this.peer.pause(source);
      this.stopSource(source);
      if (published) this.send({ type: 'mute', source, muted: true });
    } else {
      await this.startSource(source);
    }
    this.renderControls();
    this.renderTiles();
  },

  /**
   * Starts sending the camera or microphone. `force` skips the local
   * permission check and lets the server decide (automation hook).
   */
  async startSource(source, force = false) {
    if (!force && this.permissions.broadcast === false) {
      this.notify(t('You may not share your {what} in this room.', { what: t(SOURCE_TEXT[source]) }));
      return;
    }
    try {
      if (!this.local[source]) this.local[source] = await this.openSource(source);
    } catch (e) {
      this.notify(media.captureErrorText(e, source));
      return;
    }
    this.local[source].enabled = true;
    this.want[source] = true;
    const wasMuted = this.peer.local.has(source);
    await this.peer.publish(source, this.sendable(source));
    if (wasMuted) this.send({ type: 'mute', source, muted: false });
  },

  async toggleScreen() {
    if (!this.peer || this.state !== 'joined') return;
    if (this.local.screen) return this.stopScreen();
    if (this.permissions.screenshare === false || this.room.screenshare_enabled === false) {
      this.notify(t('Screen sharing is not allowed in this room.'));
      return undefined;
    }
    let track;
    try {
      track = await media.openScreen();
    } catch (e) {
      if (e && e.name !== 'NotAllowedError') this.notify(media.captureErrorText(e, 'screen'));
      return undefined;
    }
    if (!track) return undefined;
    track.onended = () => this.stopScreen();
    this.local.screen = track;
    await this.peer.publish('screen', track);
    this.renderControls();
    return this.renderTiles();
  },

  async stopScreen() {
    this.stopSource('screen');
    if (this.peer) await this.peer.unpublish('screen');
    this.renderControls();
    this.renderTiles();
  },

  onRefused(sources, msg) {
    for (const source of sources) {
      this.stopSource(source);
      if (source !== 'screen') this.want[source] = false;
    }
    const what = sources.map((s) => t(SOURCE_TEXT[s])).join(` ${t('and')} `) || t('media');
    const who = msg.code === 'NEGOTIATION_FAILED' ? 'Your browser could not send your {what}: {why}' : 'The server did not accept your {what}: {why}';
    this.notify(t(who, { what, why: msg.message || msg.code }));
    this.renderControls();
    this.renderTiles();
  },

  async onMutedByModerator(m) {
    const sources = m.source ? [m.source] : ['microphone', 'camera', 'screen'];
    for (const source of sources) {
      if (source === 'screen') {
        if (this.local.screen) await this.stopScreen();
        continue;
      }
      this.want[source] = false;
      if (this.peer) await this.peer.pause(source);
      if (source === 'camera') this.stopSource(source);
      else if (this.local.microphone) this.local.microphone.enabled = false;
    }
    const what = sources.length > 1 ? t('microphone and camera') : t(SOURCE_TEXT[sources[0]]);
    this.notify(t('A moderator turned off your {what}.', { what }));
    this.renderControls();
    this.renderTiles();
  },
};
