// Workers: the live workers and queue depth of each task, from /readyz (shown to an admin key).

import { savedKey } from "./api.js";
import { $, el, say } from "./dom.js";

const REFRESH_MS = 3000; // how often the figures are read again while shown
let timer = null;

async function load() {
  try {
    // /readyz answers 503 (with the same body) when a worker is required and missing: still show it
    const response = await fetch("/readyz", { headers: { Authorization: `Bearer ${savedKey()}` }, cache: "no-store" });
    const body = await response.json();
    say($("#workers-error"), body.status === "unavailable" ? `Redis: ${body.redis}` : "");
    $("#readiness").textContent = `readiness: ${body.status}, redis: ${body.redis}, updated ${new Date().toLocaleTimeString()}`;
    $("#workers-admin").hidden = Boolean(body.workers);
    const tasks = Object.keys({ ...(body.queue_depth || {}), ...(body.workers || {}) }).sort();
    $("#queues tbody").replaceChildren(...tasks.map((task) => {
      const workers = (body.workers || {})[task] || [];
      const models = [...new Set(workers.map((w) => [w.model, w.provider].filter(Boolean).join(" on ")))];
      return el("tr", { class: "queue", dataset: { task, depth: (body.queue_depth || {})[task] ?? "", workers: workers.length } },
        el("td", {}, task),
        el("td", {}, (body.queue_depth || {})[task] ?? ""),
        el("td", {}, workers.length ? el("ul", { class: "plain" }, ...workers.map((w) => el("li", { class: "mono" }, w.id))) : "none"),
        el("td", {}, models.join(", ")));
    }));
  } catch (error) {
    say($("#workers-error"), `Cannot read /readyz: ${error.message}`);
  }
}

export function startWorkers() {
  stopWorkers();
  load();
  timer = setInterval(load, REFRESH_MS);
}

export function stopWorkers() {
  if (timer) clearInterval(timer);
  timer = null;
}
