// Submit: drop a file, long-poll the job, draw its boxes on the canvas; a video result gets a player.

import { call, json, objectUrl, ApiError, FINAL } from "./api.js";
import { $, el, say, dropZone } from "./dom.js";
import { caption, colourOf, drawResult, loadImage, shapesOf } from "./draw.js";

const LONG_POLL_SECONDS = 20; // the API allows up to 30
let current = null; // {id, abort, urls}
const originals = new Map(); // job id -> object URL of the file dropped in this tab

function release() {
  if (!current) return;
  current.abort.abort();
  for (const url of current.urls) URL.revokeObjectURL(url);
}

function status(text, state) {
  const node = $("#job-status");
  node.textContent = text;
  node.dataset.status = state || "";
}

export async function submitFile(file) {
  say($("#submit-error"), "");
  const task = $("#task").value;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("task", task);
  status(`Uploading ${file.name}...`, "uploading");
  try {
    const job = await (await call("/v1/jobs", { method: "POST", body: form })).json();
    originals.set(job.id, URL.createObjectURL(file));
    location.hash = `#submit/${job.id}`;
  } catch (error) {
    status("", "");
    say($("#submit-error"), `Not submitted: ${error.message}`);
  }
}

/** Show job `id`: long-poll it until it ends, then draw its result. */
export async function showJob(id) {
  if (current && current.id === id) return;
  release();
  current = { id, abort: new AbortController(), urls: [] };
  const mine = current;
  $("#result").hidden = true;
  $("#video-result").hidden = true;
  say($("#submit-error"), "");
  try {
    let job = await json(`/v1/jobs/${encodeURIComponent(id)}`, { signal: mine.abort.signal });
    while (!FINAL.has(job.status)) {
      status(`Job ${job.id}: ${job.status}`, job.status);
      job = await json(`/v1/jobs/${encodeURIComponent(id)}?wait=${LONG_POLL_SECONDS}`, { signal: mine.abort.signal });
    }
    if (mine !== current) return;
    status(`Job ${job.id}: ${job.status}${job.error ? ` (${job.error.code}: ${job.error.message})` : ""}`, job.status);
    if (job.status === "succeeded") await render(job, mine);
  } catch (error) {
    if (error.name === "AbortError" || mine !== current) return;
    say($("#submit-error"), error instanceof ApiError ? `Job ${id}: ${error.message}` : String(error));
    current.id = null; // revisiting the job tries again
  }
}

async function render(job, mine) {
  const result = job.result || {};
  if (result.video || result.tracks) return renderVideo(job, mine);
  let image = null;
  let source = "drawn in the browser on the uploaded image";
  const original = originals.get(job.id);
  if (original) image = await loadImage(original).catch(() => null);
  let boxes = true;
  if (!image) {
    // opened from the job list (or a format the browser cannot decode): the server's annotated PNG
    const url = await objectUrl(job.links.annotated);
    mine.urls.push(url);
    image = await loadImage(url);
    source = "the server's annotated PNG";
    boxes = false;
  }
  if (mine !== current) return;
  const canvas = $("#canvas");
  drawResult(canvas, image, boxes ? result : { detections: [] });
  canvas.dataset.jobId = job.id;
  const shapes = shapesOf(result);
  canvas.dataset.drawn = boxes ? String(shapes.length) : "0";
  $("#caption").textContent = `${result.image ? `${result.image.width}x${result.image.height}, ` : ""}${source}`;
  const list = $("#detections");
  list.replaceChildren(
    ...shapes.map((d) =>
      el(
        "li",
        {
          class: "detection",
          dataset: {
            label: d.label, score: d.score, colour: colourOf(d.label),
            x: d.box.x, y: d.box.y, width: d.box.width, height: d.box.height,
          },
        },
        el("span", { class: "swatch", dataset: { colour: colourOf(d.label) } }),
        caption(d),
        el("span", { class: "hint" }, ` at ${Math.round(d.box.x)},${Math.round(d.box.y)} ${Math.round(d.box.width)}x${Math.round(d.box.height)}`),
      ),
    ),
  );
  for (const swatch of list.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
  if (!list.children.length) list.append(el("li", { class: "hint" }, "nothing detected"));
  const t = result.timings_ms;
  $("#timings").textContent = t ? `queued ${t.queued.toFixed(1)} ms, inference ${t.inference.toFixed(1)} ms, total ${t.total.toFixed(1)} ms` : "";
  $("#result").hidden = false;
}

async function renderVideo(job, mine) {
  const url = await objectUrl(job.links.annotated);
  if (mine !== current) return URL.revokeObjectURL(url);
  mine.urls.push(url);
  $("#video").src = url;
  const tracks = job.result.tracks || [];
  $("#tracks").replaceChildren(
    ...tracks.map((t, i) => {
      const frames = t.boxes || t.frames || t.detections || [];
      const label = t.label || "track";
      return el("li", { class: "track", dataset: { id: t.id ?? i } }, `${label} #${t.id ?? i}`,
        el("span", { class: "hint" }, frames.length ? ` ${frames.length} frames` : ""),
        t.score !== undefined ? el("span", { class: "hint" }, ` ${(t.score * 100).toFixed(1)}%`) : null);
    }),
  );
  if (!tracks.length) $("#tracks").append(el("li", { class: "hint" }, "no tracks"));
  $("#video-result").hidden = false;
}

export function setupSubmit() {
  dropZone($("#drop"), (files) => submitFile(files[0]));
  $("#drop").addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      $("#file").click(); // the keyboard's way to the file picker
    }
  });
  $("#file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) submitFile(file);
    event.target.value = "";
  });
}

export function resetSubmit() {
  release();
  current = null;
  for (const url of originals.values()) URL.revokeObjectURL(url);
  originals.clear();
  status("", "");
  $("#result").hidden = true;
  $("#video-result").hidden = true;
}
