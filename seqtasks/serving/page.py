"""The page served at ``/``: one self-contained HTML file (inline CSS and plain JavaScript, no CDN).

It asks ``GET /api/models`` what is served and shows one card per model: tag a sentence (entities
highlighted by their character offsets when the records have them, else by token), rate a review (stars
and a bar per class probability), translate (the n-best list with scores), generate a piece (its piano
roll, a MIDI download and an ``<audio>`` player of its WAV).
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>seqtasks</title>
<style>
  :root { --ink: #1d2330; --muted: #6b7280; --line: #e3e6ec; --accent: #2f6fde; --bg: #f5f6f9; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: var(--ink); background: var(--bg); }
  header { background: #1d2330; color: #fff; padding: 14px 28px; display: flex; align-items: baseline;
           gap: 16px; }
  header h1 { margin: 0; font-size: 20px; letter-spacing: .5px; }
  header span { color: #aab3c5; font-size: 13px; }
  main { max-width: 1180px; margin: 22px auto; padding: 0 20px; display: grid;
         grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; align-items: start; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px;
          box-shadow: 0 1px 2px rgba(0,0,0,.04); }
  .card h2 { margin: 0 0 2px; font-size: 16px; }
  .card .meta { color: var(--muted); font-size: 12.5px; margin-bottom: 10px; }
  .kind { display: inline-block; font-size: 11px; text-transform: uppercase; letter-spacing: .6px;
          background: #e8effc; color: var(--accent); border-radius: 4px; padding: 1px 6px; margin-left: 6px;
          vertical-align: 2px; }
  textarea, input[type=text] { width: 100%; font: inherit; padding: 8px 10px; border: 1px solid #cfd5df;
          border-radius: 6px; resize: vertical; }
  .row { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin-top: 8px; }
  .row label { font-size: 13px; color: var(--muted); }
  .row label.setting { display: inline-flex; align-items: center; gap: 5px; }
  .row input[type=number] { width: 68px; font: inherit; padding: 4px 6px; border: 1px solid #cfd5df;
          border-radius: 5px; }
  button { font: inherit; background: var(--accent); color: #fff; border: 0; border-radius: 6px;
           padding: 7px 16px; cursor: pointer; }
  button:disabled { opacity: .55; cursor: progress; }
  .output { margin-top: 12px; min-height: 8px; }
  .error { color: #b42318; background: #fef3f2; border: 1px solid #fecdca; border-radius: 6px;
           padding: 6px 10px; }
  .sentence { font-size: 17px; line-height: 2.1; }
  .hypothesis, .sentence { font-family: system-ui, "Lohit Devanagari", "Noto Sans Devanagari", sans-serif; }
  mark.entity { border-radius: 5px; padding: 2px 5px; margin: 0 1px; background: #ffe9a8; }
  mark.entity .label { font-size: 10.5px; font-weight: 700; margin-left: 5px; color: #6b4e00;
                       letter-spacing: .4px; }
  mark.PER { background: #dbe8ff; } mark.PER .label { color: #1f4fa8; }
  mark.LOC { background: #d8f3e3; } mark.LOC .label { color: #176b3a; }
  mark.ORG { background: #fde2d3; } mark.ORG .label { color: #9a3412; }
  mark.MISC { background: #eee1fb; } mark.MISC .label { color: #6b21a8; }
  .scroll { overflow-x: auto; max-width: 100%; }
  table.tokens { border-collapse: collapse; margin-top: 8px; font-size: 13px; }
  table.tokens td { border: 1px solid var(--line); padding: 2px 7px; text-align: center; }
  table.tokens tr:first-child td { font-weight: 600; }
  table.tokens td.tagged { color: var(--accent); font-weight: 600; }
  table.tokens td.o { color: var(--muted); }
  table.tokens tr.confidence td { color: var(--muted); font-size: 11.5px; }
  .stars { font-size: 26px; letter-spacing: 2px; color: #f5a623; }
  .stars .off { color: #d9dde4; }
  .verdict { font-size: 15px; margin-left: 8px; color: var(--muted); }
  .bar { display: grid; grid-template-columns: 90px 1fr 58px; gap: 8px; align-items: center;
         font-size: 13px; margin: 4px 0; }
  .bar .track { background: #eef0f4; border-radius: 4px; height: 12px; overflow: hidden; }
  .bar .fill { background: var(--accent); height: 100%; }
  .bar.best .fill { background: #16a34a; }
  ol.nbest { margin: 4px 0 0; padding-left: 22px; }
  ol.nbest li { margin: 3px 0; }
  .hypothesis { font-size: 17px; }
  li:first-child .hypothesis { font-weight: 600; }
  .score { color: var(--muted); font-size: 12px; margin-left: 8px; font-family: ui-monospace, monospace; }
  img.roll { width: 100%; border: 1px solid var(--line); border-radius: 6px; margin-top: 6px; }
  audio { width: 100%; margin-top: 8px; }
  a.download { font-size: 14px; }
  .empty { color: var(--muted); }
</style>
</head>
<body>
<header><h1>seqtasks</h1><span id="summary">loading models…</span></header>
<main id="cards"></main>
<script>
"use strict";
const LIMITS = {};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function call(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body)});
  let data;
  try { data = await response.json(); } catch (e) { data = {error: response.statusText}; }
  if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
  return data;
}

function showError(output, error) {
  output.replaceChildren(el("div", {class: "error"}, error.message || String(error)));
}

function card(model, title, controls, run) {
  const output = el("div", {class: "output"});
  const button = el("button", {class: "run"}, title);
  const meta = el("div", {class: "meta"}, model.task + " · " + model.checkpoint +
                  (model.labels ? " · labels: " + model.labels.join(", ") : ""));
  const node = el("section", {class: "card", "data-kind": model.kind, "data-model": model.name},
                  el("h2", {}, model.name, el("span", {class: "kind"}, model.kind)), meta,
                  ...controls, el("div", {class: "row"}, button), output);
  button.addEventListener("click", async () => {
    button.disabled = true;
    output.replaceChildren(el("span", {class: "empty"}, "working…"));
    try { await run(output); } catch (error) { showError(output, error); }
    button.disabled = false;
  });
  node.querySelectorAll("textarea, input[type=text]").forEach((input) => input.addEventListener(
    "keydown", (event) => { if (event.key === "Enter" && !event.shiftKey) { event.preventDefault();
                                                                        button.click(); } }));
  return node;
}

function number(name, value, attrs) {
  const input = el("input", {type: "number", name: name, value: value, ...(attrs || {})});
  return [el("label", {class: "setting"}, el("span", {}, name.replace("_", " ")), input)];
}

function valueOf(node, name) {
  const raw = node.querySelector(`input[name=${name}]`).value.trim();
  return raw === "" ? null : Number(raw);
}

// ---- tag -------------------------------------------------------------------------------------------
function entityRange(entity) {
  const first = entity.first_token ?? entity.first ?? entity.start_token ?? (entity.tokens || [])[0];
  const last = entity.last_token ?? entity.last ?? entity.end_token ?? (entity.tokens || [])[1];
  return [first, last];
}

function highlighted(text, record) {
  const entities = record.entities || [];
  const sentence = el("div", {class: "sentence"});
  const mark = (entity, content) => {
    const confidence = typeof entity.confidence === "number" ? entity.confidence.toFixed(3) : null;
    const title = confidence === null ? entity.type : `${entity.type}, confidence ${confidence}`;
    return el("mark", {class: "entity " + entity.type, "data-type": entity.type, title}, content,
              el("span", {class: "label"}, entity.type));
  };
  if (entities.length && entities.every((e) => Number.isInteger(e.start) && Number.isInteger(e.end))) {
    let at = 0;   // character offsets into the original text
    for (const e of [...entities].sort((a, b) => a.start - b.start)) {
      sentence.append(text.slice(at, e.start), mark(e, text.slice(e.start, e.end)));
      at = e.end;
    }
    sentence.append(text.slice(at));
    return sentence;
  }
  // no offsets: the tokens, joined by spaces
  const tokens = (record.tokens || []).map((t) => typeof t === "string" ? t : t.text);
  const starts = new Map(entities.map((e) => [entityRange(e)[0], e]));
  for (let i = 0; i < tokens.length; i++) {
    if (i) sentence.append(" ");
    const e = starts.get(i);
    if (e) {
      const [first, last] = entityRange(e);
      sentence.append(mark(e, tokens.slice(first, last + 1).join(" ")));
      i = last;
    } else sentence.append(tokens[i]);
  }
  return sentence;
}

function tagCard(model) {
  const input = el("textarea", {rows: 2, placeholder: "a sentence to tag"}, "Dhaval loves baby yoda");
  return card(model, "Tag", [input], async (output) => {
    const text = input.value;
    const record = await call(`/api/${model.name}/tag`, {text});
    // tokens are strings (with a parallel "tags" list) or objects {text, tag, confidence, ...}
    const tokens = (record.tokens || []).map((t, i) => typeof t === "string"
      ? {text: t, tag: (record.tags || [])[i]} : t);
    const table = el("table", {class: "tokens"},
      el("tr", {}, ...tokens.map((t) => el("td", {}, t.text))),
      el("tr", {}, ...tokens.map((t) => el("td", {class: t.tag === "O" ? "o" : "tagged"}, t.tag))),
      tokens.some((t) => typeof t.confidence === "number")
        ? el("tr", {class: "confidence"}, ...tokens.map((t) => el("td", {}, t.confidence === undefined ? ""
                                                                      : t.confidence.toFixed(2))))
        : null);
    const count = (record.entities || []).length;
    output.replaceChildren(highlighted(text, record),
                           el("div", {class: "meta"}, count ? `${count} entit${count > 1 ? "ies" : "y"}`
                                                            : "no entity found"),
                           el("div", {class: "scroll"}, table));
  });
}

// ---- classify ----------------------------------------------------------------------------------------
function probabilitiesOf(record, labels) {
  const p = record.probabilities;
  if (Array.isArray(p)) return labels.map((label, i) => [label, p[i]]);
  return Object.entries(p || {});
}

function starsFor(pairs) {
  // the expected class position on a 1–5 scale (labels in the model's order: negative … positive)
  const n = pairs.length;
  if (n < 2) return 3;
  const expected = pairs.reduce((sum, [, p], i) => sum + p * i, 0) / (n - 1);
  return Math.max(1, Math.min(5, Math.round(1 + 4 * expected)));
}

function classifyCard(model) {
  const input = el("textarea", {rows: 3, placeholder: "a review to rate"},
                   "A wonderful film, the best I have seen this year.");
  return card(model, "Rate", [input], async (output) => {
    const record = await call(`/api/${model.name}/classify`, {text: input.value});
    const pairs = probabilitiesOf(record, model.labels || []);
    const stars = starsFor(pairs);
    const starNode = el("span", {class: "stars", title: `${stars} of 5`, "data-stars": stars});
    for (let i = 1; i <= 5; i++) starNode.append(el("span", {class: i <= stars ? "on" : "off"}, "★"));
    const bars = pairs.map(([label, p]) => el("div", {class: "bar" + (label === record.label ? " best" : "")},
      el("span", {}, label), el("div", {class: "track"}, el("div", {class: "fill",
                                                                  style: `width:${(100 * p).toFixed(1)}%`})),
      el("span", {}, (100 * p).toFixed(1) + " %")));
    output.replaceChildren(el("div", {}, starNode, el("span", {class: "verdict label"}, record.label)),
                           ...bars);
  });
}

// ---- translate -----------------------------------------------------------------------------------------
function translateCard(model) {
  const input = el("input", {type: "text", placeholder: "a sentence to translate", value: "how are you?"});
  const settings = el("div", {class: "row"}, ...number("beam", 4, {min: 1, max: LIMITS.max_beam || 16}),
                      ...number("nbest", model.nbest ? 3 : 1, {min: 1, max: LIMITS.max_beam || 16}));
  const node = card(model, "Translate", [input, settings], async (output) => {
    const beam = valueOf(node, "beam"), nbest = valueOf(node, "nbest");
    const record = await call(`/api/${model.name}/translate`, {text: input.value, beam, nbest});
    const list = el("ol", {class: "nbest"}, ...(record.nbest || [record]).map((h) => el("li", {},
      el("span", {class: "hypothesis"}, h.translation),
      h.score === null || h.score === undefined ? null : el("span", {class: "score"}, h.score.toFixed(3)))));
    output.replaceChildren(list);
  });
  return node;
}

// ---- generate ------------------------------------------------------------------------------------------
function generateCard(model) {
  const steps = Math.min(model.default_steps || 64, model.representation === "events" ? 256 : 32);
  const events = model.representation === "events";   // top_p: event models only
  const settings = el("div", {class: "row"},
                      ...number("steps", steps, {min: 1, max: LIMITS.max_steps || 2000}),
                      ...number("temperature", 1.0, {step: 0.1, min: 0}), ...number("top_k", "", {min: 1}),
                      ...(events ? number("top_p", "", {step: 0.05, min: 0, max: 1}) : []),
                      ...number("seed", 0, {min: 0}));
  const node = card(model, "Generate", [settings], async (output) => {
    const body = {};
    for (const name of ["steps", "temperature", "top_k", "top_p", "seed"]) {
      if (node.querySelector(`input[name=${name}]`)) body[name] = valueOf(node, name);
    }
    const record = await call(`/api/${model.name}/generate`, body);
    const midi = el("a", {class: "download", href: "data:audio/midi;base64," + record.midi,
                          download: `sample-${record.seed}.mid`}, "⬇ download MIDI");
    output.replaceChildren(
      el("div", {class: "meta"},
         `${record.notes.length} notes · ${record.duration_s.toFixed(1)} s · seed ${record.seed}`),
      el("img", {class: "roll", alt: "piano roll", src: "data:image/png;base64," + record.png}),
      el("audio", {controls: "", preload: "metadata", src: "data:audio/wav;base64," + record.wav}),
      el("div", {}, midi));
  });
  return node;
}

const BUILDERS = {tag: tagCard, classify: classifyCard, translate: translateCard, generate: generateCard};

async function main() {
  const cards = document.getElementById("cards");
  try {
    const response = await fetch("/api/models");
    const data = await response.json();
    Object.assign(LIMITS, data.limits || {});
    for (const model of data.models) cards.append(BUILDERS[model.kind](model));
    document.getElementById("summary").textContent =
      `${data.models.length} model${data.models.length === 1 ? "" : "s"} served · ` +
      `texts up to ${LIMITS.max_chars} characters`;
    document.body.dataset.ready = "true";
  } catch (error) {
    cards.append(el("div", {class: "error"}, "could not list the models: " + error.message));
  }
}
main();
</script>
</body>
</html>
"""
