// The encoded-frame transforms of end-to-end encryption (docs/e2ee.md), in
// a worker: AES-GCM over each frame with the bytes the SFU and the
// depacketizer read left in clear (VP8: 10 of a keyframe, 3 of a delta
// frame; Opus: the TOC byte) and authenticated, then a trailer of the
// 12-byte IV and the 1-byte key index. Frames that do not decrypt are
// dropped, never passed to the decoder.

/** index -> CryptoKey */
let keys = new Map();
let sendIndex = null;
const TRAILER = 13;
/** Frames handled so far (reported to the page about once a second). */
const counts = { encrypted: 0, decrypted: 0, failed: 0, unkeyed: 0 };
setInterval(() => self.postMessage({ type: 'counts', counts }), 1000);
const TAG = 16;

/** How many leading bytes of `frame` stay readable. */
function clearBytes(kind, frame, data) {
  if (kind === 'audio') return Math.min(1, data.length);
  // VP8 payload header: bit 0 of the first byte is 0 on a keyframe.
  const key = frame.type ? frame.type === 'key' : data.length > 0 && (data[0] & 1) === 0;
  return Math.min(key ? 10 : 3, data.length);
}

async function encrypt(kind, frame, controller) {
  const key = sendIndex === null ? null : keys.get(sendIndex);
  if (!key) {
    counts.unkeyed += 1;
    return; // no key: nothing leaves in clear
  }
  const data = new Uint8Array(frame.data);
  const clear = clearBytes(kind, frame, data);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: data.subarray(0, clear) }, key, data.subarray(clear)),
  );
  const out = new Uint8Array(clear + sealed.length + TRAILER);
  out.set(data.subarray(0, clear), 0);
  out.set(sealed, clear);
  out.set(iv, clear + sealed.length);
  out[out.length - 1] = sendIndex;
  frame.data = out.buffer;
  controller.enqueue(frame);
  counts.encrypted += 1;
}

function report(id, state, last) {
  if (last.state === state) return;
  last.state = state;
  self.postMessage({ type: 'status', id, state });
}

async function decrypt(kind, id, last, frame, controller) {
  const data = new Uint8Array(frame.data);
  if (data.length === 0) return controller.enqueue(frame);
  const clear = clearBytes(kind, frame, data);
  const key = data.length >= clear + TAG + TRAILER ? keys.get(data[data.length - 1]) : undefined;
  if (!key) {
    counts.failed += 1;
    return report(id, 'fail', last);
  }
  try {
    const iv = data.subarray(data.length - TRAILER, data.length - 1);
    const plain = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv, additionalData: data.subarray(0, clear) },
        key,
        data.subarray(clear, data.length - TRAILER),
      ),
    );
    const out = new Uint8Array(clear + plain.length);
    out.set(data.subarray(0, clear), 0);
    out.set(plain, clear);
    frame.data = out.buffer;
    controller.enqueue(frame);
    counts.decrypted += 1;
    report(id, 'ok', last);
  } catch {
    counts.failed += 1;
    report(id, 'fail', last);
  }
}

function pipe({ readable, writable, side, kind, id }) {
  const last = { state: null };
  const transform = side === 'send'
    ? (frame, controller) => encrypt(kind, frame, controller)
    : (frame, controller) => decrypt(kind, id, last, frame, controller);
  readable.pipeThrough(new TransformStream({ transform })).pipeTo(writable).catch(() => {});
}

self.onmessage = (ev) => {
  const m = ev.data;
  if (m.type === 'keys') {
    keys = new Map(m.keys);
    sendIndex = m.sendIndex;
  } else if (m.type === 'stream') {
    pipe(m);
  }
};

// RTCRtpScriptTransform (Chromium, Firefox, Safari).
self.onrtctransform = (ev) => {
  const tr = ev.transformer;
  pipe({ readable: tr.readable, writable: tr.writable, ...tr.options });
};
