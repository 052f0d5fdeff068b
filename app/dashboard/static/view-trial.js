// A trial: params, status and lease, every metric as a curve, why it was suggested,
// and why it stopped. Refreshes itself while the trial is pending or running.

import { ApiError, getJSON } from "./api.js";
import {
  algorithmName,
  badge,
  fill,
  fmtDuration,
  fmtParam,
  fmtTime,
  fmtValue,
  h,
  timeEl,
  uid,
} from "./dom.js";
import { createPlot, renderCurves } from "./plot.js";
import { paramsTable } from "./view-group.js";

const LIVE = new Set(["pending", "running"]);

function dl(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.filter(Boolean).map(([term, value]) => [h("dt", null, term), h("dd", null, value)]),
  );
}

function section(titleText, ...children) {
  const id = uid("sec");
  const heading = h("h2", { id }, titleText);
  return h("section", { class: "card", "aria-labelledby": id }, heading, ...children);
}

function trialLink(id) {
  return id ? h("a", { href: `#/trials/${id}` }, `Trial #${id}`) : null;
}

const REASON_LABELS = {
  phase: "Phase",
  acquisition: "Acquisition function",
  acquisition_value: "Acquisition value",
  predicted_mean: "Predicted mean",
  predicted_std: "Predicted deviation",
  pending_strategy: "Running trials counted as",
  n_observations: "Finished trials seen",
  n_pending: "Running trials seen",
  log_ratio: "log l(x)/g(x)",
  gamma_split: "Good trials (γ split)",
  queued: "Computed ahead",
};

// A sentence on why this configuration was tried, from what the trial and group say.
function whySuggested(t, group) {
  const r = t.reason || {};
  if (t.source === "user") {
    return "A user enqueued this configuration; it was handed out before the algorithm's own.";
  }
  if (t.source === "import") {
    return "Imported as a past result; the algorithm took it into account.";
  }
  if (t.replaces_id) {
    return `A re-offer of trial #${t.replaces_id}, whose lease expired before it finished.`;
  }
  if (r.phase === "initial") {
    return (
      "Initial phase: a space-filling draw, made before the model has enough finished " +
      "trials to learn from."
    );
  }
  if (r.phase === "model") {
    const parts = ["Model phase: chosen because the model rated it best among the candidates"];
    if (Number.isFinite(r.predicted_mean)) {
      parts.push(`, predicting ${fmtValue(r.predicted_mean)} ± ${fmtValue(r.predicted_std)}`);
    }
    if (Number.isFinite(r.acquisition_value)) {
      parts.push(` (${r.acquisition || "acquisition"} value ${fmtValue(r.acquisition_value)})`);
    }
    if (Number.isFinite(r.log_ratio)) parts.push(` (log density ratio ${fmtValue(r.log_ratio)})`);
    return `${parts.join("")}.`;
  }
  if (!group) return "";
  const of = group.planned_trials ? ` of ${group.planned_trials}` : "";
  switch (group.algorithm) {
    case "grid":
      return `Cell ${t.config_index + 1}${of} of the grid, taken in order.`;
    case "random":
      return `Random draw ${t.config_index + 1}${of}, from the group's seed.`;
    case "mapping":
      return `Entry ${t.config_index + 1} of the mapping.`;
    case "hyperband": {
      const res = group.hptuning?.hyperband?.resource?.name || "resource";
      const amount = `${res} ${fmtValue(t.resource)}`;
      if (t.resume_from) {
        const how = t.resume ? "resuming from its checkpoint" : "started afresh";
        return (
          `Promoted from trial #${t.resume_from}: it was among the best of bracket ` +
          `${t.bracket}, rung ${t.rung - 1}, so it goes on with ${amount}, ${how}.`
        );
      }
      return `A new configuration of bracket ${t.bracket}, from rung ${t.rung} with ${amount}.`;
    }
    default:
      return `Proposed by ${algorithmName(group)}.`;
  }
}

function reasonValue(v) {
  if (typeof v === "number") return fmtValue(v, 6);
  if (typeof v === "object") return JSON.stringify(v);
  return fmtParam(v);
}

function whyStopped(t) {
  if (t.stop_reason) return t.stop_reason;
  switch (t.status) {
    case "stopped":
      return "The worker reported it as stopped.";
    case "failed":
      return "The worker reported it as failed.";
    case "expired":
      return "Its lease ran out: the worker stopped reporting. Its configuration is offered again.";
    default:
      return null;
  }
}

