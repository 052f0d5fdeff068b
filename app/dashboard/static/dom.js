// Small DOM and formatting helpers shared by the views. Text always goes in as text
// nodes, never as HTML, so nothing the API returns can inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  addChildren(el, children);
  return el;
}

export function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

export function addChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function fill(el, ...children) {
  el.replaceChildren();
  return addChildren(el, children);
}

// Re-renders `container` with `render()` and, when focus was on an element of it that
// carries a `data-focus-key`, puts focus back on its new twin: a refresh must not throw
// a keyboard user out of the table they are reading.
export function keepFocus(container, render) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.focusKey : null;
  render();
  if (key) {
    const twin = container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    twin?.focus({ preventScroll: true });
  }
}

let idCounter = 0;
export function uid(prefix = "id") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

// A labelled <select>; `options` are [value, text] pairs.
export function select(labelText, options, value, onchange) {
  const id = uid("sel");
  const sel = h(
    "select",
    { id, onchange: (e) => onchange(e.target.value) },
    options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)),
  );
  return { element: h("div", { class: "field" }, h("label", { for: id }, labelText), sel), sel };
}

// ---------------------------------------------------------------- numbers and times

export function fmtValue(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e9) return String(v);
  if (a >= 1e5 || a < 1e-3) return trimExp(v.toExponential(digits - 1));
  return String(Number(v.toPrecision(digits)));
}

function trimExp(s) {
  return s.replace(/\.?0+e/, "e").replace("e+", "e");
}

export function fmtParam(v) {
  if (typeof v === "number") return fmtValue(v, 6);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function fmtCount(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function fmtClock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function fmtDuration(seconds) {
  const s = Math.round(Math.abs(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function fmtAge(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = (now - Date.parse(iso)) / 1000;
  if (seconds < 45) return "just now";
  const s = Math.abs(seconds);
  let text;
  if (s < 3600) text = `${Math.round(s / 60)} min`;
  else if (s < 86400) text = `${Math.round(s / 3600)} h`;
  else if (s < 86400 * 60) text = `${Math.round(s / 86400)} d`;
  else text = `${Math.round(s / (86400 * 30))} mo`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

export function timeEl(iso, text) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: fmtTime(iso) }, text ?? fmtAge(iso));
}

// ---------------------------------------------------------------- vocabulary

export const GROUP_FINAL = new Set(["done", "stopped", "failed"]);
export const TRIAL_STATUSES = ["pending", "running", "succeeded", "failed", "stopped", "expired"];
export const GROUP_STATUSES = ["created", "running", "done", "stopped", "failed"];

export const ALGORITHMS = {
  grid: "Grid search",
  random: "Random search",
  hyperband: "Hyperband",
  bo: "Bayesian optimization",
  tpe: "TPE",
  mapping: "Mapping",
};

export function algorithmName(group) {
  if (group.algorithm === "hyperband" && group.hptuning?.hyperband?.asynchronous) return "ASHA";
  return ALGORITHMS[group.algorithm] || group.algorithm;
}

export function badge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

export function objectiveText(objective) {
  if (!objective) return "no objective";
  const arrow = objective.optimization === "minimize" ? "minimize" : "maximize";
  return `${arrow} ${objective.name}`;
}
