// Boxes, labels, scores and landmarks drawn on a <canvas> from a job's JSON result.

/** Vivid colours rarely found in photos, so a drawn box stands out (and a test can find it). */
export const PALETTE = ["#ff00ff", "#00ffff", "#ffff00", "#ff6600", "#00ff00", "#3366ff"];

/** One colour per label, stable across jobs. */
export function colourOf(label) {
  let h = 0;
  for (const ch of label) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return label === "face" ? PALETTE[0] : PALETTE[h % PALETTE.length];
}

/** "face 99.9%" */
export function caption(detection) {
  return `${detection.label} ${(detection.score * 100).toFixed(1)}%`;
}

/** Line width in image pixels: visible at any size once the canvas is scaled to fit. */
export function lineWidth(width, height) {
  return Math.max(2, Math.round(Math.min(width, height) / 150));
}

/** What to draw of a result: its detections, or the faces of a recognition result (named when matched). */
export function shapesOf(result) {
  if (!result) return [];
  if (Array.isArray(result.detections)) return result.detections;
  return (result.faces || []).map((f) => ({
    label: f.match ? f.match.subject_name || f.match.decision : "face",
    score: f.quality ? f.quality.score : f.score ?? 0,
    box: f.box,
    landmarks: f.landmarks,
  }));
}

/** Draw `image` (a loaded <img> or ImageBitmap) and the detections of `result` on `canvas`. */
export function drawResult(canvas, image, result) {
  const width = image.naturalWidth || image.width;
  const height = image.naturalHeight || image.height;
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, width, height);
  const detections = shapesOf(result);
  const sx = result && result.image ? width / result.image.width : 1;
  const sy = result && result.image ? height / result.image.height : 1;
  const lw = lineWidth(width, height);
  const font = Math.max(12, lw * 6);
  ctx.font = `${font}px sans-serif`;
  ctx.textBaseline = "bottom";
  for (const d of detections) {
    const colour = colourOf(d.label);
    const x = d.box.x * sx, y = d.box.y * sy, w = d.box.width * sx, h = d.box.height * sy;
    ctx.strokeStyle = colour;
    ctx.lineWidth = lw;
    ctx.strokeRect(x, y, w, h);
    const text = caption(d);
    const tw = ctx.measureText(text).width + 2 * lw;
    const ty = y - font - lw > 0 ? y - lw / 2 : y + h + font + lw;
    ctx.fillStyle = colour;
    ctx.fillRect(x - lw / 2, ty - font - lw, tw, font + lw);
    ctx.fillStyle = "#000000";
    ctx.fillText(text, x - lw / 2 + lw, ty - lw / 2);
    ctx.fillStyle = colour;
    for (const p of d.landmarks || []) {
      ctx.beginPath();
      ctx.arc(p.x * sx, p.y * sy, lw, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  return detections.length;
}

/** Load an image from a URL (an object URL of the dropped file, or of the annotated PNG). */
export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot show this image"));
    img.src = url;
  });
}
