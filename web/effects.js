// Background blur and noise suppression (docs/browser-client.md "Background
// blur and noise suppression"), both off by default. Noise suppression is the
// browser's own (`noiseSuppression` on the live microphone track). The blur
// has no person segmentation (no model ships offline): the frame is blurred
// except an ellipse in the middle, where a person in front of a camera
// usually is. The processed camera is sent on the same sender
// (`replaceTrack`, no renegotiation). Methods of the app (main.js mixes
// them into `App`).

import * as media from './media.js';
import { t } from './i18n.js';

/** Paints `source` (w x h) blurred, with a sharp ellipse in the middle. */
function paint(ctx, source, w, h) {
  ctx.filter = `blur(${Math.max(4, Math.round(w / 60))}px)`;
  ctx.drawImage(source, 0, 0, w, h);
  ctx.filter = 'none';
  ctx.save();
  ctx.beginPath();
  ctx.ellipse(w / 2, h * 0.55, w * 0.2, h * 0.45, 0, 0, Math.PI * 2);
  ctx.clip();
  ctx.drawImage(source, 0, 0, w, h);
  ctx.restore();
}

/** Whether this browser has the insertable-streams API (Chromium). */
function insertable() {
  return (
    typeof MediaStreamTrackProcessor === 'function' &&
    typeof MediaStreamTrackGenerator === 'function' &&
    typeof OffscreenCanvas === 'function' &&
    typeof VideoFrame === 'function'
  );
}

/**
 * The blurred version of camera `track`: `{track, stop, how}`, `how` being
 * `insertable-streams` (frames in, frames out) or `canvas` (a video element
 * painted onto a canvas that is captured).
 */
export function blurTrack(track) {
  if (insertable()) {
    const processor = new MediaStreamTrackProcessor({ track });
    const generator = new MediaStreamTrackGenerator({ kind: 'video' });
    let canvas = null;
    let ctx = null;
    const transform = new TransformStream({
      transform(frame, controller) {
        const w = frame.displayWidth;
        const h = frame.displayHeight;
        if (!canvas || canvas.width !== w || canvas.height !== h) {
          canvas = new OffscreenCanvas(w, h);
          ctx = canvas.getContext('2d');
        }
        paint(ctx, frame, w, h);
        const out = new VideoFrame(canvas, { timestamp: frame.timestamp });
        frame.close();
        controller.enqueue(out);
      },
    });
    const abort = new AbortController();
    processor.readable
      .pipeThrough(transform, { signal: abort.signal })
      .pipeTo(generator.writable, { signal: abort.signal })
      .catch(() => {});
    return {
      track: generator,
      how: 'insertable-streams',
      stop: () => {
        abort.abort();
        generator.stop();
      },
    };
  }
  const s = track.getSettings();
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  video.play().catch(() => {});
  const canvas = document.createElement('canvas');
  canvas.width = s.width || 640;
  canvas.height = s.height || 480;
  const ctx = canvas.getContext('2d');
  const fps = s.frameRate || 30;
  const out = canvas.captureStream(fps).getVideoTracks()[0];
  // A timer, not requestAnimationFrame: it keeps running in a hidden tab.
  const timer = setInterval(() => {
    if (video.readyState < 2) return;
    if (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
    }
    paint(ctx, video, canvas.width, canvas.height);
  }, 1000 / fps);
  return {
    track: out,
    how: 'canvas',
    stop: () => {
      clearInterval(timer);
      out.stop();
      video.srcObject = null;
    },
  };
}

/** `localStorage` flag `key` ('on' / 'off'), false when unset or unavailable. */
function stored(key) {
  try {
    return localStorage.getItem(key) === 'on';
  } catch {
    return false;
  }
}

function store(key, on) {
  try {
    localStorage.setItem(key, on ? 'on' : 'off');
  } catch {
    /* private mode */
  }
}

export const effectMethods = {

  bindEffects() {
    /** What the user chose (off unless chosen before, in this browser). */
    this.effects = { blur: stored('convene.blur'), noise: stored('convene.noise') };
    /** The running blur: `{source, track, stop, how}` or null. */
    this.blur = null;
    const blur = document.getElementById('set-blur');
    const noise = document.getElementById('set-noise');
    blur.checked = this.effects.blur;
    noise.checked = this.effects.noise;
    blur.addEventListener('change', () => this.setBlur(blur.checked));
    noise.addEventListener('change', () => this.setNoiseSuppression(noise.checked));
    document.getElementById('set-blur-row').hidden = !insertable() && typeof HTMLCanvasElement.prototype.captureStream !== 'function';
  },

  /**
   * What goes out for `source`: the local track, or for the camera with
   * blur on, the blurred version of it (made once per camera track).
   */
  sendable(source) {
    const track = this.local[source];
    if (source !== 'camera' || !track || !this.effects.blur) return track;
    if (this.blur && this.blur.source === track) return this.blur.track;
    this.stopBlur();
    this.blur = { source: track, ...blurTrack(track) };
    this.note(`blur:${this.blur.how}`);
    return this.blur.track;
  },

  /**
   * A new capture of the microphone with the current choice, sent on the
   * same sender. The old capture is stopped first: Chromium keeps a device's
   * audio processing while a track of it is open.
   */
  async reopenMicrophone() {
    const old = this.local.microphone;
    old.stop();
    let track = null;
    try {
      track = await this.openSource('microphone');
    } catch (e) {
      this.notify(media.captureErrorText(e, 'microphone'));
    }
    if (this.local.microphone !== old) return;
    this.local.microphone = track;
    if (track) track.enabled = old.enabled;
    if (this.peer) await this.peer.replaceSource('microphone', track);
    this.note('device:microphone');
  },

  stopBlur() {
    if (this.blur) this.blur.stop();
    this.blur = null;
  },

  /** Turns the blur on or off; a camera being sent switches on the same sender. */
  async setBlur(on) {
    this.effects.blur = on;
    store('convene.blur', on);
    document.getElementById('set-blur').checked = on;
    const out = this.sendable('camera');
    if (this.peer && this.want.camera && out) await this.peer.replaceSource('camera', out);
    if (!on) this.stopBlur();
    this.note(`effect:blur:${on ? 'on' : 'off'}`);
    this.renderTiles();
  },

  /**
   * Turns the browser's noise suppression on or off on the live microphone
   * track; a browser that cannot change it live gets a new capture with it,
   * sent on the same sender.
   */
  async setNoiseSuppression(on) {
    this.effects.noise = on;
    store('convene.noise', on);
    document.getElementById('set-noise').checked = on;
    const track = this.local.microphone;
    if (track) {
      try {
        await track.applyConstraints({ ...track.getConstraints(), noiseSuppression: on });
      } catch (e) {
        console.warn('convene: noiseSuppression not applied live', e);
      }
      if (track.getSettings().noiseSuppression !== on && this.state === 'joined') await this.reopenMicrophone();
      const now = this.local.microphone && this.local.microphone.getSettings().noiseSuppression;
      if (now !== undefined && now !== on) this.notify(t('This browser cannot change noise suppression.'));
    }
    this.note(`effect:noise:${on ? 'on' : 'off'}`);
  },
};
