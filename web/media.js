// Local capture: camera, microphone and screen, and the device lists.

/** Opens the camera (or null when it is not available). */
export async function openCamera(deviceId) {
  const video = deviceId
    ? { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } }
    : { width: { ideal: 1280 }, height: { ideal: 720 } };
  const s = await navigator.mediaDevices.getUserMedia({ video });
  return s.getVideoTracks()[0] || null;
}

/** Opens the microphone (or null when it is not available). */
export async function openMicrophone(deviceId) {
  const audio = deviceId ? { deviceId: { exact: deviceId } } : true;
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

/** A short human reason for a failed getUserMedia / getDisplayMedia. */
export function captureErrorText(err, what) {
  switch (err && err.name) {
    case 'NotAllowedError':
      return `Permission to use the ${what} was denied.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No ${what} was found.`;
    case 'NotReadableError':
      return `The ${what} is in use by another application.`;
    default:
      return `The ${what} could not be opened.`;
  }
}
