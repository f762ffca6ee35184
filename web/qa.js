// The Q&A tab: ask (optionally anonymously), upvote; moderators (`manage_qa`)
// answer, dismiss / reopen, and answer live. Questions come from
// `collab_state` and `question_created` / `question_updated` events.

import { h, clock } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

export class QA {
  constructor({ send }) {
    this.send = send;
    this.selfId = null;
    this.moderator = false;
    /** id -> question (as the server sent it). */
    this.questions = new Map();
    /** Questions this participant upvoted (the server keeps one vote each). */
    this.voted = new Set();
    /** id -> {li, body, answerForm} */
    this.cards = new Map();
    this.list = $('qa-list');
    $('qa-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = $('qa-input');
      if (input.value.trim() && this.ask(input.value.trim(), $('qa-anon').checked)) input.value = '';
    });
  }

  configure({ selfId, moderator }) {
    this.selfId = selfId;
    this.moderator = Boolean(moderator);
    this.render();
  }

  reset(questions) {
    this.questions = new Map((questions || []).map((q) => [q.id, q]));
    this.list.replaceChildren();
    this.cards.clear();
    this.render();
  }

  upsert(q) {
    if (!q) return;
    this.questions.set(q.id, q);
    this.render();
  }

  remove(id) {
    this.questions.delete(id);
    this.render();
  }

  clear(sessionId) {
    for (const [id, q] of this.questions) if (!sessionId || q.session_id === sessionId) this.questions.delete(id);
    this.render();
  }

  ask(text, anonymous = false) {
    return this.send({ type: 'question_ask', question: String(text), anonymous: Boolean(anonymous) });
  }

  vote(id) {
    const on = !this.voted.has(id);
    if (on) this.voted.add(id);
    else this.voted.delete(id);
    this.send({ type: 'question_vote', question_id: id, vote: on });
    this.render();
  }

  /** A snapshot for `window.convene.questions`. */
  snapshot() {
    return this.sorted().map((q) => ({ ...q, voted: this.voted.has(q.id) }));
  }

  /** Open questions first, most votes first, then oldest first. */
  sorted() {
    return [...this.questions.values()].sort(
      (a, b) =>
        (a.status === 'dismissed') - (b.status === 'dismissed') ||
        (b.votes || 0) - (a.votes || 0) ||
        String(a.created_at).localeCompare(String(b.created_at)),
    );
  }

  render() {
    const order = this.sorted();
    for (const [id, card] of this.cards) {
      if (!this.questions.has(id)) {
        card.li.remove();
        this.cards.delete(id);
      }
    }
    for (const q of order) {
      const card = this.cards.get(q.id) || this.card(q.id);
      card.body.replaceChildren(...this.body(q));
      card.answerForm.hidden = !this.moderator || q.status === 'dismissed';
      this.list.append(card.li); // keeps the order; moves existing nodes
    }
    $('qa-empty').hidden = order.length > 0;
  }

  card(id) {
    const input = h('input', { class: 'qa-answer-input', maxLength: 4000, placeholder: t('Answer…'), 'aria-label': t('Answer…') });
    const priv = h('input', { type: 'checkbox', class: 'qa-answer-private' });
    const answerForm = h(
      'form',
      {
        class: 'qa-answer',
        onsubmit: (ev) => {
          ev.preventDefault();
          const text = input.value.trim();
          if (!text) return;
          this.send({ type: 'question_answer', question_id: id, answer: text, private: priv.checked });
          input.value = '';
        },
      },
      input,
      h('label', { class: 'inline', title: t('Only the asker sees a private answer') }, priv, t('private')),
      h('button', { type: 'submit', class: 'small' }, t('Answer')),
    );
    const body = h('div', { class: 'qa-body' });
    const card = { li: h('li', { class: 'qa-item', dataset: { id } }, body, answerForm), body, answerForm };
    this.cards.set(id, card);
    return card;
  }

  body(q) {
    const mine = q.participant_id && q.participant_id === this.selfId;
    const live = q.live_answer && q.live_answer.status === 'active';
    const out = [
      h(
        'div',
        { class: 'meta' },
        h('span', { class: 'who' }, mine ? t('You') : q.participant_name || t('Anonymous')),
        q.anonymous ? h('span', { class: 'tag' }, t('anonymous')) : null,
        q.status === 'dismissed' ? h('span', { class: 'tag' }, t('dismissed')) : null,
        live ? h('span', { class: 'tag live' }, t('answering live')) : null,
        h('time', { class: 'when' }, clock(q.created_at)),
      ),
      h('div', { class: 'text' }, q.question),
    ];
    for (const a of q.answers || []) {
      out.push(
        h(
          'div',
          { class: `qa-answer-text${a.private ? ' private' : ''}` },
          h('span', { class: 'who' }, `${a.participant_name || t('Moderator')}${a.private ? ` (${t('private')})` : ''}: `),
          a.answer,
        ),
      );
    }
    const voted = this.voted.has(q.id);
    const buttons = [
      h(
        'button',
        {
          type: 'button',
          class: `small upvote${voted ? ' on' : ''}`,
          title: voted ? t('Take your vote back') : t('Upvote'),
          'aria-pressed': voted ? 'true' : 'false',
          onclick: () => this.vote(q.id),
        },
        `▲ ${q.votes || 0}`,
      ),
    ];
    if (this.moderator) {
      const act = (type, extra = {}) => () => this.send({ type, question_id: q.id, ...extra });
      if (q.status === 'dismissed') {
        buttons.push(h('button', { type: 'button', class: 'small reopen', onclick: act('question_reopen') }, t('Reopen')));
      } else {
        buttons.push(h('button', { type: 'button', class: 'small dismiss', onclick: act('question_dismiss') }, t('Dismiss')));
        if (live) {
          buttons.push(
            h('button', { type: 'button', class: 'small live-stop', onclick: act('question_live', { action: 'stop' }) }, t('Done')),
            h('button', { type: 'button', class: 'small', onclick: act('question_live', { action: 'cancel' }) }, t('Cancel live')),
          );
        } else {
          buttons.push(
            h('button', { type: 'button', class: 'small live-start', onclick: act('question_live', { action: 'start' }) }, t('Go live')),
          );
        }
      }
    }
    out.push(h('div', { class: 'row' }, buttons));
    return out;
  }
}
