// Collaboration in the room (docs/signaling.md "Collaboration"): the side
// panel's tabs (Chat, Q&A, Polls), raised hands and reactions. Routes the
// collaboration events to chat.js, qa.js, polls.js and slides.js (a
// presented library file); main.js owns the tiles
// and asks here for hand positions.

import { Chat } from './chat.js';
import { QA } from './qa.js';
import { Polls } from './polls.js';
import { Slides } from './slides.js';
import { h } from './ui.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

const REACTIONS = ['👍', '👏', '😂', '❤️', '🎉'];

export class Collab {
  /**
   * `send(msg)` sends over signaling; `notify(text)` shows a notice;
   * `onHands()` re-renders the tiles; `onReaction(participantId, emoji)` animates one.
   */
  constructor({ send, notify, onHands, onReaction }) {
    this.send = send;
    this.notify = notify;
    this.onHands = onHands;
    this.onReaction = onReaction;
    this.selfId = null;
    this.permissions = {};
    this.settings = {};
    /** [{participant_id, position, raised_at}] in queue order. */
    this.hands = [];
    /** The running recording ({id, started_at, started_by}) or null. */
    this.recording = null;
    this.tab = 'chat';
    this.chat = new Chat({ send, onNew: () => this.unread('chat') });
    this.qa = new QA({ send });
    this.polls = new Polls({ send, onNew: () => this.unread('polls') });
    this.slides = new Slides({ send });
    for (const b of document.querySelectorAll('#side .tabs button')) {
      b.addEventListener('click', () => this.showTab(b.dataset.tab));
    }
    $('ctl-hand').addEventListener('click', () => (this.myHand() ? this.lowerHand() : this.raiseHand()));
    $('ctl-panel').addEventListener('click', () => this.togglePanel());
    $('ctl-record').addEventListener('click', () => (this.recording ? this.stopRecording() : this.startRecording()));
    $('ctl-bookmark').addEventListener('click', () => this.bookmark(''));
    $('ctl-reactions').replaceChildren(
      ...REACTIONS.map((e) =>
        h('button', { type: 'button', class: 'reaction-btn', title: t('React {emoji}', { emoji: e }), 'aria-label': t('React {emoji}', { emoji: e }), dataset: { emoji: e }, onclick: () => this.react(e) }, e),
      ),
    );
  }

  /** After `joined`: what the room allows and the role may do. */
  onJoined(joined) {
    this.selfId = joined.participant.id;
    this.permissions = joined.permissions || {};
    this.settings = (joined.room && joined.room.settings) || {};
    const may = (p) => this.permissions[p] === true;
    const on = (s) => this.settings[s] === true;
    this.chat.configure({
      selfId: this.selfId,
      enabled: on('chat_enabled'),
      allowed: may('chat'),
      reactions: on('chat_reactions_enabled'),
    });
    this.qa.configure({ selfId: this.selfId, moderator: may('manage_qa') });
    this.polls.configure({ manager: may('manage_polls') });
    $('tab-qa').hidden = !on('qa_enabled');
    if (this.tab === 'qa' && !on('qa_enabled')) this.showTab('chat');
    $('ctl-hand').hidden = !(on('raise_hand_enabled') && may('raise_hand'));
    $('ctl-reactions').hidden = !(on('room_reactions_enabled') && may('emoji_reactions'));
    this.renderHand();
    this.renderRecording();
    this.slides.configure(this.permissions);
  }

