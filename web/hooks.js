// Test and automation hooks: `window.convene` (docs/browser-client.md,
// "Test hooks"), a view of the app's state and its actions.

import * as media from './media.js';
import { language, missing } from './i18n.js';

/** The `window.convene` object for `app`. */
export function hooksFor(app) {
  return {
    get state() {
      return app.state;
    },
    get participantId() {
      return app.participantId;
    },
    /** The breakout room we are in: `{id, name, closesIn}` (id null: the main room). */
    get breakout() {
      return app.breakouts.state();
    },
    get error() {
      return app.error;
    },
    /** The layout: `{mode, focus, pinned}` (tile keys: participant ids, `id:screen`). */
    get layout() {
      const g = app.grid;
      return { mode: g.mode, room: app.roomLayout || null, focus: g.focus, pinned: g.pinned, page: g.page, pages: g.pages(), visible: [...g.visible] };
    },
    /** Track ids whose video this page paused at the server (tiles not shown). */
    get pausedTracks() {
      return [...(app.pausedTracks || [])];
    },
    /** The tile key shown full screen / in picture-in-picture (or null), and whether auto PiP is on. */
    get fullscreen() {
      const el = document.fullscreenElement;
      return el && el.dataset ? el.dataset.key || null : null;
    },
    get pip() {
      const el = document.pictureInPictureElement;
      const tile = el && el.closest('.tile');
      return tile ? tile.dataset.key : null;
    },
    get autoPip() {
      return Boolean(app.autoPip);
    },
    /** Background blur and noise suppression: what is chosen and what is sent. */
    get effects() {
      const sender = (kind) => {
        const s = app.peer && app.peer.pc.getSenders().find((x) => x.track && x.track.kind === kind);
        return s ? s.track : null;
      };
      const cam = sender('video');
      const mic = sender('audio');
      return {
        ...app.effects,
        blurHow: app.blur ? app.blur.how : null,
        cameraTrack: app.local.camera ? app.local.camera.id : null,
        sentCameraTrack: cam ? cam.id : null,
        microphoneNoiseSuppression: app.local.microphone ? app.local.microphone.getSettings().noiseSuppression : null,
        sentNoiseSuppression: mic ? mic.getSettings().noiseSuppression : null,
        sentMicrophoneTrack: mic ? mic.id : null,
      };
    },
    setBlur: (on) => app.setBlur(on),
    setNoiseSuppression: (on) => app.setNoiseSuppression(on),
    setPage: (n) => app.grid.setPage(n),
    setRoomLayout: (mode) => app.setRoomLayout(mode),
    /** End-to-end encryption (docs/e2ee.md): `{enabled: false}` in other rooms. */
    get e2ee() {
      return app.e2ee ? app.e2ee.snapshot() : { enabled: false };
    },
    /** Gives the page the room's passphrase (an application's key; never sent to the server). */
    setE2eeKey: (passphrase) => (app.e2ee ? app.e2ee.ready(String(passphrase)) : Promise.resolve(false)),
    /** The language shown and the keys it had no translation for. */
    get i18n() {
      return { language: language(), missing: [...missing] };
    },
    /** The simulcast layer asked for each received camera track, by track id. */
    get layers() {
      return Object.fromEntries(app.layers || []);
    },
    get participants() {
      return Object.fromEntries([...app.participants].map(([id, p]) => [id, { ...p, tracks: [...p.tracks] }]));
    },
    get lobbyRequests() {
      return [...app.lobbyRequests.values()];
    },
    get pc() {
      return app.peer ? app.peer.pc : null;
    },
    get permissions() {
      return app.permissions;
    },
    get room() {
      return app.room;
    },
    get remoteTracks() {
      return app.remote.map(({ track, ...info }) => ({ ...info, trackState: track.readyState }));
    },
    get speakers() {
      return app.speakers;
    },
    get resumes() {
      return app.resumes;
    },
    get negotiation() {
      const p = app.peer;
      return p ? { lastError: p.lastError, lastRemoteOffer: p.lastRemoteOffer } : null;
    },
    get trace() {
      return [...app.trace];
    },
    get lastRefusal() {
      return app.lastRefusal;
    },
    stats: () => app.stats(),
    /** Restarts ICE on the current connection (what a network change does). */
    restartIce: () => (app.peer ? app.peer.restartIce().then(() => true) : Promise.resolve(false)),
    /** Uses another camera or microphone (`deviceId`) without renegotiating. */
    switchDevice: (source, deviceId) => app.switchDevice(source, deviceId),
    /** Cameras, microphones and speakers the browser lists. */
    devices: () => media.listDevices(),
    /** The device id of the camera / microphone being captured (or null). */
    captureDevice: (source) => {
      const t = app.local[source];
      return t && t.getSettings ? t.getSettings().deviceId || null : null;
    },
    get mirror() {
      return app.mirror !== false;
    },
    join: (name) => app.join(name),
    leave: () => app.leave(),
    admit: (id) => app.admit(id),
    reject: (id) => app.reject(id),
    muteParticipant: (id, source) => app.muteParticipant(id, source),
    removeParticipant: (id) => app.removeParticipant(id),
    toggleMicrophone: () => app.toggleMicrophone(),
    toggleCamera: () => app.toggleCamera(),
    toggleScreen: () => app.toggleScreen(),
    /** Publishes `microphone` or `camera` without the local permission check (the server decides). */
    publish: (source) => app.state === 'joined' && app.startSource(source, true).then(() => app.renderControls()),
    /** Collaboration (docs/browser-client.md): received chat, hands, polls, questions, notices. */
    get chat() {
      return app.collab.chat.messages.map((m) => ({ ...m }));
    },
    get hands() {
      return app.collab.hands.map((x) => ({ ...x }));
    },
    get polls() {
      return app.collab.polls.snapshot();
    },
    get quizzes() {
      return app.collab.polls.quizSnapshot();
    },
    get questions() {
      return app.collab.qa.snapshot();
    },
    get notices() {
      return app.notices.map((n) => ({ ...n }));
    },
    sendChat: (text, recipientId) => app.collab.chat.sendText(text, recipientId),
    /** Sends a signaling message as this page (to test the server's refusals). */
    send: (msg) => app.send(msg),
    /** The presented slide as this page shows it, or null. */
    get presentation() {
      const c = app.collab.slides.current;
      const img = document.getElementById('slide-img');
      return c && { ...c, shown: !document.getElementById('slides').hidden, loaded: img.complete && img.naturalWidth > 0 };
    },
    reactChat: (messageId, emoji) => app.collab.chat.react(messageId, emoji),
    chatReactions: () => app.collab.chat.reactions,
    raiseHand: () => app.collab.raiseHand(),
    /** The running recording ({id, started_at, started_by}) or null. */
    get recording() {
      return app.collab.recording;
    },
    startRecording: () => app.collab.startRecording(),
    stopRecording: () => app.collab.stopRecording(),
    bookmark: (name) => app.collab.bookmark(name),
    lowerHand: (id) => app.collab.lowerHand(id),
    react: (emoji) => app.collab.react(emoji),
    votePoll: (pollId, optionIds) => app.collab.polls.vote(pollId, optionIds),
    createPoll: (poll) => app.collab.polls.create(poll),
    launchPoll: (pollId) => app.collab.polls.launch(pollId),
    endPoll: (pollId) => app.collab.polls.end(pollId),
    launchQuiz: (quizId) => app.collab.polls.launchQuiz(quizId),
    endQuiz: (quizId) => app.collab.polls.endQuiz(quizId),
    answerQuiz: (quizId, questionId, choiceIds) => app.collab.polls.answerQuiz(quizId, questionId, choiceIds),
    ask: (text, anonymous) => app.collab.qa.ask(text, anonymous),
    voteQuestion: (id) => app.collab.qa.vote(id),
    /** Drops the signaling socket as a network failure would (tests reconnect). */
    dropConnection: () => app.sig && app.sig.abandon('dropped by a test'),
  };
}
