// Local capture: camera, microphone and screen, and the device lists.

import { t } from './i18n.js';

/** Opens the camera (or null when it is not available). */
export async function openCamera(deviceId) {
  const video = deviceId
    ? { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } }
    : { width: { ideal: 1280 }, height: { ideal: 720 } };
  const s = await navigator.mediaDevices.getUserMedia({ video });
  return s.getVideoTracks()[0] || null;
}

/**
 * Opens the microphone (or null when it is not available), with the
 * browser's noise suppression only when asked for (effects.js).
 */
export async function openMicrophone(deviceId, noiseSuppression = false) {
  const audio = { noiseSuppression };
  if (deviceId) audio.deviceId = { exact: deviceId };
  const s = await navigator.mediaDevices.getUserMedia({ audio });
  return s.getAudioTracks()[0] || null;
}

/** Asks for a screen, a window or a tab. */
export async function openScreen() {
  const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  return s.getVideoTracks()[0] || null;
}

/** Whether audio output can be chosen (`HTMLMediaElement.setSinkId`). */
export function canChooseSpeaker() {
  return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
}

/** Devices: `{cameras: [{id, label}], microphones: [...], speakers: [...]}`. */
export async function listDevices() {
  const out = { cameras: [], microphones: [], speakers: [] };
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return out;
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const d of devices) {
    const entry = { id: d.deviceId, label: d.label };
    if (d.kind === 'videoinput') out.cameras.push(entry);
    if (d.kind === 'audioinput') out.microphones.push(entry);
    if (d.kind === 'audiooutput') out.speakers.push(entry);
  }
  return out;
}

/** Whether this page may capture media at all (secure origin, API present). */
export function canCapture() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

/** What each source is called in messages (an i18n key). */
export const SOURCE_TEXT = { microphone: 'microphone', camera: 'camera', screen: 'screen share' };

/** A short human reason for a failed getUserMedia / getDisplayMedia. */
export function captureErrorText(err, what) {
  switch (err && err.name) {
    case 'NotAllowedError':
      return t('Permission to use the {what} was denied.', { what: t(what) });
    case 'NotFoundError':
    case 'OverconstrainedError':
      return t('No {what} was found.', { what: t(what) });
    case 'NotReadableError':
      return t('The {what} is in use by another application.', { what: t(what) });
    default:
      return t('The {what} could not be opened.', { what: t(what) });
  }
}
