// The groups page: every group, newest first, with its progress; filter by status.

import { getJSON, query } from "./api.js";
import {
  GROUP_FINAL,
  GROUP_STATUSES,
  algorithmName,
  badge,
  fill,
  fmtCount,
  fmtValue,
  h,
  keepFocus,
  objectiveText,
  select,
  timeEl,
} from "./dom.js";

const PAGE = 50;

export function progressBar(done, planned, label) {
  const known = Number.isFinite(planned) && planned > 0;
  const fraction = known ? Math.min(1, done / planned) : 0;
  const bar = h("span", { class: `bar${known ? "" : " unknown"}` }, h("span", { class: "fill" }));
  bar.firstChild.style.width = `${(fraction * 100).toFixed(1)}%`;
  const text = known ? `${fmtCount(done)} / ${fmtCount(planned)}` : `${fmtCount(done)} done`;
  return h(
    "span",
    {
      class: "progress",
      role: "progressbar",
      "aria-label": label,
      "aria-valuemin": 0,
      "aria-valuemax": known ? planned : null,
      "aria-valuenow": known ? done : null,
      "aria-valuetext": known ? `${done} of ${planned} trials finished` : `${done} trials finished`,
    },
    bar,
    h("span", { class: "progress-text" }, text),
  );
}

export function groupsView(root, ctx, { query: params }) {
  ctx.title("Groups");
  const status = GROUP_STATUSES.includes(params.get("status")) ? params.get("status") : "";
  const filter = select(
    "Status",
    [["", "All statuses"], ...GROUP_STATUSES.map((s) => [s, s])],
    status,
    (value) => {
      location.hash = value ? `#/?status=${value}` : "#/";
    },
  );
  const stamp = h("p", { class: "stamp muted", "aria-live": "off" });
  const body = h("tbody", { role: "rowgroup" });
  const table = h(
    "table",
    { class: "groups-table", role: "table" },
    h("caption", { class: "visually-hidden" }, "Groups, newest first"),
    h(
      "thead",
      null,
      h(
        "tr",
        { role: "row" },
        ["Group", "Status", "Algorithm", "Progress", "Best value", "Created"].map((t) =>
          h("th", { scope: "col", role: "columnheader" }, t),
        ),
      ),
    ),
    body,
  );
  const more = h("button", { type: "button", hidden: true }, "Load more groups");
  const empty = h("p", { class: "empty-state", hidden: true });
  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Groups"),
      h("a", { href: "#/create", class: "button primary" }, "New group"),
    ),
    h("div", { class: "toolbar" }, filter.element, stamp),
    h("div", { class: "table-wrap" }, table),
    empty,
    more,
  );

  let items = [];
  let cursor = null;

  function row(g) {
    const name = g.name || `Group ${g.id}`;
    return h(
      "tr",
      { "data-group": g.id, role: "row" },
      h(
        "td",
        { "data-label": "Group", role: "cell" },
        h("a", { href: `#/groups/${g.id}`, class: "strong", "data-focus-key": `g${g.id}` }, name),
        h("span", { class: "muted id" }, ` #${g.id}`),
      ),
      h("td", { "data-label": "Status", role: "cell" }, badge(g.status)),
      h("td", { "data-label": "Algorithm", role: "cell" }, algorithmName(g)),
      h(
        "td",
        { "data-label": "Progress", role: "cell" },
        progressBar(g.finished_trials, g.planned_trials, `Progress of ${name}`),
      ),
      h(
        "td",
        { "data-label": "Best value", class: "num", role: "cell" },
        h("span", null, fmtValue(g.best_value)),
        g.objective ? h("span", { class: "muted small" }, ` ${objectiveText(g.objective)}`) : "",
      ),
      h("td", { "data-label": "Created", role: "cell" }, timeEl(g.created_at)),
    );
  }

  function render() {
    keepFocus(body, () => fill(body, items.map(row)));
    more.hidden = !cursor;
    empty.hidden = items.length > 0;
    table.hidden = items.length === 0;
    fill(
      empty,
      status ? `No ${status} groups. ` : "No groups yet. ",
      h("a", { href: "#/create" }, "Create one"),
      ".",
    );
  }

  async function load() {
    // The refresh re-reads as many groups as are shown, so a page keeps its length.
    const limit = Math.min(1000, Math.max(PAGE, items.length));
    const page = await getJSON(`/api/v1/groups${query({ status, limit })}`, {
      signal: ctx.signal,
    });
    if (ctx.disposed) return false;
    items = page.items;
    cursor = page.next_cursor;
    render();
    return items.some((g) => !GROUP_FINAL.has(g.status));
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await getJSON(`/api/v1/groups${query({ status, limit: PAGE, cursor })}`, {
        signal: ctx.signal,
      });
      const first = items.length;
      items = items.concat(page.items);
      cursor = page.next_cursor;
      render();
      body.rows[first]?.querySelector("a")?.focus();
    } finally {
      more.disabled = false;
    }
  });

  ctx.live(load, {
    interval: 3000,
    stamp: (text, live) => {
      stamp.textContent = live ? `${text} · refreshing while groups run` : text;
    },
  });
}
