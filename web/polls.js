// The Polls tab: launched polls to answer once (results when the server
// shows them), timed quizzes with a countdown, and for moderators
// (`manage_polls`) a form to create polls plus Launch / End buttons.

import { h } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

export class Polls {
  constructor({ send, onNew }) {
    this.send = send;
    this.onNew = onNew;
    this.manager = false;
    /** id -> {poll, results, voted} */
    this.polls = new Map();
    /** id -> {quiz, endsAt, answered: Set(question id), results, reason} */
    this.quizzes = new Map();
    /** id -> {li, head, form, results} */
    this.cards = new Map();
    this.list = $('poll-list');
    this.timer = setInterval(() => this.tick(), 1000);
    $('poll-create').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submitCreate();
    });
    $('poll-type').addEventListener('change', () => {
      $('poll-options-row').hidden = $('poll-type').value === 'free';
    });
  }

  configure({ manager }) {
    this.manager = Boolean(manager);
    $('poll-create').hidden = !this.manager;
    this.render();
  }

  /** The catch-up state: launched polls and running quizzes. */
  reset(polls, quizzes) {
    const before = this.polls;
    this.polls = new Map();
    this.quizzes = new Map();
    for (const c of this.cards.values()) c.li.remove();
    this.cards.clear();
    for (const p of polls || []) {
      const old = before.get(p.id);
      this.polls.set(p.id, { poll: p, results: old ? old.results : null, voted: Boolean(old && old.voted) });
    }
    for (const q of quizzes || []) this.quizLaunched(q, q.ends_in_seconds, false);
    this.render();
  }

  // ---- events ----------------------------------------------------------------

  handle(m) {
    switch (m.type) {
      case 'poll_created':
      case 'poll_launched':
      case 'poll_ended':
        this.upsertPoll(m.poll, m.type === 'poll_ended' ? m.results : undefined);
        if (m.type === 'poll_launched' && this.onNew) this.onNew();
        break;
      case 'poll_results':
        this.withPoll(m.poll_id, (e) => {
          e.results = m.results;
        });
        break;
      case 'poll_voted':
        this.withPoll(m.poll_id, (e) => {
          e.voted = true;
        });
        break;
      case 'poll_deleted':
        this.polls.delete(m.poll_id);
        break;
      case 'polls_cleared':
        for (const [id, e] of this.polls) if (!m.session_id || e.poll.session_id === m.session_id) this.polls.delete(id);
        break;
      case 'quiz_launched':
        this.quizLaunched(m.quiz, m.ends_in_seconds, true);
        break;
      case 'quiz_answered':
        this.withQuiz(m.quiz_id, (e) => e.answered.add(m.question_id));
        break;
      case 'quiz_ended': {
        if (!this.quizzes.has(m.quiz.id)) this.quizLaunched(m.quiz, null, false);
        const e = this.quizzes.get(m.quiz.id);
        e.quiz = { ...e.quiz, status: m.quiz.status };
        // `results` lists runs (one per session): this session's is the one to show.
        const runs = [].concat(m.results || []);
        e.results = runs.find((r) => r.session_id === m.quiz.session_id) || runs[0] || { questions: [] };
        e.reason = m.reason;
        e.endsAt = null;
        break;
      }
      case 'quiz_deleted':
        this.quizzes.delete(m.quiz_id);
        break;
      case 'quizzes_cleared':
        for (const [id, e] of this.quizzes) if (!m.session_id || e.quiz.session_id === m.session_id) this.quizzes.delete(id);
        break;
      default:
        return false;
    }
    this.render();
    return true;
  }

  upsertPoll(poll, results) {
    const e = this.polls.get(poll.id) || { poll, results: null, voted: false };
    e.poll = poll;
    if (results) e.results = results;
    this.polls.set(poll.id, e);
  }

  withPoll(id, fn) {
    const e = this.polls.get(id);
    if (e) fn(e);
  }

  withQuiz(id, fn) {
    const e = this.quizzes.get(id);
    if (e) fn(e);
  }

  quizLaunched(quiz, endsIn, live) {
    const endsAt = typeof endsIn === 'number' ? Date.now() + endsIn * 1000 : null;
    this.quizzes.set(quiz.id, { quiz, endsAt, answered: new Set(), results: null, reason: null });
    if (live && this.onNew) this.onNew();
  }

  // ---- actions ---------------------------------------------------------------

  vote(pollId, optionIds) {
    const e = this.polls.get(pollId);
    if (e && e.poll.type === 'free') return this.send({ type: 'poll_vote', poll_id: pollId, text: String(optionIds) });
    return this.send({ type: 'poll_vote', poll_id: pollId, option_ids: [].concat(optionIds || []) });
  }

  create(poll) {
    return this.send({ type: 'poll_create', poll });
  }

  launch(pollId) {
    return this.send({ type: 'poll_launch', poll_id: pollId });
  }

  end(pollId) {
    return this.send({ type: 'poll_end', poll_id: pollId });
  }

  launchQuiz(quizId) {
    return this.send({ type: 'quiz_launch', quiz_id: quizId });
  }

  endQuiz(quizId) {
    return this.send({ type: 'quiz_end', quiz_id: quizId });
  }

  answerQuiz(quizId, questionId, choiceIds) {
    return this.send({ type: 'quiz_answer', quiz_id: quizId, question_id: questionId, choice_ids: [].concat(choiceIds || []) });
  }

  submitCreate() {
    const question = $('poll-question').value.trim();
    const type = $('poll-type').value;
    const options = $('poll-options')
      .value.split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
    if (!question) return;
    const poll = { question, type, show_results: $('poll-show').checked, anonymous: $('poll-anon').checked };
    if (type !== 'free') poll.options = options;
    if (this.create(poll)) {
      $('poll-question').value = '';
      $('poll-options').value = '';
    }
  }

  /** A snapshot for `window.convene.polls`. */
  snapshot() {
    return [...this.polls.values()].map((e) => ({
      id: e.poll.id,
      question: e.poll.question,
      type: e.poll.type,
      status: e.poll.status,
      options: e.poll.options,
      voted: e.voted,
      results: e.results,
    }));
  }

  quizSnapshot() {
    return [...this.quizzes.values()].map((e) => ({
      id: e.quiz.id,
      title: e.quiz.title,
      status: e.results ? 'ended' : e.quiz.status,
      ends_in_seconds: e.endsAt ? Math.max(0, Math.round((e.endsAt - Date.now()) / 1000)) : null,
      answered: [...e.answered],
      results: e.results,
    }));
  }

  // ---- rendering -------------------------------------------------------------

  tick() {
    for (const [id, e] of this.quizzes) {
      const c = this.cards.get(`quiz:${id}`);
      if (c && e.endsAt) c.head.querySelector('.countdown').textContent = countdown(e.endsAt);
    }
  }

  render() {
    const keys = new Set();
    for (const e of this.polls.values()) {
      if (e.poll.status === 'draft' && !this.manager) continue;
      keys.add(`poll:${e.poll.id}`);
      this.renderPoll(e);
    }
    for (const e of this.quizzes.values()) {
      keys.add(`quiz:${e.quiz.id}`);
      this.renderQuiz(e);
    }
    for (const [key, c] of this.cards) {
      if (!keys.has(key)) {
        c.li.remove();
        this.cards.delete(key);
      }
    }
    $('poll-empty').hidden = keys.size > 0;
  }

  cardFor(key) {
    let c = this.cards.get(key);
    if (!c) {
      c = { head: h('div', { class: 'poll-head' }), form: h('div'), results: h('div', { class: 'results' }) };
      c.li = h('li', { class: 'poll', dataset: { key } }, c.head, c.form, c.results);
      this.cards.set(key, c);
      this.list.prepend(c.li);
    }
    return c;
  }

  renderPoll(e) {
    const p = e.poll;
    const c = this.cardFor(`poll:${p.id}`);
    c.li.dataset.id = p.id;
    c.li.dataset.status = p.status;
    const buttons = [];
    if (this.manager && p.status === 'draft') {
      buttons.push(h('button', { type: 'button', class: 'small launch', onclick: () => this.launch(p.id) }, t('Launch')));
    }
    if (this.manager && p.status === 'launched') {
      buttons.push(h('button', { type: 'button', class: 'small end', onclick: () => this.end(p.id) }, t('End')));
    }
    c.head.replaceChildren(
      h('div', { class: 'meta' }, h('span', { class: 'tag' }, statusText(p.status)), p.anonymous ? h('span', { class: 'tag' }, t('anonymous')) : null),
      h('div', { class: 'text' }, p.question),
      h('div', { class: 'row', hidden: !buttons.length }, buttons),
    );
    // The answer form is built once per state so a half-made choice survives updates.
    const formKey = p.status === 'launched' && !e.voted ? 'open' : e.voted ? 'voted' : 'closed';
    if (c.formKey !== formKey) {
      c.formKey = formKey;
      c.form.replaceChildren(
        formKey === 'open' ? this.voteForm(p) : formKey === 'voted' ? h('p', { class: 'hint voted' }, t('Thanks, your answer is in.')) : '',
      );
    }
    c.results.replaceChildren(...(e.results ? resultBars(e.results) : []));
  }

  voteForm(p) {
    const name = `poll-${p.id}`;
    let inputs;
    if (p.type === 'free') {
      inputs = [h('input', { class: 'poll-text', maxLength: 4000, placeholder: t('Your answer…'), 'aria-label': t('Your answer…') })];
    } else {
      const type = p.type === 'multiple' ? 'checkbox' : 'radio';
      inputs = p.options.map((o) =>
        h('label', { class: 'choice' }, h('input', { type, name, value: o.id, dataset: { label: o.label } }), o.label),
      );
    }
    return h(
      'form',
      {
        class: 'poll-vote',
        onsubmit: (ev) => {
          ev.preventDefault();
          const f = ev.currentTarget;
          if (p.type === 'free') {
            const text = f.querySelector('.poll-text').value.trim();
            if (text) this.vote(p.id, text);
            return;
          }
          const ids = [...f.querySelectorAll('input:checked')].map((i) => i.value);
          if (ids.length) this.vote(p.id, ids);
        },
      },
      inputs,
      h('button', { type: 'submit', class: 'small primary' }, t('Vote')),
    );
  }

  renderQuiz(e) {
    const q = e.quiz;
    const c = this.cardFor(`quiz:${q.id}`);
    c.li.dataset.id = q.id;
    const ended = Boolean(e.results);
    const buttons = [];
    if (this.manager && !ended) {
      buttons.push(
        h('button', { type: 'button', class: 'small end', onclick: () => this.endQuiz(q.id) }, t('End quiz')),
      );
    }
    c.head.replaceChildren(
      h(
        'div',
        { class: 'meta' },
        h('span', { class: 'tag' }, ended ? (e.reason === 'time_up' ? t("quiz: time's up") : t('quiz: ended')) : t('quiz')),
        h('span', { class: 'countdown' }, !ended && e.endsAt ? countdown(e.endsAt) : ''),
      ),
      h('div', { class: 'text' }, q.title),
      h('div', { class: 'row', hidden: !buttons.length }, buttons),
    );
    const formKey = ended ? 'ended' : `open:${[...e.answered].join(',')}`;
    if (c.formKey !== formKey) {
      c.formKey = formKey;
      c.form.replaceChildren(...(ended ? [] : (q.questions || []).map((qq) => this.quizQuestion(q.id, qq, e.answered.has(qq.id)))));
    }
    c.results.replaceChildren(...(ended ? quizResults(e.results) : []));
  }

  quizQuestion(quizId, qq, answered) {
    if (answered) return h('div', { class: 'quiz-q' }, h('div', {}, qq.text), h('p', { class: 'hint' }, t('Answered.')));
    const type = qq.multiple ? 'checkbox' : 'radio';
    const name = `quiz-${quizId}-${qq.id}`;
    return h(
      'form',
      {
        class: 'quiz-q',
        onsubmit: (ev) => {
          ev.preventDefault();
          const ids = [...ev.currentTarget.querySelectorAll('input:checked')].map((i) => i.value);
          if (ids.length) this.answerQuiz(quizId, qq.id, ids);
        },
      },
      h('div', {}, qq.text),
      (qq.choices || []).map((ch) => h('label', { class: 'choice' }, h('input', { type, name, value: ch.id }), ch.text)),
      h('button', { type: 'submit', class: 'small primary' }, t('Answer')),
    );
  }
}

