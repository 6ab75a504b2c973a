// The console's entry: sign-in with an API key, then the views behind the tabs (the URL hash picks one).

import { json, saveKey, savedKey, forgetKey, ApiError } from "./api.js";
import { $, say } from "./dom.js";
import { setupSubmit, showJob, resetSubmit } from "./submit.js";
import { setupJobs, startJobs, stop as stopJobs } from "./jobs.js";
import { setupGalleries, startGalleries } from "./galleries.js";
import { startWorkers, stopWorkers } from "./workers.js";

const VIEWS = ["submit", "jobs", "galleries", "workers"];

/** Check a key with a cheap authenticated call: one job of the listing. */
async function check(key) {
  await json("/v1/jobs?limit=1", { key });
}

function signedIn(on) {
  $("#signin").hidden = on;
  $("#console").hidden = !on;
  $("#tabs").hidden = !on;
  document.body.dataset.signedIn = String(on);
}

function route() {
  if (!savedKey()) return;
  const [view, arg] = (location.hash.slice(1) || "submit").split("/");
  const name = VIEWS.includes(view) ? view : "submit";
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== name;
  for (const a of $("#tabs").querySelectorAll("a")) a.classList.toggle("active", a.dataset.view === name);
  stopJobs();
  stopWorkers();
  if (name === "submit" && arg) showJob(arg);
  if (name === "jobs") startJobs();
  if (name === "galleries") startGalleries();
  if (name === "workers") startWorkers();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("#key").value.trim();
  say($("#signin-error"), "");
  try {
    await check(key);
  } catch (error) {
    const why = error instanceof ApiError ? error.message : `the API cannot be reached (${error.message})`;
    say($("#signin-error"), `Sign-in failed: ${why}`);
    return;
  }
  saveKey(key);
  $("#key").value = "";
  signedIn(true);
  route();
}

function signOut() {
  forgetKey();
  stopJobs();
  stopWorkers();
  resetSubmit();
  signedIn(false);
  history.replaceState(null, "", location.pathname);
}

async function start() {
  setupSubmit();
  setupJobs();
  setupGalleries();
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  const key = savedKey();
  if (key) {
    try {
      await check(key);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) forgetKey();
    }
  }
  signedIn(Boolean(savedKey()));
  route();
  document.body.dataset.ready = "true";
}

start();
