// Finds the line of a YAML (or pretty-printed JSON) document that an API error path such
// as `hptuning.matrix.lr.uniform` points at, without a YAML parser: block keys are
// followed by their indentation, list items by their dash. A path that ends inside a
// flow mapping (`lr: {uniform: 'a:b'}`) lands on the line of the deepest key found.

// A key at the start of `rest`: "double quoted", 'single quoted' or plain, then a colon
// followed by a blank or the end of the line.
const KEY = new RegExp(
  [
    "^(?:",
    '"((?:[^"\\\\]|\\\\.)*)"',
    "|'((?:[^']|'')*)'",
    "|([^\\s#\"'{[\\]},:-][^#:]*?|-[^\\s#:][^#:]*?)",
    ")\\s*:(?=\\s|$)",
  ].join(""),
);

function stripComment(text) {
  // A `#` starts a comment at the line start or after a blank, outside of quotes.
  let quote = "";
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(text[i - 1]))) return text.slice(0, i);
  }
  return text;
}

// Every key line of the document with its path: [{line (1-based), path: [..]}].
export function keyLines(text) {
  const out = [];
  const stack = []; // {col, key, seq}
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = stripComment(raw);
    if (!line.trim()) return;
    if (/^(---|\.\.\.)(\s|$)/.test(line)) {
      stack.length = 0;
      return;
    }
    let col = line.length - line.trimStart().length;
    let rest = line.slice(col);
    // JSON-ish documents: a leading brace or bracket only opens a level.
    while (/^[{[]\s*/.test(rest) && !KEY.test(rest)) {
      const skip = rest.match(/^[{[]\s*/)[0].length;
      col += skip;
      rest = rest.slice(skip);
      if (!rest) return;
    }
    while (rest === "-" || rest.startsWith("- ")) {
      while (stack.length && stack.at(-1).col > col) stack.pop();
      let next = 0;
      if (stack.length && stack.at(-1).col === col && stack.at(-1).seq) next = stack.pop().key + 1;
      stack.push({ col, key: next, seq: true });
      out.push({ line: index + 1, path: stack.map((e) => String(e.key)) });
      const after = rest.slice(1);
      const pad = after.length - after.trimStart().length;
      col += 1 + pad;
      rest = after.trimStart();
      if (!rest) return;
    }
    const match = KEY.exec(rest);
    if (!match) return;
    const key = match[1] ?? (match[2] !== undefined ? match[2].replace(/''/g, "'") : match[3]);
    while (stack.length && stack.at(-1).col >= col) stack.pop();
    stack.push({ col, key: key.trim(), seq: false });
    out.push({ line: index + 1, path: stack.map((e) => String(e.key)) });
  });
  return out;
}

// The 1-based line an error path points at, or null when nothing in the text matches.
export function lineOfPath(text, path) {
  if (!path) return null;
  const want = path.split(".");
  const keys = keyLines(text);
  // A bare `hptuning` section: its keys sit at the top, the API names them `hptuning.*`.
  const wrapped = keys.some((k) => k.path.length === 1 && k.path[0] === "hptuning");
  const target = !wrapped && want[0] === "hptuning" ? want.slice(1) : want;
  let best = null;
  let depth = 0;
  for (const k of keys) {
    if (k.path.length > target.length || k.path.length <= depth) continue;
    if (k.path.every((part, i) => part === target[i])) {
      best = k.line;
      depth = k.path.length;
    }
  }
  return best;
}

// "Invalid YAML at line 3, column 4: ..." -> 3
export function lineOfMessage(message) {
  const m = /line (\d+)(?:, column (\d+))?/.exec(message || "");
  return m ? Number(m[1]) : null;
}

export function lineOfError(text, error) {
  return lineOfPath(text, error.path) ?? (error.path ? null : lineOfMessage(error.message));
}