function statusText(s) {
  const key = { draft: 'draft', launched: 'open', ended: 'ended' }[s];
  return key ? t(key) : s;
}

function countdown(endsAt) {
  const s = Math.max(0, Math.round((endsAt - Date.now()) / 1000));
  return t('{time} left', { time: `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}` });
}

/** Bars for `{total_votes, options: [{label, votes}], answers: [{text}]}`. */
function resultBars(r) {
  const total = Math.max(1, r.total_votes || 0);
  const out = [h('div', { class: 'hint' }, t(r.total_votes === 1 ? '{n} vote' : '{n} votes', { n: r.total_votes || 0 }))];
  for (const o of r.options || []) {
    const pct = Math.round((100 * (o.votes || 0)) / total);
    out.push(
      h(
        'div',
        { class: 'bar-row', dataset: { id: o.id, votes: String(o.votes || 0) } },
        h('span', { class: 'label' }, o.label),
        h('span', { class: 'bar' }, h('span', { class: 'fill', style: `width:${pct}%` })),
        h('span', { class: 'count' }, String(o.votes || 0)),
      ),
    );
  }
  for (const a of r.answers || []) out.push(h('div', { class: 'free-answer' }, a.participant_name ? `${a.participant_name}: ` : '', a.text));
  return out;
}

/** Per question: each choice with its count, the correct ones marked. */
function quizResults(r) {
  return (r.questions || []).map((q) =>
    h(
      'div',
      { class: 'quiz-result' },
      h('div', {}, t('{question} ({n} answered)', { question: q.question, n: q.voted })),
      (q.votes || []).map((c) => h('div', { class: `bar-row${c.correct ? ' correct' : ''}` }, h('span', { class: 'label' }, `${c.correct ? '✓ ' : ''}${c.text}`), h('span', { class: 'count' }, String(c.voted)))),
    ),
  );
}
