// Devices during a call (docs/browser-client.md "Devices in the call"):
// the Settings dialog, switching camera and microphone without
// renegotiating, the speaker output, plugged and unplugged devices. Methods
// of the app (main.js mixes them into `App`).

import * as media from './media.js';
import * as ui from './ui.js';
import { t } from './i18n.js';

export const deviceMethods = {

  async openSettings() {
    const dialog = document.getElementById('settings-dialog');
    await this.fillCallDevices();
    if (!dialog.open) dialog.showModal();
  },

  async fillCallDevices() {
    const d = await media
      .listDevices()
      .catch(() => ({ cameras: [], microphones: [], speakers: [] }));
    this.devices = d;
    const current = (source) => {
      const t = this.local[source];
      return (t && t.getSettings && t.getSettings().deviceId) || this.deviceIds[source];
    };
    ui.fillDevices('set-camera', d.cameras, current('camera'), (id) => this.switchDevice('camera', id));
    ui.fillDevices('set-mic', d.microphones, current('microphone'), (id) => this.switchDevice('microphone', id));
    const speakers = media.canChooseSpeaker() && d.speakers.length > 0;
    document.getElementById('set-speaker-row').hidden = !speakers;
    if (speakers) ui.fillDevices('set-speaker', d.speakers, this.sinkId || 'default', (id) => this.setSpeaker(id));
  },

  /**
   * Uses device `id` for `source` from now on. A source that is on is
   * captured from the new device and sent on the same sender (no
   * renegotiation, the others keep decoding); one that is off uses it when
   * it is turned on.
   */
  async switchDevice(source, id) {
    this.deviceIds[source] = id;
    const old = this.local[source];
    if (!old || this.state !== 'joined') return;
    let track;
    try {
      track = await this.openSource(source);
    } catch (e) {
      this.notify(media.captureErrorText(e, source));
      return;
    }
    if (!track) return;
    track.enabled = old.enabled;
    this.local[source] = track;
    if (this.peer) await this.peer.replaceSource(source, this.sendable(source));
    old.stop();
    this.note(`device:${source}`);
    this.renderTiles();
  },

  /** Plays every participant's audio on output device `id`. */
  setSpeaker(id) {
    this.sinkId = id;
    this.renderTiles();
  },

  /** A capture device that disappears ends its track: fall back to the default one. */
  watchEnded(source, track) {
    track.addEventListener('ended', () => {
      if (this.local[source] !== track || this.state !== 'joined') return;
      this.notify(t('Your {what} was disconnected; switching to another one.', { what: t(media.SOURCE_TEXT[source]) }));
      this.switchDevice(source, null);
    });
  },

  async onDeviceChange() {
    if (this.state === 'joined') await this.fillCallDevices();
    else await this.refreshDevices();
  },

  async selectDevice(source, id) {
    this.deviceIds[source] = id;
    if (this.local[source]) {
      this.stopSource(source);
      await this.openWanted();
      this.renderPreview();
    }
  },
};
