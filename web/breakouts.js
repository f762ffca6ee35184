// Breakout rooms seen from a participant (docs/signaling.md, "Breakout
// rooms"): the label of the breakout we are in, the moderators' broadcasts,
// the closing countdown, and our own moves (the caller then resumes, which
// puts our media connection in the new breakout's media room).

import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

export class Breakouts {
  /** `notify(text)` shows a notice; `onMoved()` is called when we were moved. */
  constructor({ notify, onMoved }) {
    this.notify = notify;
    this.onMoved = onMoved;
    this.selfId = null;
    /** The breakout we are in (id), or null for the main room. */
    this.current = null;
    /** Breakout names by id. */
    this.names = new Map();
    /** When the closing countdown ends (ms since the epoch), or null. */
    this.closesAt = null;
    this.timer = null;
  }

  /** After `joined` (also after a resume): where we are. */
  onJoined(joined) {
    this.selfId = joined.participant.id;
    this.current = joined.participant.breakout_id || null;
    this.render();
  }

  /** The state for the test hooks. */
  state() {
    return { id: this.current, name: this.current ? this.names.get(this.current) || null : null, closesIn: this.secondsLeft() };
  }

  /** Handles a breakout event; false when `m` is not one. */
  handle(m) {
    switch (m.type) {
      case 'breakouts_opened': {
        // Also sent after each join and resume while they are open.
        const news = this.names.size === 0;
        for (const b of m.breakouts || []) this.names.set(b.id, b.name);
        if (news) this.notify(t('Breakout rooms are open'));
        this.render();
        return true;
      }
      case 'breakout_moved':
        if (m.breakout_id && m.breakout_name) this.names.set(m.breakout_id, m.breakout_name);
        if (m.participant_id === this.selfId) {
          this.current = m.breakout_id || null;
          this.render();
          this.notify(this.current ? t('You were moved to {name}', { name: m.breakout_name || '' }) : t('You are back in the main room'));
          this.onMoved();
        }
        return true;
      case 'breakout_broadcast':
        this.notify(t('To all rooms: {message}', { message: m.message }));
        return true;
      case 'breakouts_closing':
        this.startCountdown(m.seconds);
        return true;
      case 'breakouts_closed':
        this.stopCountdown();
        this.current = null;
        this.names.clear();
        this.render();
        return true;
      default:
        return false;
    }
  }

  secondsLeft() {
    return this.closesAt === null ? null : Math.max(0, Math.ceil((this.closesAt - Date.now()) / 1000));
  }

  startCountdown(seconds) {
    this.stopCountdown();
    this.closesAt = Date.now() + seconds * 1000;
    this.timer = setInterval(() => this.renderCountdown(), 250);
    this.renderCountdown();
  }

  stopCountdown() {
    clearInterval(this.timer);
    this.timer = null;
    this.closesAt = null;
    this.renderCountdown();
  }

  render() {
    const el = $('breakout-label');
    if (!el) return;
    el.hidden = !this.current;
    el.textContent = this.current ? t('Breakout room: {name}', { name: this.names.get(this.current) || '' }) : '';
  }

  renderCountdown() {
    const el = $('breakout-countdown');
    if (!el) return;
    const left = this.secondsLeft();
    el.hidden = left === null;
    el.textContent = left === null ? '' : t('Breakout rooms close in {seconds} s', { seconds: left });
  }
}
