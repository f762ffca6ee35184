// Live captions (docs/transcripts.md, docs/browser-client.md "Captions"):
// the `caption` events of a room with `transcription_enabled`, shown over
// the bottom of the video as the last few lines ("Name: text") in an
// aria-live="polite" region, so screen readers read each new line. The
// Captions button shows only in such rooms; captions are on there by
// default (the room asked for them) and the button turns them off and on
// for this browser tab.

import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

/** Lines shown at once. */
export const CAPTION_LINES = 3;

export class Captions {
  constructor() {
    this.available = false;
    this.on = true;
    this.lines = [];
    $('ctl-captions').addEventListener('click', () => this.toggle());
  }

  /** The room's settings at join: whether captions exist here at all. */
  configure(settings) {
    this.available = !!(settings && settings.transcription_enabled);
    $('ctl-captions').hidden = !this.available;
    this.render();
  }

  toggle() {
    this.on = !this.on;
    this.render();
  }

  /** A `caption` event. */
  add(m) {
    const name = m.participant_name || t('Anonymous');
    this.lines.push({ name, text: m.transcript || '' });
    if (this.lines.length > CAPTION_LINES) this.lines.splice(0, this.lines.length - CAPTION_LINES);
    this.render();
  }

  render() {
    const b = $('ctl-captions');
    b.setAttribute('aria-pressed', this.on ? 'true' : 'false');
    b.title = this.on ? t('Hide live captions') : t('Show live captions');
    const box = $('captions');
    box.hidden = !(this.available && this.on && this.lines.length > 0);
    box.replaceChildren(...this.lines.map((l) => {
      const p = document.createElement('p');
      const who = document.createElement('strong');
      who.textContent = `${l.name}: `;
      p.append(who, document.createTextNode(l.text));
      return p;
    }));
  }
}
