// The dashboard's shell: hash routes, the sign-in form, and the refresh loop views share.
//   #/                groups        #/create        a new group
//   #/groups/ID       a group       #/trials/ID     a trial

import { auth } from "./api.js";
import { fmtClock, h } from "./dom.js";
import { createView } from "./view-create.js";
import { groupView } from "./view-group.js";
import { groupsView } from "./view-groups.js";
import { trialView } from "./view-trial.js";

const ROUTES = [
  [/^\/?$/, groupsView, "groups"],
  [/^\/create$/, createView, "create"],
  [/^\/groups\/(\d+)$/, groupView, "groups"],
  [/^\/trials\/(\d+)$/, trialView, "groups"],
];

const main = document.getElementById("main");
const announcer = document.getElementById("announcer");
let current = null;
let firstRoute = true;

export function announce(text) {
  announcer.textContent = "";
  // A fresh text node makes screen readers read it even when it repeats.
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

function parseHash() {
  const raw = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

// What a view gets: an abort signal for its requests, a way to run work again while it
// stays on screen, and the page title.
function makeContext() {
  const controller = new AbortController();
  const timers = new Set();
  const cleanups = [];
  return {
    signal: controller.signal,
    get disposed() {
      return controller.signal.aborted;
    },
    title(text) {
      document.title = text ? `${text} · hpo-engine` : "hpo-engine";
    },
    announce,
    onDispose(fn) {
      cleanups.push(fn);
    },
    // Runs `task` now and then every `interval` ms (a number, or a function giving one)
    // for as long as it returns true, skipping turns while the tab is hidden. `stamp`
    // shows when the data last came.
    live(task, { interval = 2000, stamp } = {}) {
      let timer = 0;
      let running = false;
      const turn = async () => {
        timers.delete(timer);
        if (controller.signal.aborted || running) return;
        if (document.hidden) {
          timer = setTimeout(turn, 1000);
          timers.add(timer);
          return;
        }
        running = true;
        let again = true;
        try {
          again = await task();
          if (stamp) stamp(`Last updated ${fmtClock(new Date())}`, again);
        } catch (error) {
          if (controller.signal.aborted || error.name === "AbortError") return;
          if (error.status === 401 || error.status === 403) again = false;
          if (stamp) stamp(`Update failed (${error.message}); retrying`, again);
        } finally {
          running = false;
        }
        if (again && !controller.signal.aborted) {
          timer = setTimeout(turn, typeof interval === "function" ? interval() : interval);
          timers.add(timer);
        }
      };
      const kick = () => {
        if (!running && !controller.signal.aborted) {
          for (const t of timers) clearTimeout(t);
          timers.clear();
          turn();
        }
      };
      turn();
      return { now: kick };
    },
    dispose() {
      controller.abort();
      for (const t of timers) clearTimeout(t);
      for (const fn of cleanups) fn();
    },
  };
}

function route() {
  current?.dispose();
  const { path, query } = parseHash();
  let view = notFound;
  let params = [];
  let section = "";
  for (const [pattern, fn, name] of ROUTES) {
    const m = pattern.exec(path);
    if (m) {
      view = fn;
      params = m.slice(1);
      section = name;
      break;
    }
  }
  for (const link of document.querySelectorAll("nav.mainnav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  current = makeContext();
  main.replaceChildren();
  view(main, current, { params, query });
  if (!firstRoute) {
    // Keyboard and screen-reader users land on the new page's heading.
    const heading = main.querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
    window.scrollTo(0, 0);
  }
  firstRoute = false;
}

function notFound(root, ctx) {
  ctx.title("Not found");
  root.append(
    h("h1", null, "Not found"),
    h("p", null, "There is no such page. ", h("a", { href: "#/" }, "Back to the groups")),
  );
}

// ---------------------------------------------------------------- sign-in

function signIn(message) {
  current?.dispose();
  current = makeContext();
  current.title("Sign in");
  const input = h("input", {
    id: "api-key",
    type: "password",
    name: "api-key",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
  });
  const form = h(
    "form",
    { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", null, message),
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    auth.set(key);
    // A full reload: nothing seen under another key stays in memory.
    location.reload();
  });
  for (const link of document.querySelectorAll("nav.mainnav a")) link.removeAttribute("aria-current");
  main.replaceChildren(form);
  input.focus();
  renderAccount();
}

function renderAccount() {
  const slot = document.getElementById("account");
  if (!auth.key) {
    slot.replaceChildren();
    return;
  }
  slot.replaceChildren(
    h(
      "button",
      {
        type: "button",
        class: "link-button",
        onclick: () => {
          auth.clear();
          location.reload();
        },
      },
      "Sign out",
    ),
  );
}

window.addEventListener("hpo:unauthorized", () => {
  const message = auth.key
    ? "This API key was not accepted. Enter another one."
    : "This service needs an API key. Enter yours; it is kept in this browser only.";
  if (auth.key) auth.clear();
  signIn(message);
});

document.querySelector(".skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  const heading = main.querySelector("h1") || main;
  heading.tabIndex = -1;
  heading.focus();
});

window.addEventListener("hashchange", route);
renderAccount();
route();
