// Line plots on a canvas: one or more series over the last five minutes.
// The canvas's `data-points` attribute tells how many samples were drawn.

const COLORS = ['#1a73e8', '#e8710a', '#188038'];

/** Draws `series` (arrays of numbers, oldest first) scaled to their maximum. */
export function drawPlot(canvas, series, format = (v) => String(Math.round(v))) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  const max = Math.max(1, ...series.flat().filter(Number.isFinite));
  const n = Math.max(0, ...series.map((s) => s.length));
  ctx.strokeStyle = '#e3e6ea';
  ctx.beginPath();
  ctx.moveTo(0, h - 0.5);
  ctx.lineTo(w, h - 0.5);
  ctx.stroke();
  series.forEach((s, i) => {
    if (s.length < 1) return;
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.forEach((v, j) => {
      const x = n <= 1 ? w : (j + (n - s.length)) * (w / (n - 1));
      const y = h - 2 - ((Number.isFinite(v) ? v : 0) / max) * (h - 16);
      if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  ctx.fillStyle = '#667';
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillText(`max ${format(max)}`, 4, 11);
  canvas.dataset.points = String(n);
}

/** 1234567 -> "1.2 M" */
export function si(v) {
  if (!Number.isFinite(v)) return '–';
  const units = ['', ' k', ' M', ' G'];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(i === 0 ? 0 : 1)}${units[i]}`;
}

/** Bytes as MiB. */
export function mib(v) {
  return `${(v / 1048576).toFixed(0)} MiB`;
}
