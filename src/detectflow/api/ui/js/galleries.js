// Galleries: subjects and their faces; enrol faces by dropping photos on a subject.
// The galleries API may be absent on a server: its listing answering 404 shows "not available".

import { call, json, post, itemsOf, ApiError, FINAL } from "./api.js";
import { $, el, say, dropZone } from "./dom.js";

let selected = null; // the open gallery's id

const idOf = (thing) => thing.id ?? thing.name;
const galleryPath = (g) => `/v1/galleries/${encodeURIComponent(g)}`;

async function loadGalleries() {
  say($("#galleries-error"), "");
  try {
    const galleries = itemsOf(await json("/v1/galleries"));
    $("#galleries-unavailable").hidden = true;
    $("#galleries-panel").hidden = false;
    $("#galleries").replaceChildren(...galleries.map((g) =>
      el("li", { class: `gallery${idOf(g) === selected ? " selected" : ""}`, dataset: { id: idOf(g) } },
        el("a", { href: "#galleries", on: { click: (e) => { e.preventDefault(); openGallery(idOf(g), g.name); } } },
          g.name ?? idOf(g)))));
    if (!galleries.length) $("#galleries").append(el("li", { class: "hint" }, "no galleries yet"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $("#galleries-unavailable").hidden = false;
      $("#galleries-panel").hidden = true;
    } else {
      say($("#galleries-error"), `Cannot list galleries: ${error.message}`);
    }
  }
}

function faceCount(subject) {
  if (Array.isArray(subject.faces)) return subject.faces.length;
  return subject.face_count ?? subject.faces ?? 0;
}

function subjectCard(subject) {
  const id = idOf(subject);
  const faces = Array.isArray(subject.faces) ? subject.faces : [];
  const card = el("li", { class: "subject drop", dataset: { id, faces: faceCount(subject) } },
    el("strong", {}, subject.name ?? id),
    el("span", { class: "hint" }, ` ${faceCount(subject)} faces`),
    el("ul", { class: "plain faces" }, ...faces.map((f) => el("li", { class: "mono" }, f.id ?? String(f)))),
    el("p", { class: "status" }));
  dropZone(card, (files) => enrol(id, files, card));
  return card;
}

async function openGallery(id, name) {
  selected = id;
  for (const li of $("#galleries").children) li.classList.toggle("selected", li.dataset.id === String(id));
  $("#gallery-title").textContent = name ?? id;
  $("#gallery-detail").hidden = false;
  try {
    const subjects = itemsOf(await json(`${galleryPath(id)}/subjects`));
    $("#subjects").replaceChildren(...subjects.map(subjectCard));
    if (!subjects.length) $("#subjects").append(el("li", { class: "hint" }, "no subjects yet"));
  } catch (error) {
    say($("#galleries-error"), `Cannot list subjects: ${error.message}`);
  }
}

async function enrol(subject, files, card) {
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  const line = card.querySelector(".status");
  line.textContent = `enrolling ${files.length} photo(s)...`;
  try {
    const path = `${galleryPath(selected)}/subjects/${encodeURIComponent(subject)}/faces`;
    let answer = await (await call(path, { method: "POST", body: form })).json().catch(() => ({}));
    // an enrolment answered as a job (202): follow it to its end before showing the faces
    while (answer && answer.links && answer.status && !FINAL.has(answer.status)) {
      line.textContent = `enrolment job ${answer.id}: ${answer.status}`;
      answer = await json(`/v1/jobs/${encodeURIComponent(answer.id)}?wait=20`);
    }
    if (answer && answer.status === "failed") throw new Error(answer.error ? answer.error.message : "the job failed");
    await openGallery(selected, $("#gallery-title").textContent);
  } catch (error) {
    line.textContent = `not enrolled: ${error.message}`;
  }
}

export function setupGalleries() {
  $("#gallery-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const gallery = await post("/v1/galleries", { name: $("#gallery-name").value });
      $("#gallery-name").value = "";
      await loadGalleries();
      openGallery(idOf(gallery), gallery.name);
    } catch (error) {
      say($("#galleries-error"), `Not created: ${error.message}`);
    }
  });
  $("#subject-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await post(`${galleryPath(selected)}/subjects`, { name: $("#subject-name").value });
      $("#subject-name").value = "";
      openGallery(selected, $("#gallery-title").textContent);
    } catch (error) {
      say($("#galleries-error"), `Not added: ${error.message}`);
    }
  });
}

export const startGalleries = loadGalleries;
