// A group: status, counts, best trial, stop and export, the plots, and its trials.
// While the group runs the page refreshes itself every two seconds, without a reload;
// trials are fetched once in pages of 1000, then only what changed.

import { ApiError, getJSON, query, request } from "./api.js";
import {
  GROUP_FINAL,
  TRIAL_STATUSES,
  algorithmName,
  badge,
  fill,
  fmtCount,
  fmtParam,
  fmtTime,
  fmtValue,
  h,
  keepFocus,
  objectiveText,
  select,
  timeEl,
  uid,
} from "./dom.js";
import {
  PALETTE,
  STATUS_COLORS,
  createPlot,
  renderCurves,
  renderParallel,
  renderRungs,
  renderScatter,
  rungsHeight,
} from "./plot.js";
import { progressBar } from "./view-groups.js";

const PAGE_LIMIT = 1000;
const CURVE_TRIALS = 200;
const TABLE_PAGE = 50;
const LOG_KINDS = new Set([
  "loguniform",
  "qloguniform",
  "lognormal",
  "qlognormal",
  "logspace",
  "geomspace",
]);
const LIVE = new Set(["pending", "running"]);

export function paramsText(params) {
  return Object.entries(params || {})
    .map(([k, v]) => `${k}=${fmtParam(v)}`)
    .join(", ");
}

export function paramsTable(params, caption) {
  const rows = Object.entries(params || {});
  if (!rows.length) return h("p", { class: "muted" }, "No params.");
  return h(
    "table",
    { class: "kv" },
    caption ? h("caption", { class: "visually-hidden" }, caption) : null,
    h(
      "thead",
      null,
      h("tr", null, h("th", { scope: "col" }, "Param"), h("th", { scope: "col" }, "Value")),
    ),
    h(
      "tbody",
      null,
      rows.map(([k, v]) =>
        h("tr", null, h("th", { scope: "row" }, k), h("td", { class: "mono" }, fmtParam(v))),
      ),
    ),
  );
}

function card(title, description, ...rest) {
  const id = uid("card");
  return h(
    "section",
    { class: "card", "aria-labelledby": id },
    h("h2", { id }, title),
    description ? h("p", { class: "muted small" }, description) : null,
    ...rest,
  );
}

function go(trialId) {
  location.hash = `#/trials/${trialId}`;
}

function trialLink(id, text = `#${id}`) {
  return h("a", { href: `#/trials/${id}`, "data-focus-key": `t${id}` }, text);
}

function hasObjective(t) {
  return t.objective !== null && t.objective !== undefined;
}

