// A small SVG plotting module: scatter (with lines, links and error bars), metric curves,
// parallel coordinates and stacked bars for Hyperband rungs.
//
// Built to stay fast with 10,000 trials: every series is ONE <path> whatever its number
// of points (a dot is a zero-length segment with a round cap), so the DOM holds a few
// dozen nodes, not one per point. Hover finds the nearest point by a linear scan over
// typed arrays of pixel positions, which takes well under a millisecond for 50,000 points.
// Plots are drawn at the pixel width of their container and redrawn when it changes,
// so text stays readable on a phone and a laptop alike.

import { h, fmtValue } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) el.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
export const PALETTE = [
  "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F", "#333333",
];
export const STATUS_COLORS = {
  succeeded: "#0072B2",
  running: "#009E73",
  pending: "#8a94a3",
  stopped: "#D55E00",
  failed: "#CC79A7",
  expired: "#b0b7c0",
};
// Worse to better, light to dark: the best lines are drawn last, on top.
const SEQUENTIAL = ["#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"];
const HIGHLIGHT = "#E69F00";

// ---------------------------------------------------------------- scales and ticks

function finiteExtent(arrays, positiveOnly = false) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const values of arrays) {
    for (const v of values) {
      if (!Number.isFinite(v) || (positiveOnly && v <= 0)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * power;
}

function niceTicks(lo, hi, count, integer = false) {
  const step = integer ? Math.max(1, niceStep(hi - lo, count)) : niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function logTicks(lo, hi, count) {
  const e0 = Math.ceil(Math.log10(lo) - 1e-9);
  const e1 = Math.floor(Math.log10(hi) + 1e-9);
  const every = Math.max(1, Math.ceil((e1 - e0 + 1) / count));
  const out = [];
  for (let e = e0; e <= e1; e += every) out.push(10 ** e);
  if (out.length >= 2) return out;
  // Less than a decade: linear ticks read fine on a log axis too.
  return niceTicks(lo, hi, count).filter((v) => v > 0);
}

const SECOND = 1000;
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
  21600, 43200, 86400, 172800, 604800].map((x) => x * SECOND); // prettier-ignore

function timeTicks(lo, hi, count) {
  const span = hi - lo;
  const day = 86400 * SECOND;
  const step = TIME_STEPS.find((st) => span / st <= count) || Math.ceil(span / count / day) * day;
  const offset = new Date(lo).getTimezoneOffset() * 60 * SECOND; // align to local time
  const out = [];
  for (let t = Math.ceil((lo - offset) / step) * step + offset; t <= hi; t += step) out.push(t);
  const pad = (n) => String(n).padStart(2, "0");
  const format = (t) => {
    const d = new Date(t);
    if (step >= 86400 * SECOND) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return step < 60 * SECOND ? `${hm}:${pad(d.getSeconds())}` : hm;
  };
  return { ticks: out, format };
}

// A scale maps data to pixels; `kind` is "linear", "log" or "time".
export function scale(kind, domain, range, { pad = 0, integer = false, ticks = null } = {}) {
  let [d0, d1] = domain;
  const [r0, r1] = range;
  const log = kind === "log";
  let a = log ? Math.log10(d0) : d0;
  let b = log ? Math.log10(d1) : d1;
  if (!(b > a)) {
    let widen = log ? 0.5 : a === 0 ? 1 : Math.abs(a) * 0.1;
    if (kind === "time") widen = 30 * SECOND;
    a -= widen;
    b += widen;
  }
  const margin = (b - a) * pad;
  a -= margin;
  b += margin;
  if (log) [d0, d1] = [10 ** a, 10 ** b];
  else [d0, d1] = [a, b];
  const k = (r1 - r0) / (b - a);
  const f = log ? (v) => r0 + (Math.log10(v) - a) * k : (v) => r0 + (v - a) * k;
  f.kind = kind;
  f.domain = [d0, d1];
  f.ticks = (count) => {
    if (ticks) return { ticks, format: (v) => fmtValue(v, 3) };
    if (kind === "time") return timeTicks(d0, d1, count);
    const out = log ? logTicks(d0, d1, count) : niceTicks(d0, d1, count, integer);
    return { ticks: out, format: (v) => fmtValue(v, 3) };
  };
  return f;
}

const r1 = (v) => Math.round(v * 10) / 10;

// ---------------------------------------------------------------- the plot frame

// Creates a plot in `container`; `render(svg, width, height, data)` draws into an empty
// <svg> and returns {legend, picker, count}. Call `update(data)` whenever data changes.
export function createPlot(container, { label, height = 260, render, minWidth }) {
  const legend = h("ul", { class: "legend", hidden: true });
  const svg = s("svg", { class: "plot-svg", role: "img", "aria-label": label });
  // The tooltip and the hover ring live outside the <svg>, on layers of their own, so
  // that moving them never repaints a plot of 10,000 points.
  const tip = h("div", { class: "plot-tip", "aria-hidden": "true", hidden: true });
  const ring = h("div", { class: "plot-ring", "aria-hidden": "true", hidden: true });
  const box = h("div", { class: "plot-box" }, svg, ring, tip);
  const root = h("div", { class: "plot" }, legend, box);
  container.append(root);
  let data = null;
  let picker = null;
  let lastWidth = 0;
  let frame = 0;

  function draw() {
    frame = 0;
    if (!data) return;
    const available = box.clientWidth;
    if (!available) return;
    lastWidth = available;
    const width = Math.max(available, minWidth ? minWidth(data) : 0);
    const hgt = typeof height === "function" ? height(width, data) : height;
    svg.setAttribute("width", width);
    svg.setAttribute("height", hgt);
    svg.setAttribute("viewBox", `0 0 ${width} ${hgt}`);
    svg.replaceChildren();
    const out = render(svg, width, hgt, data) || {};
    picker = out.picker || null;
    svg.dataset.points = String(out.count ?? 0);
    svg.classList.toggle("pickable", Boolean(picker?.pick));
    legend.replaceChildren(
      ...(out.legend || []).map((item) =>
        h(
          "li",
          null,
          h("span", { class: `swatch ${item.shape || "dot"}`, "data-color": item.color }),
          item.label,
        ),
      ),
    );
    for (const sw of legend.querySelectorAll(".swatch")) sw.style.color = sw.dataset.color;
    legend.hidden = !out.legend?.length;
    hideTip();
  }

  function hideTip() {
    tip.hidden = true;
    ring.hidden = true;
  }

  function hitAt(event) {
    if (!picker) return null;
    const rect = svg.getBoundingClientRect();
    return picker.find(event.clientX - rect.left, event.clientY - rect.top);
  }

  svg.addEventListener("pointermove", (event) => {
    const hit = hitAt(event);
    if (!hit) return hideTip();
    if (tip.textContent !== hit.label) tip.textContent = hit.label;
    tip.hidden = false;
    ring.hidden = false;
    // The <svg> sits at the top left of the box's scrolled content.
    const x = hit.x;
    const y = hit.y;
    const left = Math.min(x + 12, box.scrollLeft + box.clientWidth - tip.offsetWidth - 4);
    tip.style.transform = `translate(${Math.max(0, left)}px, ${y + 14}px)`;
    ring.style.transform = `translate(${x - 7}px, ${y - 7}px)`;
  });
  svg.addEventListener("pointerleave", hideTip);
  svg.addEventListener("click", (event) => {
    const hit = hitAt(event);
    if (hit && picker.pick) picker.pick(hit);
  });

  const observer = new ResizeObserver(() => {
    if (box.clientWidth !== lastWidth && !frame) frame = requestAnimationFrame(draw);
  });
  observer.observe(box);

  return {
    element: root,
    svg,
    update(next) {
      data = next;
      draw();
    },
    destroy() {
      observer.disconnect();
      if (frame) cancelAnimationFrame(frame);
      root.remove();
    },
  };
}

// Nearest point within `radius` pixels, over flat arrays of pixel positions.
function pointPicker(px, py, describe, pick, radius = 12) {
  return {
    find(x, y) {
      let best = -1;
      let bestD = radius * radius;
      for (let i = 0; i < px.length; i += 1) {
        const dx = px[i] - x;
        const dy = py[i] - y;
        const d = dx * dx + dy * dy;
        if (d < bestD) {
          bestD = d;
          best = i;
        }
      }
      if (best < 0) return null;
      return { index: best, x: px[best], y: py[best], label: describe(best) };
    },
    pick: pick ? (hit) => pick(hit.index) : null,
  };
}

function textWidth(text) {
  return String(text).length * 6.4; // 11px system font, roughly; enough to lay out margins
}

function drawAxes(svg, { x, y, area, xCount, yCount, xLabel, yLabel }) {
  const g = s("g", { class: "axis" });
  const yt = y.ticks(yCount);
  for (const t of yt.ticks) {
    const py = r1(y(t));
    g.append(
      s("line", { x1: area.left, x2: area.right, y1: py, y2: py, class: "grid" }),
      s("text", { x: area.left - 6, y: py, dy: "0.32em", "text-anchor": "end" }, yt.format(t)),
    );
  }
  const xt = x.ticks(xCount);
  for (const t of xt.ticks) {
    const px = r1(x(t));
    g.append(
      s("line", { x1: px, x2: px, y1: area.bottom, y2: area.bottom + 4, class: "tick" }),
      s("text", { x: px, y: area.bottom + 16, "text-anchor": "middle" }, xt.format(t)),
    );
  }
  g.append(
    s("line", { x1: area.left, x2: area.right, y1: area.bottom, y2: area.bottom, class: "base" }),
    s("text", { x: area.left, y: 12, class: "label" }, yLabel || ""),
    s("text", { x: area.right, y: area.bottom + 30, "text-anchor": "end", class: "label" },
      xLabel || ""), // prettier-ignore
  );
  svg.append(g);
}

function leftMargin(y, count) {
  const { ticks, format } = y.ticks(count);
  return Math.max(28, ...ticks.map((t) => textWidth(format(t)))) + 10;
}

function clipTo(svg, area) {
  const id = `clip-${Math.random().toString(36).slice(2, 9)}`;
  svg.append(
    s(
      "defs",
      null,
      s(
        "clipPath",
        { id },
        s("rect", {
          x: area.left - 4,
          y: area.top - 4,
          width: area.right - area.left + 8,
          height: area.bottom - area.top + 8,
        }),
      ),
    ),
  );
  return `url(#${id})`;
}

function dotsPath(px, py, shape) {
  const parts = new Array(px.length);
  for (let i = 0; i < px.length; i += 1) {
    const x = r1(px[i]);
    const y = r1(py[i]);
    parts[i] = shape === "cross" ? `M${x - 3} ${y - 3}l6 6m0-6l-6 6` : `M${x} ${y}h0`;
  }
  return parts.join("");
}

function emptyNote(svg, w, hgt, text) {
  svg.append(s("text", { x: w / 2, y: hgt / 2, "text-anchor": "middle", class: "empty" }, text));
  return { count: 0 };
}

// ---------------------------------------------------------------- scatter

// data: {x: {kind, label}, y: {kind, label}, series: [{label, color, shape, xs, ys}],
//        lines: [{label, color, xs, ys, step}], links: {color, x1, y1, x2, y2},
//        bars: {color, xs, lo, hi}, describe(series, i), pick(series, i), empty}
export function renderScatter(svg, w, hgt, d) {
  const xsAll = d.series.map((se) => se.xs);
  const ysAll = d.series.map((se) => se.ys);
  for (const line of d.lines || []) {
    xsAll.push(line.xs);
    ysAll.push(line.ys);
  }
  if (d.bars) ysAll.push(d.bars.lo, d.bars.hi);
  const count = d.series.reduce((n, se) => n + se.xs.length, 0);
  const xLog = d.x.kind === "log";
  const yLog = d.y.kind === "log";
  const xe = finiteExtent(xsAll, xLog);
  const ye = finiteExtent(ysAll, yLog);
  if (!count || !xe || !ye) return emptyNote(svg, w, hgt, d.empty || "No data yet");
  const top = 22;
  const bottom = hgt - 36;
  const y = scale(d.y.kind, ye, [bottom, top], { pad: 0.04 });
  const area = { top, bottom, left: leftMargin(y, 5), right: w - 12 };
  const x = scale(d.x.kind, xe, [area.left, area.right], {
    pad: 0.02,
    integer: d.x.integer,
    ticks: d.x.ticks,
  });
  const xCount = Math.max(2, Math.floor((area.right - area.left) / 90));
  drawAxes(svg, { x, y, area, xCount, yCount: 5, xLabel: d.x.label, yLabel: d.y.label });
  const clip = clipTo(svg, area);
  const layer = s("g", { "clip-path": clip });
  svg.append(layer);
  const ok = (vx, vy) =>
    Number.isFinite(vx) && Number.isFinite(vy) && (!xLog || vx > 0) && (!yLog || vy > 0);

  if (d.links && d.links.x1.length) {
    const L = d.links;
    const parts = [];
    for (let i = 0; i < L.x1.length; i += 1) {
      if (!ok(L.x1[i], L.y1[i]) || !ok(L.x2[i], L.y2[i])) continue;
      parts.push(`M${r1(x(L.x1[i]))} ${r1(y(L.y1[i]))}L${r1(x(L.x2[i]))} ${r1(y(L.y2[i]))}`);
    }
    layer.append(s("path", { d: parts.join(""), class: "links", stroke: L.color }));
  }
  if (d.bars && d.bars.xs.length) {
    const B = d.bars;
    const parts = [];
    for (let i = 0; i < B.xs.length; i += 1) {
      if (!ok(B.xs[i], B.lo[i]) || !ok(B.xs[i], B.hi[i])) continue;
      const px = r1(x(B.xs[i]));
      parts.push(`M${px} ${r1(y(B.lo[i]))}V${r1(y(B.hi[i]))}`);
    }
    layer.append(s("path", { d: parts.join(""), class: "error-bars", stroke: B.color }));
  }
  const many = count > 2000;
  const px = new Float32Array(count);
  const py = new Float32Array(count);
  const owner = new Int32Array(count);
  const local = new Int32Array(count);
  let n = 0;
  d.series.forEach((se, si) => {
    const sx = [];
    const sy = [];
    for (let i = 0; i < se.xs.length; i += 1) {
      if (!ok(se.xs[i], se.ys[i])) continue;
      const X = x(se.xs[i]);
      const Y = y(se.ys[i]);
      sx.push(X);
      sy.push(Y);
      px[n] = X;
      py[n] = Y;
      owner[n] = si;
      local[n] = i;
      n += 1;
    }
    const cross = se.shape === "cross";
    layer.append(
      s("path", {
        d: dotsPath(sx, sy, se.shape),
        class: `series ${cross ? "crosses" : "dots"}`,
        stroke: se.color,
        "stroke-width": cross ? 1.6 : many ? 3.5 : 6,
        "stroke-opacity": many ? 0.55 : 0.85,
        "data-count": sx.length,
      }),
    );
  });
  for (const line of d.lines || []) {
    const parts = [];
    let prevY = null;
    for (let i = 0; i < line.xs.length; i += 1) {
      if (!ok(line.xs[i], line.ys[i])) continue;
      const X = r1(x(line.xs[i]));
      const Y = r1(y(line.ys[i]));
      if (prevY === null) parts.push(`M${X} ${Y}`);
      else if (line.step) parts.push(`H${X}V${Y}`);
      else parts.push(`L${X} ${Y}`);
      prevY = Y;
    }
    if (line.extendTo !== undefined && prevY !== null) parts.push(`H${r1(x(line.extendTo))}`);
    layer.append(
      s("path", { d: parts.join(""), class: "line", stroke: line.color, "stroke-width": 2 }),
    );
  }
  const legend = d.series
    .filter((se) => se.xs.length)
    .map((se) => ({ label: `${se.label} (${se.xs.length})`, color: se.color, shape: se.shape }));
  for (const line of d.lines || []) {
    legend.push({ label: line.label, color: line.color, shape: "line" });
  }
  const picker = pointPicker(
    px.subarray(0, n),
    py.subarray(0, n),
    (i) => d.describe(owner[i], local[i]),
    d.pick ? (i) => d.pick(owner[i], local[i]) : null,
  );
  return { legend, picker, count: n };
}

// ---------------------------------------------------------------- curves

function decimate(steps, values, budget) {
  // Keeps the first and last point and, per bucket, the lowest and highest value,
  // so that a curve of 100,000 steps keeps its shape at a few hundred points.
  if (steps.length <= budget) return [steps, values];
  const buckets = Math.max(1, Math.floor(budget / 2));
  const size = steps.length / buckets;
  const xs = [steps[0]];
  const ys = [values[0]];
  for (let b = 0; b < buckets; b += 1) {
    const start = Math.floor(b * size);
    const end = Math.min(steps.length, Math.floor((b + 1) * size));
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i += 1) {
      if (values[i] < values[lo]) lo = i;
      if (values[i] > values[hi]) hi = i;
    }
    for (const i of lo < hi ? [lo, hi] : [hi, lo]) {
      xs.push(steps[i]);
      ys.push(values[i]);
    }
  }
  xs.push(steps.at(-1));
  ys.push(values.at(-1));
  return [xs, ys];
}

// data: {series: [{key, status, steps, values, highlight}], y: {kind, label}, x: {label},
//        describe(series, i), pick(series), statusLabel}
export function renderCurves(svg, w, hgt, d) {
  const series = d.series.filter((se) => se.steps.length);
  const yLog = d.y.kind === "log";
  const xe = finiteExtent(series.map((se) => se.steps));
  const ye = finiteExtent(
    series.map((se) => se.values),
    yLog,
  );
  if (!series.length || !xe || !ye) return emptyNote(svg, w, hgt, d.empty || "No metrics yet");
  const top = 22;
  const bottom = hgt - 36;
  const y = scale(d.y.kind, ye, [bottom, top], { pad: 0.04 });
  const area = { top, bottom, left: leftMargin(y, 5), right: w - 14 };
  const x = scale("linear", xe, [area.left, area.right], { pad: 0.01, integer: true });
  const xCount = Math.max(2, Math.floor((area.right - area.left) / 80));
  drawAxes(svg, { x, y, area, xCount, yCount: 5, xLabel: d.x?.label || "step", yLabel: d.y.label });
  const layer = s("g", { "clip-path": clipTo(svg, area) });
  svg.append(layer);
  const budget = Math.max(50, Math.floor(area.right - area.left));
  const byStatus = new Map();
  const ends = new Map();
  const px = [];
  const py = [];
  const owner = [];
  const local = [];
  let highlighted = "";
  let points = 0;
  series.forEach((se, si) => {
    const [xs, ys] = decimate(se.steps, se.values, budget);
    const parts = [];
    let started = false;
    for (let i = 0; i < xs.length; i += 1) {
      if (!Number.isFinite(ys[i]) || (yLog && ys[i] <= 0)) continue;
      const X = r1(x(xs[i]));
      const Y = r1(y(ys[i]));
      parts.push(`${started ? "L" : "M"}${X} ${Y}`);
      if (xs.length === 1) parts.push("h0");
      started = true;
      px.push(X);
      py.push(Y);
      owner.push(si);
      local.push(i);
      points += 1;
    }
    const path = parts.join("");
    if (se.highlight) highlighted = path;
    const key = se.status || "other";
    byStatus.set(key, (byStatus.get(key) || "") + path);
    if (se.status === "stopped" && px.length) {
      ends.set(key, `${ends.get(key) || ""}M${px.at(-1) - 4} ${py.at(-1) - 4}l8 8m0-8l-8 8`);
    }
    se._xs = xs;
    se._ys = ys;
  });
  const order = ["expired", "pending", "failed", "succeeded", "running", "stopped", "other"];
  const legend = [];
  const thin = series.length > 50;
  for (const key of order) {
    if (!byStatus.has(key)) continue;
    const color = STATUS_COLORS[key] || PALETTE[0];
    layer.append(
      s("path", {
        d: byStatus.get(key),
        class: "curve",
        stroke: color,
        "stroke-width": thin ? 1 : 1.6,
        "stroke-opacity": thin ? 0.5 : 0.85,
        "data-status": key,
      }),
    );
    const n = series.filter((se) => (se.status || "other") === key).length;
    const label = d.statusLabel ? d.statusLabel(key) : `${key} (${n})`;
    legend.push({ label, color, shape: "line" });
  }
  if (ends.has("stopped")) {
    layer.append(
      s("path", { d: ends.get("stopped"), class: "stop-marks", stroke: STATUS_COLORS.stopped }),
    );
    legend.push({ label: "stopped here", color: STATUS_COLORS.stopped, shape: "cross" });
  }
  if (highlighted) {
    layer.append(s("path", { d: highlighted, class: "curve best", stroke: HIGHLIGHT }));
    legend.push({ label: d.highlightLabel || "best trial", color: HIGHLIGHT, shape: "line" });
  }
  const picker = pointPicker(
    Float32Array.from(px),
    Float32Array.from(py),
    (i) => {
      const se = series[owner[i]];
      return d.describe(se, se._xs[local[i]], se._ys[local[i]]);
    },
    d.pick ? (i) => d.pick(series[owner[i]]) : null,
  );
  return { legend, picker, count: points };
}

// ---------------------------------------------------------------- parallel coordinates

function binOf(rank, total, bins) {
  return Math.min(bins - 1, Math.floor((rank / Math.max(1, total)) * bins));
}

// data: {dims: [{name, kind: "linear"|"log"|"cat", values, categories}], objective: {name,
//        values, better: "low"|"high"}, highlight: index|null, describe(i), pick(i)}
// The last axis is the objective; lines are coloured by its rank, best darkest and on top.
export function renderParallel(svg, w, hgt, d) {
  const n = d.objective.values.length;
  if (!n) return emptyNote(svg, w, hgt, d.empty || "No finished trials yet");
  const dims = [...d.dims, { name: d.objective.name, kind: d.objective.kind || "linear",
    values: d.objective.values, objective: true }]; // prettier-ignore
  const area = { top: 34, bottom: hgt - 14, left: 16, right: w - 56 };
  const gap = dims.length > 1 ? (area.right - area.left) / (dims.length - 1) : 0;
  const axes = dims.map((dim, k) => {
    const ax = area.left + gap * k;
    if (dim.kind === "cat") {
      const cats = dim.categories;
      const pos = new Map(cats.map((c, i) => [c, i]));
      const step = cats.length > 1 ? (area.bottom - area.top) / (cats.length - 1) : 0;
      const at = (v) =>
        cats.length > 1 ? area.top + pos.get(v) * step : (area.top + area.bottom) / 2;
      const every = Math.max(1, Math.ceil(cats.length / Math.floor((area.bottom - area.top) / 14)));
      const ticks = cats.filter((_, i) => i % every === 0).map((c) => [at(c), c]);
      return { ax, at, ticks, dim };
    }
    const log = dim.kind === "log";
    const ext = finiteExtent([dim.values], log) || [0, 1];
    const y = scale(log ? "log" : "linear", ext, [area.bottom, area.top]);
    const t = y.ticks(4);
    return { ax, at: y, ticks: t.ticks.map((v) => [y(v), t.format(v)]), dim };
  });
  // Rank by objective: rank 0 is the worst.
  const obj = d.objective.values;
  const order = Array.from(obj.keys()).sort((a, b) =>
    d.objective.better === "low" ? obj[b] - obj[a] : obj[a] - obj[b],
  );
  const bins = SEQUENTIAL.length;
  const paths = Array.from({ length: bins }, () => []);
  const px = new Float32Array(n * dims.length);
  const py = new Float32Array(n * dims.length);
  const who = new Int32Array(n * dims.length);
  let m = 0;
  order.forEach((i, rank) => {
    let seg = "";
    for (const axis of axes) {
      const Y = axis.at(axis.dim.values[i]);
      if (!Number.isFinite(Y)) continue;
      seg += `${seg ? "L" : "M"}${r1(axis.ax)} ${r1(Y)}`;
      px[m] = axis.ax;
      py[m] = Y;
      who[m] = i;
      m += 1;
    }
    paths[binOf(rank, n, bins)].push(seg);
  });
  // Fainter as lines pile up, so that 10,000 of them still show where they gather.
  const opacity = Math.max(0.05, Math.min(0.8, 6 / Math.sqrt(n)));
  const g = s("g", { class: "pc-lines" });
  paths.forEach((p, b) => {
    g.append(
      s("path", {
        d: p.join(""),
        stroke: SEQUENTIAL[b],
        "stroke-opacity": opacity,
        class: "series pc",
        "data-count": p.length,
      }),
    );
  });
  if (d.highlight !== null && d.highlight !== undefined) {
    let seg = "";
    for (const axis of axes) {
      const Y = axis.at(axis.dim.values[d.highlight]);
      if (Number.isFinite(Y)) seg += `${seg ? "L" : "M"}${r1(axis.ax)} ${r1(Y)}`;
    }
    g.append(s("path", { d: seg, class: "pc-best", stroke: HIGHLIGHT }));
  }
  svg.append(g);
  const ga = s("g", { class: "axis pc-axes" });
  const maxLabel = Math.max(40, gap - 8);
  for (const axis of axes) {
    const name = axis.dim.name;
    const chars = Math.max(4, Math.floor(maxLabel / 6.6));
    const shown = name.length > chars ? `${name.slice(0, chars - 1)}…` : name;
    const anchor = axis === axes[0] ? "start" : axis === axes.at(-1) ? "end" : "middle";
    ga.append(
      s("line", { x1: axis.ax, x2: axis.ax, y1: area.top, y2: area.bottom, class: "pc-axis" }),
      s("text", { x: axis.ax, y: 14, "text-anchor": anchor, class: "label" },
        s("title", null, name), shown), // prettier-ignore
    );
    for (const [Y, text] of axis.ticks) {
      const t = typeof text === "string" ? text : String(text);
      const short = t.length > 10 ? `${t.slice(0, 9)}…` : t;
      ga.append(s("text", { x: axis.ax + 4, y: r1(Y), dy: "0.32em", class: "pc-tick" }, short));
    }
  }
  svg.append(ga);
  const legend = [
    { label: `worse ${d.objective.name}`, color: SEQUENTIAL[1], shape: "line" },
    { label: `better ${d.objective.name}`, color: SEQUENTIAL[bins - 1], shape: "line" },
  ];
  if (d.highlight !== null && d.highlight !== undefined) {
    legend.push({ label: "best trial", color: HIGHLIGHT, shape: "line" });
  }
  const picker = pointPicker(
    px.subarray(0, m),
    py.subarray(0, m),
    (k) => d.describe(who[k]),
    d.pick ? (k) => d.pick(who[k]) : null,
    8,
  );
  return { legend, picker, count: n };
}

// ---------------------------------------------------------------- Hyperband rungs

const RUNG_PARTS = [
  ["promoted", "#005a8c", "went on to the next rung"],
  ["succeeded", "#56B4E9", "succeeded, not promoted"],
  ["stopped", STATUS_COLORS.stopped, "stopped"],
  ["failed", STATUS_COLORS.failed, "failed"],
  ["running", STATUS_COLORS.running, "running"],
  ["pending", STATUS_COLORS.pending, "pending"],
  ["expired", STATUS_COLORS.expired, "expired"],
];

export function rungsHeight(width, d) {
  const brackets = new Set(d.rungs.map((r) => r.bracket)).size || 1;
  const cols = Math.max(1, Math.min(brackets, Math.floor(width / 170)));
  return Math.ceil(brackets / cols) * 200 + 4;
}

// data: {rungs: [RungView], resourceName, describe(rung), pick?}
export function renderRungs(svg, w, hgt, d) {
  if (!d.rungs.length) return emptyNote(svg, w, hgt, "No rungs yet");
  const byBracket = new Map();
  for (const r of d.rungs) {
    if (!byBracket.has(r.bracket)) byBracket.set(r.bracket, []);
    byBracket.get(r.bracket).push(r);
  }
  const brackets = [...byBracket.keys()].sort((a, b) => b - a);
  const cols = Math.max(1, Math.min(brackets.length, Math.floor(w / 170)));
  const panelW = w / cols;
  const panelH = 200;
  const total = (r) => Object.values(r.counts).reduce((a, b) => a + b, 0);
  const yMax = Math.max(1, ...d.rungs.map((r) => Math.max(r.planned ?? 0, total(r))));
  const rects = [];
  brackets.forEach((bracket, bi) => {
    const rungs = byBracket.get(bracket).sort((a, b) => a.rung - b.rung);
    const ox = (bi % cols) * panelW;
    const oy = Math.floor(bi / cols) * panelH;
    const area = { left: ox + 10, right: ox + panelW - 10, top: oy + 38, bottom: oy + panelH - 34 };
    const g = s("g", { class: "rung-panel", "data-bracket": bracket });
    g.append(
      s("text", { x: area.left, y: oy + 16, class: "label" },
        brackets.length > 1 ? `Bracket ${bracket}` : "Rungs"), // prettier-ignore
      s("line", { x1: area.left, x2: area.right, y1: area.bottom, y2: area.bottom, class: "base" }),
    );
    const band = (area.right - area.left) / rungs.length;
    const barW = Math.min(46, band * 0.62);
    const k = (area.bottom - area.top) / yMax;
    for (const [ri, r] of rungs.entries()) {
      const cx = area.left + band * (ri + 0.5);
      const x0 = cx - barW / 2;
      let yTop = area.bottom;
      const promoted = r.promoted || 0;
      const values = {
        ...r.counts,
        promoted,
        succeeded: Math.max(0, (r.counts.succeeded || 0) - promoted),
      };
      for (const [key, color] of RUNG_PARTS) {
        const v = values[key] || 0;
        if (!v) continue;
        const hPx = v * k;
        g.append(
          s("rect", { x: r1(x0), y: r1(yTop - hPx), width: r1(barW), height: r1(hPx),
            fill: color, class: `rung-bar part-${key}` }), // prettier-ignore
        );
        yTop -= hPx;
      }
      if (r.planned) {
        g.append(
          s("rect", { x: r1(x0 - 2), y: r1(area.bottom - r.planned * k), width: r1(barW + 4),
            height: r1(r.planned * k), class: "planned" }), // prettier-ignore
        );
      }
      const top = Math.min(yTop, r.planned ? area.bottom - r.planned * k : yTop);
      const done = total(r);
      g.append(
        s("text", { x: cx, y: top - 4, "text-anchor": "middle", class: "bar-value" },
          r.planned ? `${done}/${r.planned}` : String(done)), // prettier-ignore
        s("text", { x: cx, y: area.bottom + 14, "text-anchor": "middle" }, fmtValue(r.resource)),
      );
      rects.push({ x0, x1: x0 + barW, y0: top - 14, y1: area.bottom + 16, cx, cy: top, r });
    }
    g.append(
      s("text", { x: (area.left + area.right) / 2, y: area.bottom + 29, "text-anchor": "middle",
        class: "label" }, d.resourceName || "resource"), // prettier-ignore
    );
    svg.append(g);
  });
  const present = new Set();
  for (const r of d.rungs) {
    if (r.promoted) present.add("promoted");
    for (const [key, v] of Object.entries(r.counts)) if (v) present.add(key);
  }
  const legend = RUNG_PARTS.filter(([key]) => present.has(key)).map(([, color, label]) => ({
    label,
    color,
    shape: "square",
  }));
  legend.push({ label: "planned", color: "#5b6470", shape: "outline" });
  const picker = {
    find(x, y) {
      const hit = rects.find((q) => x >= q.x0 - 4 && x <= q.x1 + 4 && y >= q.y0 && y <= q.y1);
      return hit ? { x: hit.cx, y: hit.cy, label: d.describe(hit.r), rung: hit.r } : null;
    },
    pick: null,
  };
  return { legend, picker, count: d.rungs.length };
}
