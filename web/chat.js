// The Chat tab: the history from `collab_state`, live `chat_message`s, and
// the send box (to everyone, or privately to one participant).

import { h, clock } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

export class Chat {
  /** `send(msg)` sends a signaling message; `onNew()` is called for each live message. */
  constructor({ send, onNew }) {
    this.send = send;
    this.onNew = onNew;
    this.selfId = null;
    /** Received messages, oldest first: `{id, message, participant_id, participant_name, created_at, private, recipient_id}`. */
    this.messages = [];
    this.peopleKey = '';
    /** Reactions by message id: `[{emoji, count, participant_ids}]`. */
    this.reactions = {};
    this.reactionsOn = false;
    this.list = $('chat-list');
    this.input = $('chat-input');
    this.to = $('chat-to');
    $('chat-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
  }

  /** Whether the room and the role allow chatting (else a note says why). */
  configure({ selfId, enabled, allowed, reactions }) {
    this.selfId = selfId;
    this.reactionsOn = Boolean(reactions && enabled && allowed);
    const why = !enabled ? t('Chat is turned off in this room.') : !allowed ? t('Your role may not send chat messages.') : '';
    $('chat-note').textContent = why;
    $('chat-note').hidden = !why;
    for (const e of [this.input, this.to, $('chat-send')]) e.disabled = Boolean(why);
  }

  /** The "to" choices: everyone, or one of `people` ([{id, name}]) privately. */
  setPeople(people) {
    const key = people.map((p) => `${p.id}:${p.name}`).join(',');
    if (key === this.peopleKey) return;
    this.peopleKey = key;
    const chosen = this.to.value;
    this.to.replaceChildren(
      h('option', { value: '' }, t('Everyone')),
      ...people.map((p) => h('option', { value: p.id, dataset: { name: p.name } }, t('{name} (private)', { name: p.name }))),
    );
    this.to.value = people.some((p) => p.id === chosen) ? chosen : '';
  }

  /** Replaces everything with the catch-up history. */
  reset(history, reactions) {
    this.reactions = { ...(reactions || {}) };
    this.messages = [];
    this.list.replaceChildren();
    for (const m of history || []) this.add(m, Boolean(m.recipient_id), false);
  }

  /** Adds one message (ignored when already shown). */
  add(message, isPrivate, live = true) {
    if (!message || this.messages.some((m) => m.id === message.id)) return;
    const m = { ...message, private: Boolean(isPrivate) };
    this.messages.push(m);
    if (this.messages.length > 500) {
      this.messages.shift();
      this.list.firstElementChild?.remove();
    }
    const mine = m.participant_id && m.participant_id === this.selfId;
    const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 20;
    this.list.append(
      h(
        'li',
        { class: `chat-msg${mine ? ' mine' : ''}${m.private ? ' private' : ''}`, dataset: { id: m.id } },
        h(
          'div',
          { class: 'meta' },
          h('span', { class: 'who' }, mine ? t('You') : m.participant_name || t('Someone')),
          m.private ? h('span', { class: 'tag' }, this.privateText(m)) : null,
          h('time', { class: 'when', dateTime: m.created_at }, clock(m.created_at)),
        ),
        h('div', { class: 'text' }, m.message),
        h('div', { class: 'reactions' }),
      ),
    );
    this.renderReactions(m.id);
    if (stick || mine) this.list.scrollTop = this.list.scrollHeight;
    if (live && !mine && this.onNew) this.onNew(m);
  }

  /** `chat_reactions`: the reactions on one message changed. */
  setReactions(messageId, reactions) {
    this.reactions[messageId] = reactions || [];
    this.renderReactions(messageId);
  }

  renderReactions(messageId) {
    const li = [...this.list.children].find((e) => e.dataset.id === messageId);
    const box = li?.querySelector('.reactions');
    if (!box) return;
    const list = this.reactions[messageId] || [];
    const chips = list.map((r) =>
      h(
        'button',
        {
          type: 'button',
          class: `chip${r.participant_ids.includes(this.selfId) ? ' mine' : ''}`,
          disabled: !this.reactionsOn,
          onclick: () => this.react(messageId, r.emoji),
        },
        `${r.emoji} ${r.count}`,
      ),
    );
    if (this.reactionsOn) {
      for (const e of ['👍', '❤️', '😂']) {
        if (!list.some((r) => r.emoji === e)) {
          chips.push(h('button', { type: 'button', class: 'chip add', title: t('React {emoji}', { emoji: e }), onclick: () => this.react(messageId, e) }, e));
        }
      }
    }
    box.replaceChildren(...chips);
  }

  /** Toggles the own reaction `emoji` on a message. */
  react(messageId, emoji) {
    return this.send({ type: 'chat_reaction', message_id: messageId, emoji });
  }

  privateText(m) {
    if (m.participant_id === this.selfId && m.recipient_id) {
      const o = [...this.to.options].find((x) => x.value === m.recipient_id);
      return o ? t('private to {name}', { name: o.dataset.name || o.textContent }) : t('private');
    }
    return t('private to you');
  }

  /** `chat_cleared`: drops the messages of that session (all when null). */
  clear(sessionId) {
    const keep = sessionId ? this.messages.filter((m) => m.session_id !== sessionId) : [];
    this.reset(keep);
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if (this.sendText(text, this.to.value || null)) this.input.value = '';
  }

  sendText(text, recipientId = null) {
    return this.send({ type: 'chat', message: String(text), recipient_id: recipientId || null });
  }
}