  /** Handles a collaboration event; false when `m` is not one. */
  handle(m) {
    switch (m.type) {
      case 'collab_state':
        this.chat.reset(m.chat, m.chat_reactions);
        this.qa.reset(m.questions);
        this.polls.reset(m.polls, m.quizzes);
        this.setHands(m.hands);
        this.setRecording(m.recording || null);
        this.slides.show(m.presentation);
        return true;
      case 'presentation':
        this.slides.show(m.presentation);
        return true;
      case 'library_files':
        this.slides.listFiles(m.files);
        return true;
      case 'recording_started':
        this.setRecording(m.recording);
        this.notify(t('Recording started'));
        return true;
      case 'recording_stopped':
        this.setRecording(null);
        this.notify(m.reason === 'insufficient_storage' ? t('Recording stopped: the server is out of disk space') : t('Recording stopped'));
        return true;
      case 'recording_bookmarked':
        this.notify(t('Bookmark added: {name}', { name: m.bookmark.name }));
        return true;
      case 'chat_message':
        this.chat.add(m.message, m.private);
        return true;
      case 'chat_reactions':
        this.chat.setReactions(m.message_id, m.reactions);
        return true;
      case 'chat_cleared':
        this.chat.clear(m.session_id);
        return true;
      case 'hands':
        this.setHands(m.raised);
        if (m.changed === this.selfId && m.by && m.by !== this.selfId && !this.myHand()) {
          this.notify(t('A moderator lowered your hand.'));
        }
        return true;
      case 'reaction':
        this.onReaction(m.participant_id, m.emoji);
        return true;
      case 'question_created':
      case 'question_updated':
        this.qa.upsert(m.question);
        if (m.type === 'question_created') this.unread('qa');
        return true;
      case 'question_deleted':
        this.qa.remove(m.question_id);
        return true;
      case 'questions_cleared':
        this.qa.clear(m.session_id);
        return true;
      case 'message':
        this.notify(t('Message: {text}', { text: typeof m.content === 'string' ? m.content : JSON.stringify(m.content) }));
        return true;
      default:
        return this.polls.handle(m);
    }
  }

  // ---- hands and reactions ---------------------------------------------------

  setHands(raised) {
    this.hands = Array.isArray(raised) ? raised : [];
    this.renderHand();
    this.onHands();
  }

  /** The queue position of `participantId`'s raised hand, or null. */
  handPosition(participantId) {
    const hand = this.hands.find((x) => x.participant_id === participantId);
    return hand ? hand.position : null;
  }

  myHand() {
    return this.handPosition(this.selfId);
  }

  raiseHand() {
    return this.send({ type: 'raise_hand' });
  }

  lowerHand(participantId = null) {
    return this.send({ type: 'lower_hand', participant_id: participantId || null });
  }

  react(emoji) {
    return this.send({ type: 'reaction', emoji: String(emoji) });
  }

  renderHand() {
    const b = $('ctl-hand');
    const pos = this.myHand();
    b.textContent = pos ? t('Lower hand (#{n})', { n: pos }) : t('Raise hand');
    b.setAttribute('aria-pressed', pos ? 'true' : 'false');
    b.classList.toggle('raised', Boolean(pos));
  }

  // ---- recording ---------------------------------------------------------------

  setRecording(rec) {
    this.recording = rec && rec.id ? rec : null;
    this.renderRecording();
  }

  startRecording() {
    return this.send({ type: 'recording_start' });
  }

  stopRecording() {
    return this.send({ type: 'recording_stop' });
  }

  bookmark(name) {
    return this.send({ type: 'recording_bookmark', name: String(name || '') });
  }

  renderRecording() {
    const may = this.permissions.recording === true && this.settings.recordings_enabled === true;
    $('recording-indicator').hidden = !this.recording;
    const b = $('ctl-record');
    b.hidden = !may;
    b.textContent = this.recording ? t('Stop recording') : t('Record');
    // The server cannot decode an end-to-end encrypted room (docs/e2ee.md).
    const e2ee = this.settings.e2ee_enabled === true && !this.recording;
    b.disabled = e2ee;
    b.title = e2ee ? t('Recording is not available: this room is end-to-end encrypted.') : '';
    if (e2ee) b.textContent = t('Recording unavailable (end-to-end encrypted)');
    b.setAttribute('aria-pressed', this.recording ? 'true' : 'false');
    $('ctl-bookmark').hidden = !(may && this.recording);
  }

  // ---- the side panel --------------------------------------------------------

  showTab(tab) {
    this.tab = tab;
    for (const b of document.querySelectorAll('#side .tabs button')) {
      const active = b.dataset.tab === tab;
      b.setAttribute('aria-selected', active ? 'true' : 'false');
      b.classList.toggle('active', active);
      if (active) b.querySelector('.unread').hidden = true;
    }
    for (const t of ['chat', 'qa', 'polls', 'breakouts', 'people']) $(`pane-${t}`).hidden = t !== tab;
  }

  unread(tab) {
    const visible = !$('side').hidden && this.tab === tab;
    if (!visible) $(`tab-${tab}`).querySelector('.unread').hidden = false;
  }

  togglePanel() {
    const side = $('side');
    side.hidden = !side.hidden;
    $('ctl-panel').setAttribute('aria-pressed', side.hidden ? 'false' : 'true');
    if (!side.hidden) this.showTab(this.tab);
  }
}
