// Layouts and pages in the call (docs/browser-client.md "Layouts and
// pages"): the room-wide layout a moderator or the API sets (`layout`
// events, `joined.room.settings.layout_mode`), the user's own speaker-view
// toggle on top, the page controls, and which received videos are paused at
// the server because their tiles are not shown. Methods of the app (main.js
// mixes them into `App`).

import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

/** Tiles per page: `?page_size=N` (1..49), else what fits the window. */
export function pageSizeFor(params, width) {
  const asked = Number.parseInt(params.get('page_size') || '', 10);
  if (asked >= 1 && asked <= 49) return asked;
  return width < 600 ? 4 : width < 1000 ? 9 : 16;
}

export const layoutMethods = {

  bindLayout() {
    $('ctl-layout').addEventListener('click', () => this.toggleLayout());
    $('page-prev').addEventListener('click', () => this.grid.setPage(this.grid.page - 1));
    $('page-next').addEventListener('click', () => this.grid.setPage(this.grid.page + 1));
    $('ctl-room-layout').addEventListener('change', (ev) => {
      this.setRoomLayout(ev.target.value);
      // Shows the room's layout until the server's `layout` event says otherwise.
      ev.target.value = this.roomLayout || 'grid';
    });
    this.grid.setPageSize(pageSizeFor(new URLSearchParams(location.search), window.innerWidth));
    /** Track ids whose video the server holds back (`pause`). */
    this.pausedTracks = new Set();
  },

  /** After `joined`: the room's layout, and the control for those who may set it. */
  layoutJoined(settings) {
    $('ctl-room-layout-row').hidden = !this.permissions.pin_tiles;
    // A resume starts with every subscription flowing again.
    this.pausedTracks = new Set();
    this.applyRoomLayout((settings || {}).layout_mode || 'grid');
  },

  /** The room-wide layout (`layout` event or `joined`); a pin stays on top. */
  applyRoomLayout(mode, by) {
    this.roomLayout = mode;
    $('ctl-room-layout').value = mode;
    this.grid.setMode(mode);
    this.showLayoutToggle();
    if (by !== undefined && by !== this.participantId) {
      const name = by && this.participants.get(by) ? this.participants.get(by).name : null;
      const what = t(mode === 'speaker' ? 'Speaker view' : mode === 'presentation' ? 'Presentation' : 'Grid');
      this.notify(name ? t('{name} set the layout to {mode}', { name, mode: what }) : t('The layout is now {mode}', { mode: what }));
    }
  },

  /** A moderator sets the layout for everyone (`set_layout`). */
  setRoomLayout(mode) {
    return this.send({ type: 'set_layout', mode });
  },

  /** The user's own toggle: grid, or one large tile. */
  toggleLayout() {
    this.grid.setMode(this.grid.mode === 'grid' ? 'speaker' : 'grid');
    this.showLayoutToggle();
  },

  showLayoutToggle() {
    $('ctl-layout').setAttribute('aria-pressed', this.grid.mode === 'grid' ? 'false' : 'true');
  },

  /** The page controls, and `pause` for the videos of tiles not shown. */
  afterLayout() {
    const pages = this.grid.pages();
    $('pager').hidden = pages < 2;
    $('page-label').textContent = t('Page {n} of {pages}', { n: this.grid.page + 1, pages });
    $('page-prev').disabled = this.grid.page === 0;
    $('page-next').disabled = this.grid.page >= pages - 1;
    if (!this.remote || this.state !== 'joined') return;
    for (const r of this.remote) {
      if (r.kind !== 'video') continue;
      const key = r.source === 'screen' ? `${r.participant_id}:screen` : r.participant_id;
      const hide = !this.grid.visible.has(key);
      if (hide === this.pausedTracks.has(r.track_id)) continue;
      if (hide) this.pausedTracks.add(r.track_id);
      else this.pausedTracks.delete(r.track_id);
      this.send({ type: 'pause', track_id: r.track_id, paused: hide });
    }
  },
};
