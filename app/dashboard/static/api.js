// The client of the service's JSON API: the same routes every other client uses.
// An API key, when the user gave one, goes in `Authorization: Bearer <key>`.

const KEY_NAME = "hpo.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem?.detail || problem?.title || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem || {};
  }
}

export const auth = {
  get key() {
    try {
      return localStorage.getItem(KEY_NAME) || "";
    } catch {
      return "";
    }
  },
  set(key) {
    localStorage.setItem(KEY_NAME, key);
  },
  clear() {
    localStorage.removeItem(KEY_NAME);
  },
};

export async function request(path, { method = "GET", body, type, headers = {}, signal } = {}) {
  const sent = { Accept: "application/json", ...headers };
  const key = auth.key;
  if (key) sent.Authorization = `Bearer ${key}`;
  let payload = body;
  if (body !== undefined && typeof body !== "string") {
    payload = JSON.stringify(body);
    sent["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    sent["Content-Type"] = type || "application/yaml";
  }
  const response = await fetch(path, {
    method,
    headers: sent,
    body: payload,
    signal,
    cache: "no-store",
    credentials: "same-origin",
  });
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    const error = new ApiError(response.status, problem);
    if (response.status === 401) {
      window.dispatchEvent(new CustomEvent("hpo:unauthorized", { detail: error }));
    }
    throw error;
  }
  return response;
}

export async function getJSON(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
