// Jobs: the listing with its status and task filters, refreshed while the view is open.

import { json } from "./api.js";
import { $, el, say, took, when } from "./dom.js";

const REFRESH_MS = 2000; // live status: the listing is read again this often while shown
let timer = null;
let cursor = null;
let latest = 0; // only the newest listing is shown: an older one answering late (filters changed) is dropped
let settled = 0; // the newest listing that has answered: a refresh waits for it, so a slow API is not flooded

function query(extra = {}) {
  const params = new URLSearchParams({ limit: "25", ...extra });
  const status = $("#filter-status").value;
  const task = $("#filter-task").value;
  if (status) params.set("status", status);
  if (task) params.set("task", task);
  return `/v1/jobs?${params}`;
}

function row(job) {
  const found = job.result ? job.result.detections || job.result.faces : null;
  const detections = found ? found.length : "";
  return el("tr", { class: "job", dataset: { id: job.id, status: job.status, task: job.task } },
    el("td", {}, el("a", { href: `#submit/${job.id}`, class: "mono" }, job.id)),
    el("td", {}, job.task),
    el("td", {}, el("span", { class: `badge ${job.status}` }, job.status)),
    el("td", {}, when(job.created_at)),
    el("td", {}, took(job.started_at, job.finished_at)),
    el("td", {}, detections));
}

function filter() {
  return `${$("#filter-status").value || "any"}/${$("#filter-task").value || "any"}`;
}

async function load() {
  const mine = ++latest;
  const shown = filter();
  try {
    const page = await json(query());
    if (mine !== latest) return;
    $("#jobs").dataset.filter = shown;
    $("#jobs tbody").replaceChildren(...page.items.map(row));
    if (!page.items.length) $("#jobs tbody").append(el("tr", {}, el("td", { colspan: "6", class: "hint" }, "no jobs")));
    cursor = page.next_cursor;
    $("#jobs-more").hidden = !cursor;
    $("#jobs-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    say($("#jobs-error"), "");
  } catch (error) {
    if (mine === latest) say($("#jobs-error"), `Cannot list jobs: ${error.message}`);
  } finally {
    if (mine === latest) settled = mine;
  }
}

function refresh() {
  if (settled === latest) load();
}

async function more() {
  if (!cursor) return;
  stop(); // older pages are not refreshed: the listing stays where the user scrolled
  const mine = ++latest;
  try {
    const page = await json(query({ cursor }));
    if (mine !== latest) return;
    $("#jobs tbody").append(...page.items.map(row));
    cursor = page.next_cursor;
    $("#jobs-more").hidden = !cursor;
  } catch (error) {
    say($("#jobs-error"), `Cannot list jobs: ${error.message}`);
  }
}

export function startJobs() {
  stop();
  load();
  timer = setInterval(refresh, REFRESH_MS);
}

export function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

export function setupJobs() {
  $("#filter-status").addEventListener("change", startJobs);
  $("#filter-task").addEventListener("change", startJobs);
  $("#jobs-more").addEventListener("click", more);
}
