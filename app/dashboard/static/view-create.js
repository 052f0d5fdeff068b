// The create page: paste or upload a polyaxonfile, an `hptuning` section or the JSON
// form; the API's 422 errors are shown next to the lines they name.

import { ApiError, newKey, request } from "./api.js";
import { fill, h, uid } from "./dom.js";
import { lineOfError } from "./yamlpath.js";

const DRAFT = "hpo.draft";
const MAX_BYTES = 1024 * 1024;

const EXAMPLES = {
  grid: `# Grid search: every combination, two trials at a time.
name: grid example
objective: {name: loss, optimization: minimize}
hptuning:
  concurrency: 2
  matrix:
    lr:
      logspace: '-4:-1:4'
    batch_size:
      values: [32, 64]
`,
  random: `# Random search over a mixed space.
name: random example
objective: {name: accuracy, optimization: maximize}
hptuning:
  concurrency: 4
  seed: 7
  random_search:
    n_experiments: 40
  matrix:
    lr:
      loguniform: '-9:-2'
    dropout:
      uniform: '0:0.5'
    optimizer:
      values: [adam, sgd, rmsprop]
`,
  polyaxonfile: `# A Polyaxon group file: only its hptuning section is read.
version: 1
kind: group
hptuning:
  concurrency: 2
  random_search:
    n_experiments: 10
  early_stopping:
    - metric: loss
      value: 0.05
      optimization: minimize
  matrix:
    lr:
      uniform: '0.001:0.1'
    units:
      values: [64, 128, 256]
run:
  cmd: python train.py --lr={{ lr }} --units={{ units }}
`,
  hyperband: `# Hyperband: many short trials, the best get more epochs.
name: hyperband example
hptuning:
  concurrency: 8
  hyperband:
    max_iter: 27
    eta: 3
    resource:
      name: epochs
      type: int
    metric:
      name: val_loss
      optimization: minimize
    resume: true
  matrix:
    lr:
      loguniform: '-9:-2'
    dropout:
      uniform: '0:0.5'
`,
  asha: `# ASHA, the asynchronous Hyperband: promotes as soon as a trial is in the top 1/eta.
name: asha example
hptuning:
  concurrency: 8
  hyperband:
    max_iter: 81
    eta: 3
    asynchronous: true
    resource:
      name: epochs
      type: int
    metric:
      name: val_loss
      optimization: minimize
  matrix:
    lr:
      loguniform: '-9:-2'
`,
  bo: `# Bayesian optimization: a Gaussian process proposes where to look next.
name: bo example
hptuning:
  concurrency: 2
  bo:
    n_initial_trials: 8
    n_iterations: 30
    metric:
      name: loss
      optimization: minimize
    utility_function:
      acquisition_function: ei
      eps: 0.0
  matrix:
    x1:
      uniform: '-5:10'
    x2:
      uniform: '0:15'
`,
  tpe: `# TPE: a tree-structured Parzen estimator.
name: tpe example
hptuning:
  concurrency: 2
  tpe:
    n_experiments: 40
    n_initial_trials: 10
    metric:
      name: loss
      optimization: minimize
  matrix:
    lr:
      loguniform: '-9:-2'
    layers:
      values: [1, 2, 3]
`,
};

const EXAMPLE_NAMES = [
  ["grid", "Grid search"],
  ["random", "Random search"],
  ["polyaxonfile", "Polyaxonfile (kind: group)"],
  ["hyperband", "Hyperband"],
  ["asha", "ASHA (asynchronous Hyperband)"],
  ["bo", "Bayesian optimization"],
  ["tpe", "TPE"],
];

