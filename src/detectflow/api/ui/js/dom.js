// DOM helpers: elements are built with textContent only, so nothing the API returns is parsed as HTML.

export const $ = (selector) => document.querySelector(selector);

/** el("td", {class: "x", dataset: {id: 1}}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "on") for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Show `message` in the element (an error line), or hide it when `message` is empty. */
export function say(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

/** Make `node` a drop zone calling `onFiles(files)`; the dragover class marks it while a file hovers. */
export function dropZone(node, onFiles) {
  node.addEventListener("dragover", (event) => {
    event.preventDefault();
    node.classList.add("dragover");
  });
  node.addEventListener("dragleave", () => node.classList.remove("dragover"));
  node.addEventListener("drop", (event) => {
    event.preventDefault();
    node.classList.remove("dragover");
    const files = [...(event.dataTransfer ? event.dataTransfer.files : [])];
    if (files.length) onFiles(files);
  });
}

/** "1.2 s", "340 ms" between two ISO times, or "". */
export function took(start, end) {
  if (!start || !end) return "";
  const ms = new Date(end) - new Date(start);
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}