export function trialView(root, ctx, { params: [rawId] }) {
  const tid = Number(rawId);
  ctx.title(`Trial ${tid}`);
  const crumbs = h(
    "nav",
    { class: "crumbs", "aria-label": "Breadcrumb" },
    h("a", { href: "#/" }, "Groups"),
    " / …",
  );
  const title = h("h1", null, `Trial #${tid}`);
  const statusSlot = h("span", { class: "head-status" });
  const stamp = h("p", { class: "stamp muted" });
  const facts = h("div");
  const params = h("div");
  const values = h("div");
  const why = h("div");
  const stopped = section("Why it stopped");
  stopped.hidden = true;
  const stoppedText = h("p");
  stopped.append(stoppedText);
  const charts = h("div", { class: "plots" });
  root.append(
    crumbs,
    h("div", { class: "page-head" }, h("div", { class: "title-line" }, title, statusSlot)),
    stamp,
    h("div", { class: "summary" }, section("Status", facts), section("Params", params)),
    h(
      "div",
      { class: "summary" },
      section("Why it was suggested", why),
      section("Final values", values),
    ),
    stopped,
    h("h2", { class: "section-title" }, "Metrics"),
    charts,
  );

  let group = null;
  const plots = new Map();
  let seen = "";

  async function load() {
    let trial;
    try {
      trial = await getJSON(`/api/v1/trials/${tid}`, { signal: ctx.signal });
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 403)) {
        root.replaceChildren(
          h("h1", null, `Trial #${tid}`),
          h(
            "p",
            { class: "panel" },
            "This trial does not exist, or cannot be shown. ",
            h("a", { href: "#/" }, "Back to the groups"),
          ),
        );
        return false;
      }
      throw error;
    }
    if (!group) group = await getJSON(`/api/v1/groups/${trial.group_id}`, { signal: ctx.signal });
    const metrics = await getJSON(`/api/v1/trials/${tid}/metrics`, { signal: ctx.signal });
    if (ctx.disposed) return false;
    const signature = JSON.stringify([
      trial,
      metrics.items.map((m) => [m.name, m.steps.length, m.values.at(-1)]),
    ]);
    if (signature !== seen) {
      seen = signature;
      render(trial, metrics.items);
    } else {
      renderLease(trial);
    }
    return LIVE.has(trial.status);
  }

  const leaseSlot = h("span");
  function renderLease(t) {
    if (!t.lease_expires_at) {
      fill(leaseSlot, "—");
      return;
    }
    const left = (Date.parse(t.lease_expires_at) - Date.now()) / 1000;
    const live = LIVE.has(t.status);
    fill(
      leaseSlot,
      h("time", { datetime: t.lease_expires_at }, fmtTime(t.lease_expires_at)),
      !live
        ? " (no longer held)"
        : left > 0
          ? ` (expires in ${fmtDuration(left)})`
          : " (past; the next sweep expires it)",
    );
  }

  function render(t, metricItems) {
    const groupName = group.name || `Group ${group.id}`;
    fill(
      crumbs,
      h("a", { href: "#/" }, "Groups"),
      " / ",
      h("a", { href: `#/groups/${group.id}` }, groupName),
      ` / Trial #${tid}`,
    );
    fill(statusSlot, badge(t.status));
    renderLease(t);
    let duration = null;
    if (t.started_at && (t.finished_at || LIVE.has(t.status))) {
      const end = t.finished_at ? Date.parse(t.finished_at) : Date.now();
      duration = fmtDuration((end - Date.parse(t.started_at)) / 1000);
    }
    const known = (v) => v !== null && v !== undefined;
    const objective = group.objective;
    fill(
      facts,
      dl([
        ["Group", h("a", { href: `#/groups/${group.id}` }, groupName)],
        ["Status", t.status],
        objective ? [objective.name, h("strong", null, fmtValue(t.objective))] : null,
        ["Worker", t.worker_id || "—"],
        ["Lease", leaseSlot],
        ["Attempt", String(t.attempt)],
        ["Created", timeEl(t.created_at, fmtTime(t.created_at))],
        ["Started", timeEl(t.started_at, fmtTime(t.started_at))],
        ["Finished", timeEl(t.finished_at, fmtTime(t.finished_at))],
        duration ? ["Duration", duration] : null,
        known(t.bracket) ? ["Bracket · rung", `${t.bracket} · ${t.rung}`] : null,
        known(t.resource) ? ["Resource", fmtValue(t.resource)] : null,
        t.resume_from ? ["Continues", trialLink(t.resume_from)] : null,
        t.replaces_id ? ["Re-offer of", trialLink(t.replaces_id)] : null,
      ]),
    );
    fill(params, paramsTable(t.params, "Params"));
    const finals = Object.entries(t.values || {});
    fill(
      values,
      finals.length
        ? dl(finals.map(([k, v]) => [k, fmtValue(v, 6)]))
        : h("p", { class: "muted" }, LIVE.has(t.status) ? "Not finished yet." : "None reported."),
    );
    const reason = t.reason || {};
    const extra = Object.entries(reason).filter(([, v]) => v !== null && v !== undefined);
    fill(
      why,
      h("p", { class: "why" }, whySuggested(t, group)),
      extra.length
        ? dl(extra.map(([k, v]) => [REASON_LABELS[k] || k, reasonValue(v)]))
        : "",
    );
    const stopText = whyStopped(t);
    stopped.hidden = !stopText;
    stoppedText.textContent = stopText || "";

    if (!metricItems.length) {
      const live = LIVE.has(t.status);
      const none = live ? "No metric reported yet." : "This trial reported no metric.";
      fill(charts, h("p", { class: "muted" }, none));
      plots.clear();
      return;
    }
    if (!plots.size) charts.replaceChildren();
    for (const m of metricItems) {
      let plot = plots.get(m.name);
      if (!plot) {
        const id = uid("metric");
        const c = h(
          "section",
          { class: "card plot-card", "aria-labelledby": id, "data-metric": m.name },
          h("h3", { id }, m.name),
        );
        charts.append(c);
        plot = createPlot(c, {
          label: `${m.name} of trial ${tid} over its steps`,
          render: renderCurves,
          height: 220,
        });
        ctx.onDispose(() => plot.destroy());
        plots.set(m.name, plot);
      }
      plot.update({
        series: [{ key: tid, status: t.status, steps: m.steps, values: m.values }],
        y: { kind: "linear", label: m.name },
        x: { label: "step" },
        statusLabel: () => `trial #${tid}, ${t.status}`,
        describe: (_, step, value) => `step ${step}: ${m.name} ${fmtValue(value, 6)}`,
      });
    }
  }

  ctx.live(load, {
    interval: 2000,
    stamp: (text, live) => {
      stamp.textContent = live ? `${text} · refreshing every 2 s` : text;
    },
  });
}
