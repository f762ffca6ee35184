// The call's rendering: own controls, the tiles (names, media, hands,
// moderator actions), the layouts and the simulcast layers they need, and the
// People tab. Methods of the app (main.js mixes them into `App`).

import * as ui from './ui.js';
import { renderPeople } from './people.js';
import { t } from './i18n.js';

export const viewMethods = {

  renderControls() {
    const broadcast = this.permissions.broadcast !== false;
    const screen = this.permissions.screenshare !== false && this.room.screenshare_enabled !== false;
    const no = t('Your role may not do this in this room');
    ui.setToggle('ctl-mic', this.want.microphone, { disabled: !broadcast, title: broadcast ? '' : no });
    ui.setToggle('ctl-cam', this.want.camera, { disabled: !broadcast, title: broadcast ? '' : no });
    ui.setToggle('ctl-screen', Boolean(this.local.screen), { disabled: !screen, title: screen ? '' : no });
  },

  renderTiles() {
    if (!this.grid || !this.participantId || this.state === 'error' || this.state === 'left') return;
    const keep = new Set();
    // Own tile; the room display has none (it would take a cell of the grid).
    if (!this.display) {
      const self = this.grid.tile(this.participantId, { local: true });
      keep.add(this.participantId);
      self.setName(t('{name} (you)', { name: this.name }));
      // What the others see (blurred when the blur is on).
      self.setVideo(this.want.camera ? this.sendable('camera') : null);
      self.el.classList.toggle('mirrored', this.mirror !== false);
      self.setMicMuted(!this.want.microphone);
      self.setQuality(this.myQuality);
      self.setHand(this.collab.handPosition(this.participantId));
    }
    if (this.local.screen) {
      const key = `${this.participantId}:screen`;
      this.grid.tile(key, { local: true, screen: true }).setVideo(this.local.screen);
      this.grid.get(key).setName(t('Your screen'));
      keep.add(key);
    }
    // Remote participants, with what the peer connection receives for them.
    const byParticipant = new Map();
    for (const r of this.remote) {
      const m = byParticipant.get(r.participant_id) || {};
      m[r.source] = r.track;
      byParticipant.set(r.participant_id, m);
    }
    for (const p of this.participants.values()) {
      const got = byParticipant.get(p.id) || {};
      const tile = this.grid.tile(p.id);
      keep.add(p.id);
      tile.setName(p.name);
      const mic = p.tracks.find((t) => t.source === 'microphone');
      const cam = p.tracks.find((t) => t.source === 'camera');
      tile.setMicMuted(!mic || mic.muted);
      tile.setVideoMuted(Boolean(cam && cam.muted));
      tile.setVideo(got.camera || null);
      tile.setAudio(got.microphone || null, () => this.audioBlocked());
      if (this.sinkId) tile.setSink(this.sinkId);
      tile.setQuality(p.quality);
      const hand = this.collab.handPosition(p.id);
      tile.setHand(hand);
      tile.setActions({
        mute: this.permissions.mute_others && mic && !mic.muted ? () => this.muteParticipant(p.id, 'microphone') : null,
        remove: this.permissions.remove_participants ? () => this.removeParticipant(p.id) : null,
        lowerHand: this.permissions.mute_others && hand ? () => this.collab.lowerHand(p.id) : null,
      });
      if (got.screen) {
        const key = `${p.id}:screen`;
        const st = this.grid.tile(key, { screen: true });
        st.setName(t('{name} (screen)', { name: p.name }));
        st.setVideo(got.screen);
        keep.add(key);
      }
    }
    for (const key of [...this.grid.tiles.keys()]) if (!keep.has(key)) this.grid.remove(key);
    this.collab.chat.setPeople([...this.participants.values()].map((p) => ({ id: p.id, name: p.name })));
    this.renderPeople();
    this.grid.setSpeakers(this.speakers);
    this.requestLayers();
    this.afterLayout();
    if (this.e2ee) this.e2ee.render();
  },

  /** The People tab: you and everyone else, with state and moderator actions. */
  renderPeople() {
    const state = (track) => (!track ? 'off' : track.muted ? 'muted' : 'on');
    const people = [];
    if (!this.display) {
      people.push({
        id: this.participantId,
        name: this.name,
        role: this.me ? this.me.role : '',
        self: true,
        hand: this.collab.handPosition(this.participantId),
        mic: this.want.microphone ? 'on' : 'off',
        cam: this.want.camera ? 'on' : 'off',
        actions: {},
      });
    }
    for (const p of this.participants.values()) {
      const mic = p.tracks.find((t) => t.source === 'microphone');
      const cam = p.tracks.find((t) => t.source === 'camera');
      const hand = this.collab.handPosition(p.id);
      people.push({
        id: p.id,
        name: p.name,
        role: p.role,
        self: false,
        hand,
        mic: state(mic),
        cam: state(cam),
        actions: {
          mute: this.permissions.mute_others && mic && !mic.muted ? () => this.muteParticipant(p.id, 'microphone') : null,
          remove: this.permissions.remove_participants ? () => this.removeParticipant(p.id) : null,
          lowerHand: this.permissions.mute_others && hand ? () => this.collab.lowerHand(p.id) : null,
        },
      });
    }
    renderPeople(people);
  },

  /** Smaller tiles need smaller simulcast layers: ask the server for at most that. */
  requestLayers() {
    if (!this.remote) return;
    const n = this.grid.visible.size || this.grid.tiles.size;
    const even = n <= 4 ? 'f' : n <= 9 ? 'h' : 'q';
    // With one large tile: the full layer for it, the lowest for the strip.
    const focus = this.grid.focus;
    this.layers = this.layers || new Map();
    for (const r of this.remote) {
      const layer = focus ? (focus === r.participant_id ? 'f' : 'q') : even;
      // The server starts every subscription at the full layer.
      if (r.source !== 'camera' || (this.layers.get(r.track_id) || 'f') === layer) continue;
      this.layers.set(r.track_id, layer);
      this.send({ type: 'layer', track_id: r.track_id, max_layer: layer });
    }
  },
};
