// Breakout rooms (docs/signaling.md, "Breakout rooms"). For everyone: the
// label of the breakout we are in, the moderators' broadcasts, the closing
// countdown, and our own moves (the caller then resumes, which puts our
// media connection in the new breakout's media room). For moderators
// (`admit_participants`): the Breakouts tab — open N rooms (manual or
// random assignment, optional timer), move people, broadcast, close.

import { h } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

export class Breakouts {
  /**
   * `send(msg)` sends over signaling; `notify(text)` shows a notice;
   * `onMoved()` is called when we were moved; `people()` lists the others
   * (`[{id, name, breakout_id}]`).
   */
  constructor({ send, notify, onMoved, people }) {
    this.send = send;
    this.notify = notify;
    this.onMoved = onMoved;
    this.people = people;
    this.moderator = false;
    /** Where each participant is (id -> breakout id), as moves are announced. */
    this.where = new Map();
    $('bo-create').addEventListener('submit', (e) => {
      e.preventDefault();
      const msg = { type: 'breakouts_open', count: Number($('bo-count').value), assignment: $('bo-assignment').value };
      if ($('bo-minutes').value) msg.duration_minutes = Number($('bo-minutes').value);
      this.send(msg);
    });
    $('bo-broadcast').addEventListener('submit', (e) => {
      e.preventDefault();
      const message = $('bo-message').value.trim();
      if (message && this.send({ type: 'breakouts_broadcast', message }) !== false) $('bo-message').value = '';
    });
    $('bo-close').addEventListener('click', () => this.send({ type: 'breakouts_close', countdown_seconds: Number($('bo-countdown').value) }));
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
    this.moderator = (joined.permissions || {}).admit_participants === true;
    $('tab-breakouts').hidden = !this.moderator;
    this.where = new Map();
    for (const p of joined.participants || []) if (p.breakout_id) this.where.set(p.id, p.breakout_id);
    if (this.current) this.where.set(this.selfId, this.current);
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
        if (m.breakout_id) this.where.set(m.participant_id, m.breakout_id);
        else this.where.delete(m.participant_id);
        this.renderPanel();
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
        this.where.clear();
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

  /** The moderator's Breakouts tab: the create form, or who is where. */
  renderPanel() {
    if (!this.moderator) return;
    const open = this.names.size > 0;
    $('bo-create').hidden = open;
    $('bo-live').hidden = !open;
    if (!open) return;
    const rooms = [[null, t('Main room')], ...this.names.entries()];
    const people = [{ id: this.selfId, name: t('You') }, ...this.people()];
    $('bo-people').replaceChildren(
      ...people.map((p) => {
        const here = this.where.get(p.id) || '';
        const select = h(
          'select',
          { class: 'bo-move', 'aria-label': t('Breakout room of {name}', { name: p.name }), dataset: { participant: p.id }, onchange: (e) => this.send({ type: 'breakout_move', participant_id: p.id, breakout_id: e.target.value || null }) },
          ...rooms.map(([id, name]) => h('option', { value: id || '', selected: (id || '') === here }, name)),
        );
        return h('li', {}, h('span', { class: 'name' }, p.name), select);
      }),
    );
  }

  render() {
    this.renderPanel();
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