export function createView(root, ctx) {
  ctx.title("New group");
  const textId = uid("spec");
  const fileId = uid("file");
  const exampleId = uid("example");
  const helpId = uid("help");
  const errorsId = uid("errors");

  const textarea = h("textarea", {
    id: textId,
    name: "spec",
    wrap: "off",
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    rows: 22,
    placeholder: "Paste a polyaxonfile or an hptuning section here, or start from an example.",
    "aria-describedby": `${helpId} ${errorsId}`,
  });
  const gutter = h("div", { class: "gutter-inner" });
  const backdrop = h("div", { class: "backdrop-inner" });
  const editor = h(
    "div",
    { class: "editor" },
    h("div", { class: "gutter", "aria-hidden": "true" }, gutter),
    h(
      "div",
      { class: "code" },
      h("div", { class: "backdrop", "aria-hidden": "true" }, backdrop),
      textarea,
    ),
  );
  const errorsBox = h("div", { id: errorsId, class: "spec-errors", tabindex: "-1", hidden: true });
  const exampleSelect = h(
    "select",
    { id: exampleId },
    EXAMPLE_NAMES.map(([v, t]) => h("option", { value: v }, t)),
  );
  const useExample = h("button", { type: "button" }, "Use this example");
  const fileInput = h("input", {
    id: fileId,
    type: "file",
    accept: ".yml,.yaml,.json,.txt,application/yaml,application/json,text/yaml,text/plain",
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Create group");
  const form = h(
    "form",
    { class: "create-form", novalidate: true },
    h(
      "div",
      { class: "toolbar wrap" },
      h(
        "div",
        { class: "field inline" },
        h("label", { for: exampleId }, "Start from an example"),
        exampleSelect,
        useExample,
      ),
      h("div", { class: "field inline" }, h("label", { for: fileId }, "Upload a file"), fileInput),
    ),
    h("label", { for: textId, class: "block-label" }, "Specification (YAML or JSON)"),
    h(
      "p",
      { id: helpId, class: "muted small" },
      "A polyaxonfile (kind: group), a bare hptuning section, or the JSON form. Errors are ",
      "shown next to their line before anything is created. Ctrl+Enter creates the group.",
    ),
    editor,
    errorsBox,
    h("div", { class: "actions" }, submit),
  );
  root.append(h("div", { class: "page-head" }, h("h1", null, "New group")), form);

  let errors = [];
  let idempotency = { text: null, key: null };

  function lines() {
    return textarea.value.split("\n");
  }

  let painted = "";

  function paint() {
    const all = lines();
    const bad = new Map();
    for (const e of errors) {
      if (e.line) bad.set(e.line, [...(bad.get(e.line) || []), e]);
    }
    // Typing within a line changes nothing here: redraw only for new lines or errors.
    const key = `${all.length}:${[...bad.keys()].join(",")}`;
    if (key === painted && !bad.size) return;
    painted = key;
    fill(
      gutter,
      all.map((_, i) =>
        bad.has(i + 1)
          ? h("div", { class: "ln bad" }, `! ${i + 1}`)
          : h("div", { class: "ln" }, i + 1),
      ),
    );
    if (!bad.size) {
      backdrop.replaceChildren();
      return;
    }
    fill(
      backdrop,
      all.map((text, i) => {
        const found = bad.get(i + 1);
        if (!found) return h("div", { class: "bl" }, text || " ");
        return h(
          "div",
          { class: "bl bad", "data-line": i + 1 },
          h("span", { class: "ghost" }, text),
          h(
            "span",
            { class: "inline-error" },
            found.map((e) => `${e.path || "document"}: ${e.message}`).join(" · "),
          ),
        );
      }),
    );
    sync();
  }

  function sync() {
    gutter.style.transform = `translateY(${-textarea.scrollTop}px)`;
    backdrop.style.transform = `translate(${-textarea.scrollLeft}px, ${-textarea.scrollTop}px)`;
  }

  function goToLine(line) {
    const all = lines();
    const start = all.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    textarea.focus();
    textarea.setSelectionRange(start, start + (all[line - 1] || "").length);
    const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 20;
    textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
    sync();
  }

  function showErrors(list, summary) {
    const text = textarea.value;
    errors = list.map((e) => ({ ...e, line: lineOfError(text, e) }));
    errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    paint();
    fill(
      errorsBox,
      h("h2", null, summary),
      h(
        "ul",
        null,
        errors.map((e) =>
          h(
            "li",
            { class: "spec-error", "data-path": e.path, "data-line": e.line ?? "" },
            e.line
              ? h(
                  "button",
                  { type: "button", class: "link-button", onclick: () => goToLine(e.line) },
                  `Line ${e.line}`,
                )
              : h("span", { class: "muted" }, "Document"),
            e.path ? h("code", null, e.path) : "",
            h("span", null, e.message),
          ),
        ),
      ),
    );
    errorsBox.hidden = false;
    errorsBox.setAttribute("role", "alert");
    textarea.setAttribute("aria-invalid", "true");
    errorsBox.focus();
  }

  function clearErrors() {
    if (!errors.length && errorsBox.hidden) return;
    errors = [];
    errorsBox.hidden = true;
    errorsBox.removeAttribute("role");
    textarea.removeAttribute("aria-invalid");
  }

  function setText(text) {
    textarea.value = text;
    clearErrors();
    paint();
    saveDraft();
  }

  function saveDraft() {
    try {
      sessionStorage.setItem(DRAFT, textarea.value);
    } catch {
      // private mode: no draft kept
    }
  }

  async function readFile(file) {
    if (file.size > MAX_BYTES) {
      const message = `${file.name} is over 1 MiB, the service's limit.`;
      showErrors([{ path: "", message }], "The file is too large");
      return;
    }
    setText(await file.text());
    textarea.focus();
  }

  textarea.addEventListener("input", () => {
    clearErrors();
    paint();
    saveDraft();
  });
  textarea.addEventListener("scroll", sync);
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Enter" && !event.shiftKey && !event.altKey) {
      // Keep the indentation of the line, one level deeper after `key:`.
      const { selectionStart: at, value } = textarea;
      const lineStart = value.lastIndexOf("\n", at - 1) + 1;
      const current = value.slice(lineStart, at);
      let indent = /^\s*(- )?/.exec(current)[0].replace("- ", "  ");
      if (/:\s*$/.test(current)) indent += "  ";
      event.preventDefault();
      if (!document.execCommand("insertText", false, `\n${indent}`)) {
        textarea.setRangeText(`\n${indent}`, at, textarea.selectionEnd, "end");
        textarea.dispatchEvent(new Event("input"));
      }
    }
  });
  textarea.addEventListener("dragover", (event) => {
    if (event.dataTransfer?.types?.includes("Files")) event.preventDefault();
  });
  textarea.addEventListener("drop", (event) => {
    const file = event.dataTransfer?.files?.[0];
    if (file) {
      event.preventDefault();
      readFile(file);
    }
  });
  fileInput.addEventListener("change", () => {
    if (fileInput.files[0]) readFile(fileInput.files[0]);
  });
  useExample.addEventListener("click", () => {
    setText(EXAMPLES[exampleSelect.value]);
    textarea.focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textarea.value;
    if (!text.trim()) {
      const message = "Paste or upload a specification first.";
      showErrors([{ path: "", message }], "Nothing to create");
      return;
    }
    if (idempotency.text !== text) idempotency = { text, key: newKey() };
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const json = text.trimStart().startsWith("{");
      const response = await request("/api/v1/groups", {
        method: "POST",
        body: text,
        type: json ? "application/json" : "application/yaml",
        headers: { "Idempotency-Key": idempotency.key },
        signal: ctx.signal,
      });
      const group = await response.json();
      try {
        sessionStorage.removeItem(DRAFT);
      } catch {
        // nothing kept
      }
      ctx.announce(`Group ${group.id} created`);
      location.hash = `#/groups/${group.id}`;
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof ApiError && error.status === 422) {
        const list = error.problem.errors?.length
          ? error.problem.errors
          : [{ path: "", message: error.message }];
        const n = list.length;
        showErrors(list, `${n} problem${n === 1 ? "" : "s"} found; nothing was created`);
      } else if (error instanceof ApiError && error.status === 401) {
        // the sign-in form has taken over
      } else {
        showErrors([{ path: "", message: error.message }], "The group could not be created");
      }
    } finally {
      submit.disabled = false;
      submit.textContent = "Create group";
    }
  });

  let draft = "";
  try {
    draft = sessionStorage.getItem(DRAFT) || "";
  } catch {
    draft = "";
  }
  setText(draft);
}