function countsText(counts) {
  const parts = Object.entries(counts)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k} ${v}`);
  return parts.join(", ") || "no trials";
}

function bestLine(xs, ys, extendTo) {
  if (!xs.length) return [];
  return [{ label: "best so far", color: "#222", xs, ys, step: true, extendTo }];
}

export function groupView(root, ctx, { params: [rawId] }) {
  const gid = Number(rawId);
  ctx.title(`Group ${gid}`);

  // ---------------------------------------------------------------- skeleton
  const title = h("h1", null, `Group ${gid}`);
  const statusSlot = h("span", { class: "head-status" });
  const meta = h("p", { class: "meta muted" });
  const notes = h("div", { class: "notes" });
  const stopButton = h("button", { type: "button", class: "danger", hidden: true }, "Stop group");
  const exportButton = h("button", { type: "button" }, "Export CSV");
  const stamp = h("p", { class: "stamp muted" });
  const actionMessage = h("p", { class: "action-message", role: "status" });
  const progressSlot = h("div", { class: "group-progress" });
  const countsSlot = h("ul", { class: "counts", "aria-label": "Trials by status" });
  const bestSlot = h("div", { class: "best" });
  const plotsGrid = h("div", { class: "plots" });
  const trialsSlot = h("div");
  const specSlot = h("pre", { class: "spec mono" });

  const dialogTitle = uid("dlg");
  const dialog = h(
    "dialog",
    { class: "confirm", "aria-labelledby": dialogTitle },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: dialogTitle }, "Stop this group?"),
      h(
        "p",
        null,
        "No new trial will be handed out, and running trials are told to stop at their ",
        "next report. This cannot be undone.",
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { value: "cancel", autofocus: true }, "Cancel"),
        h("button", { value: "stop", class: "danger" }, "Stop the group"),
      ),
    ),
  );

  root.append(
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/" }, "Groups"),
      ` / Group ${gid}`,
    ),
    h(
      "div",
      { class: "page-head" },
      h("div", { class: "title-line" }, title, statusSlot),
      h("div", { class: "actions" }, stopButton, exportButton),
    ),
    meta,
    notes,
    h("div", { class: "status-line" }, stamp, actionMessage),
    h(
      "div",
      { class: "summary" },
      card("Progress", null, progressSlot, countsSlot),
      card("Best trial", null, bestSlot),
    ),
    h("h2", { class: "section-title" }, "Plots"),
    plotsGrid,
    trialsSlot,
    h("details", { class: "card" }, h("summary", null, "Search spec (normalised)"), specSlot),
    dialog,
  );

  // ---------------------------------------------------------------- state
  let group = null;
  const trials = new Map();
  let list = [];
  let metricName = null;
  let metricItems = [];
  let metricTruncated = false;
  let logY = false;
  let lastStatus = null;
  let trialsVersion = 0;
  let drawnVersion = -1;
  let missing = false;
  let renderMs = 0;

  // ---------------------------------------------------------------- loading
  async function fetchPages(params) {
    let cursor = params.cursor;
    const out = [];
    for (;;) {
      const page = await getJSON(
        `/api/v1/groups/${gid}/trials${query({ ...params, limit: PAGE_LIMIT, cursor })}`,
        { signal: ctx.signal },
      );
      out.push(...page.items);
      if (!page.next_cursor) return out;
      cursor = page.next_cursor;
    }
  }

  function merge(items) {
    let changed = false;
    for (const t of items) {
      const old = trials.get(t.id);
      if (
        !old ||
        old.status !== t.status ||
        old.objective !== t.objective ||
        old.finished_at !== t.finished_at ||
        old.lease_expires_at !== t.lease_expires_at
      ) {
        changed = true;
      }
      trials.set(t.id, t);
    }
    return changed;
  }

  // Trials with ids in (after, until], oldest first.
  async function fetchRange(after, until) {
    const out = [];
    let cursor = after;
    for (;;) {
      const page = await getJSON(
        `/api/v1/groups/${gid}/trials${query({ limit: PAGE_LIMIT, cursor })}`,
        { signal: ctx.signal },
      );
      for (const t of page.items) {
        if (t.id > until) return out;
        out.push(t);
      }
      if (!page.next_cursor) return out;
      cursor = page.next_cursor;
    }
  }

  // The first load of a big group: the first page tells how densely the group's ids
  // run, the rest is split into id ranges of about a page each, fetched four at a time.
  // Ranges that hold more than a page are continued, so nothing is missed whatever
  // the ids look like; a guess too wide only costs some trials read twice.
  async function fetchAll() {
    const first = await getJSON(`/api/v1/groups/${gid}/trials${query({ limit: PAGE_LIMIT })}`, {
      signal: ctx.signal,
    });
    if (!first.next_cursor) return first.items;
    const lo = first.items[0].id;
    const hi = first.items.at(-1).id;
    const total = Object.values(group.counts).reduce((a, b) => a + b, 0);
    const chunks = Math.max(1, Math.ceil((total - first.items.length) / PAGE_LIMIT));
    const stride = hi - lo + 1;
    const bounds = Array.from({ length: chunks }, (_, i) => hi + i * stride);
    const parts = new Array(chunks);
    let next = 0;
    const worker = async () => {
      while (next < chunks) {
        const i = next;
        next += 1;
        parts[i] = await fetchRange(bounds[i], i + 1 < chunks ? bounds[i + 1] : Infinity);
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, chunks) }, worker));
    return first.items.concat(...parts);
  }

  async function syncTrials() {
    if (!list.length) {
      const changed = merge(await fetchAll());
      list = [...trials.values()].sort((a, b) => a.id - b.id);
      return changed;
    }
    // New trials come after the last id; the only ones that change are the live ones.
    const wasLive = list.filter((t) => LIVE.has(t.status));
    const maxId = list.at(-1).id;
    const requests = [fetchPages({ cursor: maxId })];
    if (wasLive.length) requests.push(fetchPages({ status: "running" }));
    if (wasLive.some((t) => t.status === "pending")) {
      requests.push(fetchPages({ status: "pending" }));
    }
    const pages = await Promise.all(requests);
    let changed = false;
    const seen = new Set();
    for (const items of pages) {
      changed = merge(items) || changed;
      for (const t of items) seen.add(t.id);
    }
    const gone = wasLive.filter((t) => !seen.has(t.id));
    if (gone.length > 50) {
      const from = Math.min(...gone.map((t) => t.id)) - 1;
      changed = merge(await fetchPages({ cursor: from })) || changed;
    } else {
      for (let i = 0; i < gone.length; i += 8) {
        const batch = gone.slice(i, i + 8);
        const got = await Promise.all(
          batch.map((t) => getJSON(`/api/v1/trials/${t.id}`, { signal: ctx.signal })),
        );
        changed = merge(got) || changed;
      }
    }
    if (changed) list = [...trials.values()].sort((a, b) => a.id - b.id);
    return changed;
  }

  function metricNames() {
    const names = new Set();
    if (group?.objective) names.add(group.objective.name);
    for (const t of list) for (const k of Object.keys(t.values || {})) names.add(k);
    for (const m of metricItems) names.add(m.name);
    return [...names];
  }

  async function syncMetrics() {
    if (!metricName) {
      metricName = group.objective?.name || metricNames()[0] || null;
      if (!metricName) {
        const probe = await getJSON(`/api/v1/groups/${gid}/metrics${query({ limit: 20 })}`, {
          signal: ctx.signal,
        });
        metricName = probe.items[0]?.name || null;
      }
    }
    if (!metricName) return false;
    const got = await getJSON(
      `/api/v1/groups/${gid}/metrics${query({ name: metricName, limit: CURVE_TRIALS })}`,
      { signal: ctx.signal },
    );
    const sig = (items) =>
      items.map((m) => `${m.trial_id}:${m.steps.length}:${m.values.at(-1)}`).join(",");
    const changed = sig(got.items) !== sig(metricItems) || got.truncated !== metricTruncated;
    metricItems = got.items;
    metricTruncated = got.truncated;
    return changed;
  }

  async function load() {
    let fresh;
    try {
      fresh = await getJSON(`/api/v1/groups/${gid}`, { signal: ctx.signal });
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 403)) {
        showMissing(error);
        return false;
      }
      throw error;
    }
    if (ctx.disposed) return false;
    const groupChanged =
      !group ||
      group.updated_at !== fresh.updated_at ||
      JSON.stringify(group.counts) !== JSON.stringify(fresh.counts);
    group = fresh;
    const first = drawnVersion < 0;
    const t0 = performance.now();
    const trialsChanged = await syncTrials();
    if (trialsChanged) trialsVersion += 1;
    const metricsChanged = await syncMetrics();
    if (ctx.disposed) return false;
    const t1 = performance.now();
    if (groupChanged || trialsChanged) renderSummary();
    if (groupChanged || trialsChanged || metricsChanged || first) renderPlots();
    if (trialsChanged || first) renderTrials();
    drawnVersion = trialsVersion;
    // For anyone measuring (the end-to-end tests do): fetching, then drawing.
    const kind = first ? "first" : "refresh";
    performance.measure(`hpo:fetch:${kind}`, { start: t0, end: t1 });
    const drawn = performance.measure(`hpo:render:${kind}`, { start: t1, end: performance.now() });
    renderMs = drawn.duration;
    // A stopped group still has trials running until they hear it: follow them too.
    return !GROUP_FINAL.has(group.status) || group.counts.running > 0 || group.counts.pending > 0;
  }

  function showMissing(error) {
    missing = true;
    root.replaceChildren(
      h("h1", null, `Group ${gid}`),
      h(
        "p",
        { class: "panel" },
        error.status === 404
          ? "This group does not exist, or was deleted. "
          : "This group cannot be shown with your API key. ",
        h("a", { href: "#/" }, "Back to the groups"),
      ),
    );
  }

  // ---------------------------------------------------------------- summary
  function renderSummary() {
    const name = group.name || `Group ${gid}`;
    ctx.title(name);
    title.textContent = group.name ? `${group.name}` : `Group ${gid}`;
    fill(statusSlot, badge(group.status), h("span", { class: "muted id" }, ` #${gid}`));
    if (lastStatus && lastStatus !== group.status) ctx.announce(`The group is now ${group.status}`);
    lastStatus = group.status;
    fill(
      meta,
      algorithmName(group),
      " · ",
      objectiveText(group.objective),
      ` · ${group.concurrency} at a time · created `,
      timeEl(group.created_at),
      group.finished_at ? [" · finished ", timeEl(group.finished_at)] : "",
    );
    fill(
      notes,
      group.status_reason
        ? h("p", { class: "note" }, h("strong", null, "Reason: "), group.status_reason)
        : "",
      group.description ? h("p", null, group.description) : "",
      group.warnings?.length
        ? h("ul", { class: "warnings" }, group.warnings.map((w) => h("li", null, w)))
        : "",
    );
    stopButton.hidden = GROUP_FINAL.has(group.status);
    const finished = group.counts.succeeded + group.counts.failed + group.counts.stopped;
    fill(
      progressSlot,
      progressBar(finished, group.planned_trials, "Trials finished"),
      h(
        "p",
        { class: "muted small" },
        `${fmtCount(group.proposed_trials)} proposed so far`,
        group.planned_trials ? ` of ${fmtCount(group.planned_trials)} planned` : "",
      ),
    );
    fill(
      countsSlot,
      TRIAL_STATUSES.map((s) =>
        h(
          "li",
          { class: `count s-${s}`, "data-status": s },
          h("span", { class: "n" }, fmtCount(group.counts[s])),
          h("span", { class: "what" }, s),
        ),
      ),
    );
    const best = group.best_trial;
    if (!best) {
      fill(bestSlot, h("p", { class: "muted" }, "No trial has succeeded yet."));
    } else {
      const link = trialLink(best.id, `Trial #${best.id}`);
      link.classList.add("strong");
      keepFocus(bestSlot, () =>
        fill(
          bestSlot,
          h(
            "p",
            { class: "best-line" },
            link,
            " · ",
            group.objective ? `${group.objective.name} ` : "",
            h("strong", { class: "best-value" }, fmtValue(best.objective)),
            best.finished_at ? [" · ", timeEl(best.finished_at)] : "",
          ),
          paramsTable(best.params, "Params of the best trial"),
        ),
      );
    }
    specSlot.textContent = JSON.stringify(group.hptuning, null, 2);
  }

  // ---------------------------------------------------------------- plots
  const plots = {};
  const better = () => (group.objective?.optimization === "minimize" ? "low" : "high");
  const isBetter = (a, b) => (better() === "low" ? a < b : a > b);
  const objName = () => group.objective?.name || "objective";
  const yKind = () => (logY ? "log" : "linear");

  function describeTrial(t, extra = "") {
    const lines = [`Trial #${t.id} · ${t.status}`];
    if (hasObjective(t)) lines.push(`${objName()} ${fmtValue(t.objective)}`);
    if (extra) lines.push(extra);
    const p = paramsText(t.params);
    lines.push(p.length > 120 ? `${p.slice(0, 119)}…` : p);
    return lines.join("\n");
  }

  function plotCard(key, titleText, description, options, extra) {
    if (!plots[key]) {
      const c = card(titleText, description);
      c.classList.add("plot-card");
      c.dataset.plot = key;
      if (extra?.before) c.append(extra.before);
      plotsGrid.append(c);
      plots[key] = createPlot(c, options);
      plots[key].note = c.querySelector("p.muted");
      if (extra?.after) c.append(extra.after);
      if (extra?.wide) c.classList.add("wide");
      ctx.onDispose(() => plots[key]?.destroy());
    }
    return plots[key];
  }

  function logToggle() {
    const id = uid("log");
    const box = h("input", { type: "checkbox", id });
    box.addEventListener("change", () => {
      logY = box.checked;
      renderPlots(true);
    });
    const label = h("label", { for: id }, "Logarithmic value axis");
    return h("div", { class: "field check" }, box, label);
  }

  function renderPlots() {
    const withObjective = list.filter(hasObjective);
    const positive = withObjective.length > 0 && withObjective.every((t) => t.objective > 0);
    if (!positive) logY = false;
    if (!plots.logToggle && positive) {
      plots.logToggle = logToggle();
      plotsGrid.before(plots.logToggle);
    }
    if (plots.logToggle) plots.logToggle.hidden = !positive;
    drawObjective(withObjective);
    drawParallel(withObjective);
    if (group.rungs) {
      drawRungs();
      drawPromotions(withObjective);
    }
    if (list.some((t) => t.reason?.phase)) drawOrder();
    drawCurves();
  }

  function drawObjective(done) {
    const plot = plotCard(
      "objective",
      "Objective over time",
      `${objName()} of each finished trial by the time it finished, and the best so far.`,
      {
        label: `${objName()} of finished trials over time, with the best so far`,
        render: renderScatter,
      },
    );
    let timed = done
      .filter((t) => t.finished_at)
      .map((t) => ({ t, at: Date.parse(t.finished_at) }));
    timed.sort((a, b) => a.at - b.at);
    // Imported results all finish at the same instant: then their order tells more.
    const byOrder = timed.length > 1 && timed.at(-1).at - timed[0].at < 1000;
    if (byOrder) timed = done.map((t, i) => ({ t, at: i + 1 }));
    plot.note.textContent = byOrder
      ? `${objName()} of each finished trial in the order of the trials (they all finished ` +
        "at the same time: imported), and the best so far."
      : `${objName()} of each finished trial by the time it finished, and the best so far.`;
    const groups = { succeeded: [], stopped: [], failed: [] };
    for (const e of timed) (groups[e.t.status] || groups.failed).push(e);
    const series = [
      ["succeeded", "succeeded", "dot"],
      ["stopped", "stopped", "cross"],
      ["failed", "other", "cross"],
    ].map(([key, label, shape]) => ({
      label,
      shape,
      color: STATUS_COLORS[key],
      items: groups[key],
      xs: groups[key].map((e) => e.at),
      ys: groups[key].map((e) => e.t.objective),
    }));
    const bx = [];
    const by = [];
    let best = null;
    for (const e of timed) {
      if (e.t.status !== "succeeded") continue;
      if (best === null || isBetter(e.t.objective, best)) {
        best = e.t.objective;
        bx.push(e.at);
        by.push(best);
      }
    }
    plot.update({
      x: byOrder
        ? { kind: "linear", label: "trial, in order", integer: true }
        : { kind: "time", label: "finished at" },
      y: {
        kind: yKind(),
        label: `${objName()} ${better() === "low" ? "(lower is better)" : "(higher is better)"}`,
      },
      series,
      lines: bestLine(bx, by, timed.at(-1)?.at),
      describe: (si, i) => {
        const t = series[si].items[i].t;
        return describeTrial(t, `finished ${fmtTime(t.finished_at)}`);
      },
      pick: (si, i) => go(series[si].items[i].t.id),
      empty: "No finished trial yet",
    });
  }

  function paramDims(done) {
    const matrix = group.hptuning?.matrix || {};
    const seen = new Set();
    for (const t of done) for (const k of Object.keys(t.params || {})) seen.add(k);
    const names = [
      ...Object.keys(matrix).filter((k) => seen.has(k)),
      ...[...seen].filter((k) => !(k in matrix)),
    ];
    return names.map((name) => {
      const values = done.map((t) => t.params?.[name]);
      const numeric = values.every((v) => typeof v === "number" && Number.isFinite(v));
      const option = matrix[name] || {};
      const kind = Object.keys(option)[0];
      if (numeric) {
        const log = LOG_KINDS.has(kind) && values.every((v) => v > 0);
        const distinct = new Set(values);
        if (distinct.size > 12 || !("values" in option)) {
          return { name, kind: log ? "log" : "linear", values };
        }
      }
      const keys = values.map((v) => fmtParam(v));
      let categories = [...new Set(keys)];
      if (Array.isArray(option.values)) {
        const order = option.values.map((v) => fmtParam(v));
        const present = new Set(categories);
        categories = [
          ...order.filter((c) => present.has(c)),
          ...categories.filter((c) => !order.includes(c)),
        ];
      } else {
        categories.sort();
      }
      return { name, kind: "cat", values: keys, categories };
    });
  }

  function drawParallel(done) {
    const plot = plotCard(
      "parallel",
      "Parallel coordinates",
      "Each finished trial is a line through its params and its objective (the last axis); " +
        "darker is better.",
      {
        label: "Parallel coordinates of the params against the objective",
        render: renderParallel,
        height: 300,
        minWidth: (d) => (d.dims.length + 1) * 96,
      },
    );
    const bestId = group.best_trial?.id;
    const highlight = done.findIndex((t) => t.id === bestId);
    plot.update({
      dims: paramDims(done),
      objective: {
        name: objName(),
        values: done.map((t) => t.objective),
        better: better(),
        kind: yKind(),
      },
      highlight: highlight >= 0 ? highlight : null,
      describe: (i) => describeTrial(done[i]),
      pick: (i) => go(done[i].id),
      empty: "No finished trial yet",
    });
  }

  function drawRungs() {
    const hb = group.hptuning?.hyperband || {};
    const resource = hb.resource?.name || "resource";
    const table = h("div", { class: "table-wrap" });
    const plot = plotCard(
      "rungs",
      hb.asynchronous ? "ASHA rungs" : "Hyperband brackets and rungs",
      `Trials per rung (bars, the planned size dashed), the ${resource} each rung trains ` +
        "with, and how many went on.",
      {
        label: "Trials per bracket and rung, with promotions",
        render: renderRungs,
        height: rungsHeight,
      },
      { after: table, wide: true },
    );
    plots.rungsTable = plots.rungsTable || table;
    plot.update({
      rungs: group.rungs,
      resourceName: resource,
      describe: (r) =>
        [
          `Bracket ${r.bracket}, rung ${r.rung} · ${resource} ${fmtValue(r.resource)}`,
          `planned ${r.planned ?? "open"} · ${countsText(r.counts)}`,
          `promoted ${r.promoted} · best ${fmtValue(r.best_value)}`,
        ].join("\n"),
    });
    const rows = [...group.rungs].sort((a, b) => b.bracket - a.bracket || a.rung - b.rung);
    fill(
      plots.rungsTable,
      h(
        "table",
        { class: "rungs-table compact" },
        h("caption", { class: "visually-hidden" }, "Rungs"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["Bracket", "Rung", resource, "Planned", "Finished", "Running", "Promoted", "Best"].map(
              (t) => h("th", { scope: "col" }, t),
            ),
          ),
        ),
        h(
          "tbody",
          null,
          rows.map((r) =>
            h(
              "tr",
              null,
              h("td", null, r.bracket),
              h("td", null, r.rung),
              h("td", { class: "num" }, fmtValue(r.resource)),
              h("td", { class: "num" }, r.planned ?? "—"),
              h("td", { class: "num" }, r.counts.succeeded + r.counts.failed + r.counts.stopped),
              h("td", { class: "num" }, r.counts.running + r.counts.pending),
              h("td", { class: "num" }, r.promoted),
              h("td", { class: "num" }, fmtValue(r.best_value)),
            ),
          ),
        ),
      ),
    );
  }

  function drawPromotions(done) {
    const hb = group.hptuning?.hyperband || {};
    const resource = hb.resource?.name || "resource";
    const plot = plotCard(
      "promotions",
      "Promotions",
      `${objName()} of each trial at the ${resource} it trained with; a line joins a trial ` +
        "to its promotion.",
      { label: `${objName()} by ${resource}, promotions linked`, render: renderScatter },
    );
    const brackets = [...new Set(done.map((t) => t.bracket))].sort((a, b) => b - a);
    const series = brackets.map((b, i) => {
      const items = done.filter((t) => t.bracket === b && Number.isFinite(t.resource));
      return {
        label: brackets.length > 1 ? `bracket ${b}` : "trials",
        color: PALETTE[i % PALETTE.length],
        shape: "dot",
        items,
        xs: items.map((t) => t.resource),
        ys: items.map((t) => t.objective),
      };
    });
    const links = { color: "#8a94a3", x1: [], y1: [], x2: [], y2: [] };
    for (const t of done) {
      const parent = t.resume_from ? trials.get(t.resume_from) : null;
      if (!parent || !hasObjective(parent)) continue;
      links.x1.push(parent.resource);
      links.y1.push(parent.objective);
      links.x2.push(t.resource);
      links.y2.push(t.objective);
    }
    const resources = done.map((t) => t.resource).filter((r) => r > 0);
    const spread = resources.length ? Math.max(...resources) / Math.min(...resources) : 1;
    const distinct = [...new Set(resources)].sort((a, b) => a - b);
    plot.update({
      x: {
        kind: spread >= 9 ? "log" : "linear",
        label: resource,
        ticks: distinct.length <= 8 ? distinct : null,
      },
      y: { kind: yKind(), label: objName() },
      series,
      links,
      describe: (si, i) => {
        const t = series[si].items[i];
        const from = t.resume_from ? ` · promoted from #${t.resume_from}` : "";
        const where = `bracket ${t.bracket}, rung ${t.rung}, ${resource} ${fmtValue(t.resource)}`;
        return describeTrial(t, `${where}${from}`);
      },
      pick: (si, i) => go(series[si].items[i].id),
      empty: "No finished trial yet",
    });
  }

  function drawOrder() {
    const plot = plotCard(
      "order",
      "Order of suggestions",
      "The objective of each trial in the order it was suggested, coloured by phase: " +
        "initial (space-filling) or model-based.",
      { label: "Objective by order of suggestion, coloured by phase", render: renderScatter },
    );
    const phases = [
      ["initial", "initial", PALETTE[1]],
      ["model", "model", PALETTE[0]],
      ["other", "user or imported", "#8a94a3"],
    ];
    const byPhase = { initial: [], model: [], other: [] };
    const order = new Map();
    list.forEach((t, i) => order.set(t.id, i + 1));
    const bars = { color: "#9ecae1", xs: [], lo: [], hi: [] };
    const bx = [];
    const by = [];
    let best = null;
    for (const t of list) {
      if (!hasObjective(t)) continue;
      const phase = t.reason?.phase in byPhase ? t.reason.phase : "other";
      byPhase[phase].push(t);
      const mean = t.reason?.predicted_mean;
      const std = t.reason?.predicted_std;
      if (Number.isFinite(mean) && Number.isFinite(std)) {
        bars.xs.push(order.get(t.id));
        bars.lo.push(mean - std);
        bars.hi.push(mean + std);
      }
      if (t.status === "succeeded" && (best === null || isBetter(t.objective, best))) {
        best = t.objective;
        bx.push(order.get(t.id));
        by.push(best);
      }
    }
    const series = phases.map(([key, label, color]) => ({
      label,
      color,
      shape: "dot",
      items: byPhase[key],
      xs: byPhase[key].map((t) => order.get(t.id)),
      ys: byPhase[key].map((t) => t.objective),
    }));
    plot.update({
      x: { kind: "linear", label: "suggestion", integer: true },
      y: { kind: yKind(), label: objName() },
      series,
      bars: bars.xs.length ? bars : null,
      lines: bestLine(bx, by, list.length),
      describe: (si, i) => {
        const t = series[si].items[i];
        const r = t.reason || {};
        const parts = [`suggestion ${order.get(t.id)} · ${r.phase || t.source}`];
        if (Number.isFinite(r.predicted_mean)) {
          parts.push(`predicted ${fmtValue(r.predicted_mean)} ± ${fmtValue(r.predicted_std)}`);
        }
        return describeTrial(t, parts.join(" · "));
      },
      pick: (si, i) => go(series[si].items[i].id),
      empty: "No finished trial yet",
    });
    if (bars.xs.length) plot.element.dataset.bars = "predicted mean ± std";
  }

  function drawCurves() {
    let picker = plots.metricPicker;
    const names = metricNames();
    if (!picker) {
      picker = h("div", { class: "toolbar" });
      plots.metricPicker = picker;
    }
    const plot = plotCard(
      "curves",
      "Metric curves",
      `The reported metric of the ${CURVE_TRIALS} most recent trials over their steps; ` +
        "a cross marks where a trial was stopped.",
      { label: "Metric curves of trials over their steps", render: renderCurves },
      { before: picker },
    );
    const namesKey = `${names.join("\n")}|${metricTruncated && metricItems.length > 0}`;
    if (plots.metricNamesKey !== namesKey) {
      plots.metricNamesKey = namesKey;
      const current = names.includes(metricName) ? metricName : names[0];
      const sel = select("Metric", names.map((n) => [n, n]), current, async (value) => {
        metricName = value;
        await syncMetrics();
        drawCurves();
      });
      fill(
        picker,
        names.length ? sel.element : "",
        metricTruncated && metricItems.length
          ? h("span", { class: "muted small" }, `latest ${CURVE_TRIALS} trials shown`)
          : "",
      );
    }
    const bestId = group.best_trial?.id;
    plot.update({
      series: metricItems.map((m) => ({
        key: m.trial_id,
        status: trials.get(m.trial_id)?.status || "other",
        steps: m.steps,
        values: m.values,
        highlight: m.trial_id === bestId,
      })),
      y: {
        kind: logY && metricItems.every((m) => m.values.every((v) => v > 0)) ? "log" : "linear",
        label: metricName || "metric",
      },
      x: { label: "step" },
      describe: (se, step, value) =>
        `Trial #${se.key} · ${se.status}\nstep ${step}: ${metricName} ${fmtValue(value)}`,
      pick: (se) => go(se.key),
      empty: metricName ? `No ${metricName} reported yet` : "No metric reported yet",
    });
  }

  // ---------------------------------------------------------------- trials table
  const table = { status: "", sort: "newest", page: 0 };
  const tableBody = h("tbody");
  const tableHead = h("thead");
  const pager = h("div", { class: "pager" });
  const tableStatus = h("p", { class: "muted small", "aria-live": "polite" });

  function trialsSection() {
    const statuses = [["", "All"], ...TRIAL_STATUSES.map((s) => [s, s])];
    const statusSel = select("Status", statuses, "", (v) => {
      table.status = v;
      table.page = 0;
      renderTrials();
    });
    const sortSel = select(
      "Order",
      [
        ["newest", "Newest first"],
        ["oldest", "Oldest first"],
        ["best", "Best first"],
      ],
      "newest",
      (v) => {
        table.sort = v;
        table.page = 0;
        renderTrials();
      },
    );
    const c = card(
      "Trials",
      null,
      h("div", { class: "toolbar" }, statusSel.element, sortSel.element, tableStatus),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "trials-table" },
          h("caption", { class: "visually-hidden" }, "Trials of the group"),
          tableHead,
          tableBody,
        ),
      ),
      pager,
    );
    c.id = "trials";
    trialsSlot.append(c);
  }
  trialsSection();

  function renderTrials() {
    if (!group) return;
    const hyperband = Boolean(group.rungs);
    const modelBased = list.some((t) => t.reason?.phase);
    let rows = table.status ? list.filter((t) => t.status === table.status) : list.slice();
    if (table.sort === "newest") rows.reverse();
    if (table.sort === "best") {
      const sign = better() === "low" ? 1 : -1;
      rows = rows
        .filter(hasObjective)
        .sort((a, b) => sign * (a.objective - b.objective))
        .concat(rows.filter((t) => !hasObjective(t)));
    }
    const pages = Math.max(1, Math.ceil(rows.length / TABLE_PAGE));
    table.page = Math.min(table.page, pages - 1);
    const start = table.page * TABLE_PAGE;
    const shown = rows.slice(start, start + TABLE_PAGE);
    const cols = ["Trial", "Status", objName(), "Params"];
    if (hyperband) {
      cols.push("Bracket · rung", group.hptuning?.hyperband?.resource?.name || "resource");
    }
    if (modelBased) cols.push("Phase");
    cols.push("Finished");
    fill(tableHead, h("tr", null, cols.map((c) => h("th", { scope: "col" }, c))));
    const row = (t) =>
      h(
        "tr",
        { "data-trial": t.id },
        h("td", null, trialLink(t.id)),
        h("td", null, badge(t.status)),
        h("td", { class: "num" }, fmtValue(t.objective)),
        h("td", { class: "params mono", title: paramsText(t.params) }, paramsText(t.params)),
        hyperband
          ? [
              h("td", null, `${t.bracket ?? "—"} · ${t.rung ?? "—"}`),
              h("td", { class: "num" }, fmtValue(t.resource)),
            ]
          : "",
        modelBased ? h("td", null, t.reason?.phase || t.source) : "",
        h("td", null, timeEl(t.finished_at)),
      );
    keepFocus(tableBody, () => fill(tableBody, shown.map(row)));
    tableStatus.textContent = rows.length
      ? `${fmtCount(start + 1)}–${fmtCount(start + shown.length)} of ${fmtCount(rows.length)}`
      : "No trials";
    const turn = (step, text, disabled) => {
      const button = h("button", { type: "button", disabled, "data-focus-key": text }, text);
      button.addEventListener("click", () => {
        table.page += step;
        renderTrials();
        if (document.activeElement === document.body) {
          pager.querySelector("button:not([disabled])")?.focus();
        }
      });
      return button;
    };
    keepFocus(pager, () =>
      fill(
        pager,
        pages > 1
          ? [
              turn(-1, "Previous page", table.page === 0),
              h("span", { class: "muted small" }, `Page ${table.page + 1} of ${pages}`),
              turn(1, "Next page", table.page >= pages - 1),
            ]
          : "",
      ),
    );
  }

  // ---------------------------------------------------------------- actions
  stopButton.addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "stop") return stopButton.focus();
    stopButton.disabled = true;
    try {
      group = await getJSON(`/api/v1/groups/${gid}/stop`, { method: "POST", signal: ctx.signal });
      actionMessage.textContent = "The group was stopped.";
      renderSummary();
      exportButton.focus();
      liveLoop.now();
    } catch (error) {
      actionMessage.textContent = `Could not stop the group: ${error.message}`;
    } finally {
      stopButton.disabled = false;
    }
  });

  exportButton.addEventListener("click", async () => {
    exportButton.disabled = true;
    actionMessage.textContent = "Preparing the CSV…";
    try {
      const response = await request(`/api/v1/groups/${gid}/export${query({ format: "csv" })}`, {
        headers: { Accept: "text/csv" },
        signal: ctx.signal,
      });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `group-${gid}.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
      actionMessage.textContent = `Exported ${fmtCount(list.length)} trials as group-${gid}.csv.`;
    } catch (error) {
      actionMessage.textContent = `Export failed: ${error.message}`;
    } finally {
      exportButton.disabled = false;
    }
  });

  stamp.textContent = "Loading…";
  // Every 2 s; a group so big that drawing it takes long is redrawn less often.
  const interval = () => Math.max(2000, Math.min(10000, renderMs * 5));
  const liveLoop = ctx.live(load, {
    interval,
    stamp: (text, live) => {
      if (missing) return;
      const every = Math.round(interval() / 1000);
      stamp.textContent = live
        ? `${text} · refreshing every ${every} s`
        : `${text} · not refreshing: the group has ended`;
      stamp.dataset.live = live ? "true" : "false";
    },
  });
}
