// The API seen from the console: every call sends the signed-in key; errors become ApiError.

const KEY = "detectflow.apiKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function savedKey() {
  return sessionStorage.getItem(KEY);
}

export function saveKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    } else if (body && typeof body.detail === "string") {
      message = body.detail;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

/** Call the API at `path` with the key (or `key`); returns the Response, throws ApiError unless 2xx. */
export async function call(path, { method = "GET", body, signal, key, headers: extra = {} } = {}) {
  const headers = { Accept: "application/json", ...extra };
  const secret = key ?? savedKey();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const response = await fetch(path, { method, body, headers, signal, cache: "no-store" });
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function json(path, options) {
  return (await call(path, options)).json();
}

/** POST a JSON body. */
export async function post(path, data) {
  const headers = { "Content-Type": "application/json" };
  return json(path, { method: "POST", body: JSON.stringify(data), headers });
}

/** A binary answer (the annotated PNG or video) as an object URL; the caller revokes it. */
export async function objectUrl(path) {
  const blob = await (await call(path)).blob();
  return URL.createObjectURL(blob);
}

/** Items of a listing answered as a bare array or as `{items: [...]}`. */
export function itemsOf(body) {
  if (Array.isArray(body)) return body;
  return (body && (body.items || body.galleries || body.subjects || body.faces)) || [];
}

export const FINAL = new Set(["succeeded", "failed", "cancelled"]);
