// Full screen and picture-in-picture of a tile (docs/browser-client.md
// "Full screen and picture-in-picture"), and the room setting
// `auto_pip_enabled`: picture-in-picture of the large tile or the active
// speaker opens by itself when the user switches away from the tab, where
// the browser allows it. Methods of the app (main.js mixes them into `App`).

import { t } from './i18n.js';

/** A short reason for a refused Fullscreen / Picture-in-Picture request. */
function why(e) {
  return (e && (e.message || e.name)) || String(e);
}

export const pipMethods = {

  bindPip() {
    this.grid.onFullscreen = (key) => this.toggleFullscreen(key);
    this.grid.onPip = (key) => this.togglePip(key);
    /** Whether the open picture-in-picture window was opened by auto PiP. */
    this.autoPipOpen = false;
    document.addEventListener('visibilitychange', () => this.onVisibility());
  },

  /** Shows tile `key` full screen, or leaves full screen when it is. */
  async toggleFullscreen(key) {
    const tile = this.grid.get(key);
    if (!tile) return;
    try {
      if (document.fullscreenElement === tile.el) {
        await document.exitFullscreen();
      } else {
        if (!document.fullscreenEnabled) throw new Error(t('this browser does not allow it here'));
        await tile.el.requestFullscreen();
      }
      this.note(`fullscreen:${document.fullscreenElement ? 'on' : 'off'}`);
    } catch (e) {
      this.note('fullscreen:refused');
      this.notify(t('Full screen is not available: {why}', { why: why(e) }));
    }
  },

  /** Opens tile `key`'s video in picture-in-picture, or closes it when it is. */
  async togglePip(key) {
    const tile = this.grid.get(key);
    if (!tile) return;
    try {
      if (document.pictureInPictureElement === tile.video) {
        await document.exitPictureInPicture();
      } else {
        await this.openPip(tile);
        this.autoPipOpen = false;
      }
      this.note(`pip:${document.pictureInPictureElement ? 'on' : 'off'}`);
    } catch (e) {
      this.note(`pip:refused:${(e && e.name) || 'Error'}`);
      this.notify(t('Picture-in-picture is not available: {why}', { why: why(e) }));
    }
  },

  async openPip(tile) {
    if (!document.pictureInPictureEnabled) throw new Error(t('this browser does not allow it here'));
    if (!tile.videoTrack || tile.video.hidden) throw new Error(t('there is no video to show'));
    // A hidden tile (another page) still has its video element: show it.
    await tile.video.requestPictureInPicture();
  },

  /** The room's setting turns auto PiP on (`joined.room.settings`). */
  pipJoined(settings) {
    this.autoPip = Boolean(settings && settings.auto_pip_enabled);
    // Chromium opens picture-in-picture for a video-conferencing tab the
    // user leaves when the page handles this media session action.
    if (!('mediaSession' in navigator)) return;
    try {
      navigator.mediaSession.setActionHandler('enterpictureinpicture', this.autoPip ? () => this.enterAutoPip('media-session') : null);
    } catch {
      /* this browser has no automatic picture-in-picture */
    }
  },

  /** The tile auto PiP shows: the large one, else the active speaker, else the first with video. */
  autoPipTile() {
    const withVideo = (key) => {
      const tile = key && this.grid.get(key);
      return tile && tile.videoTrack && !tile.el.classList.contains('local') ? tile : null;
    };
    return (
      withVideo(this.grid.focus) ||
      withVideo(this.speakers[0]) ||
      [...this.grid.tiles.values()].find((tile) => withVideo(tile.key)) ||
      null
    );
  },

  async enterAutoPip(how) {
    if (!this.autoPip || this.state !== 'joined' || document.pictureInPictureElement) return;
    const tile = this.autoPipTile();
    if (!tile) return;
    try {
      await this.openPip(tile);
      this.autoPipOpen = true;
      this.note(`pip:auto:${how}`);
    } catch (e) {
      // Browsers without automatic PiP ask for a user gesture: nothing to show.
      this.note(`pip:auto-refused:${(e && e.name) || 'Error'}`);
    }
  },

  /** Leaving the tab opens auto PiP; coming back closes the window it opened. */
  onVisibility() {
    if (document.visibilityState === 'hidden') {
      this.enterAutoPip('hidden');
    } else if (this.autoPipOpen && document.pictureInPictureElement) {
      this.autoPipOpen = false;
      document.exitPictureInPicture().catch(() => {});
      this.note('pip:auto-closed');
    }
  },
};
