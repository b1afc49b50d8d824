"""GET /ui: one self-contained page (no CDN, no network beyond this service) to try the tagger.

Paste Arabic text, see it right to left with the entities highlighted inline (one colour per
label), a legend, and the entity list with offsets. The page calls ``/metadata`` and ``/tag`` of
the service that serves it; offsets are Unicode code points, so the script slices
``Array.from(text)``, not UTF-16 units.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

PAGE = """<!doctype html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>التعرّف على الكيانات المسمّاة</title>
<style>
  :root { font-family: "Noto Naskh Arabic", "Noto Sans Arabic", "DejaVu Sans", sans-serif; color: #1d2430; background: #f6f7f9; }
  body { max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  .model { color: #5b6472; font-size: .9rem; margin-bottom: 1rem; }
  textarea { width: 100%; box-sizing: border-box; min-height: 9rem; font: inherit; font-size: 1.05rem; line-height: 1.7;
             padding: .6rem; border: 1px solid #c9ced6; border-radius: 6px; }
  .actions { display: flex; gap: .75rem; align-items: center; margin: .6rem 0 1rem; }
  button { font: inherit; padding: .45rem 1.4rem; border: 0; border-radius: 6px; background: #1f5fbf; color: #fff; cursor: pointer; }
  button:disabled { background: #8aa6d6; cursor: wait; }
  #status { color: #5b6472; font-size: .9rem; }
  #status.error { color: #b3261e; }
  section { background: #fff; border: 1px solid #e1e4e9; border-radius: 8px; padding: .8rem 1rem; margin-bottom: 1rem; }
  h2 { font-size: 1rem; margin: 0 0 .5rem; color: #3a4250; }
  #result { font-size: 1.15rem; line-height: 2.3; white-space: pre-wrap; overflow-wrap: anywhere; }
  mark.entity { border-radius: 4px; padding: .1rem .25rem; color: inherit; }
  mark.entity::after { content: attr(data-label); font: 600 .62rem/1 "DejaVu Sans Mono", monospace; margin-inline-start: .3rem;
                       padding: .1rem .2rem; border-radius: 3px; background: rgba(0,0,0,.55); color: #fff; vertical-align: middle; }
  #legend { display: flex; flex-wrap: wrap; gap: .4rem .9rem; font-size: .85rem; }
  .swatch { display: inline-block; width: .9rem; height: .9rem; border-radius: 3px; vertical-align: middle; margin-inline-end: .3rem; }
  table { border-collapse: collapse; width: 100%; font-size: .92rem; }
  th, td { border-bottom: 1px solid #eceef2; padding: .3rem .5rem; text-align: start; }
  td.num { font-family: "DejaVu Sans Mono", monospace; direction: ltr; text-align: end; }
</style>
</head>
<body>
<h1>التعرّف على الكيانات المسمّاة</h1>
<div class="model" id="model">…</div>
<textarea id="input" dir="rtl" lang="ar" placeholder="الصق نصاً عربياً هنا…"></textarea>
<div class="actions">
  <button id="tag" type="button">استخرج الكيانات</button>
  <span id="status" role="status">Ctrl+Enter</span>
</div>
<section><h2>النص</h2><div id="result" dir="rtl" lang="ar" data-state="empty"></div></section>
<section><h2>الألوان</h2><div id="legend"></div></section>
<section><h2>الكيانات</h2>
  <table><thead><tr><th>#</th><th>النص</th><th>النوع</th><th>البداية</th><th>النهاية</th><th>الثقة</th></tr></thead>
  <tbody id="entities"></tbody></table>
</section>
<script>
"use strict";
// Served at <prefix>/ui; the API routes sit beside it.
const base = location.pathname.replace(/\\/ui\\/?$/, "");
const palette = { PERS: "#ffd6a5", NORP: "#fdffb6", OCC: "#caffbf", ORG: "#9bf6ff", GPE: "#a0c4ff",
                  LOC: "#bdb2ff", FAC: "#ffc6ff", EVENT: "#ffadad", DATE: "#d0d4dc" };
const extra = ["#e9c46a", "#90be6d", "#f4a261", "#84a59d", "#cdb4db"];
const arabicNames = { PERS: "شخص", NORP: "جماعة", OCC: "منصب", ORG: "منظمة", GPE: "كيان سياسي", LOC: "مكان",
                      FAC: "منشأة", EVENT: "حدث", DATE: "تاريخ" };
const ltr = (text) => "\u2066" + text + "\u2069";  // an isolated left-to-right run inside Arabic text
const colourOf = (label, i) => palette[label] || extra[i % extra.length];
const $ = (id) => document.getElementById(id);
const el = (tag, props, text) => { const e = Object.assign(document.createElement(tag), props || {}); if (text !== undefined) e.textContent = text; return e; };
let colours = {};

function setStatus(message, isError) { $("status").textContent = message; $("status").className = isError ? "error" : ""; }

async function errorText(response) {
  try { const body = await response.json(); return body.error || JSON.stringify(body); }
  catch (_) { return response.statusText; }
}

async function loadMetadata() {
  const response = await fetch(base + "/metadata");
  if (!response.ok) { setStatus(response.status + ": " + await errorText(response), true); return; }
  const meta = await response.json();
  $("model").textContent = "النموذج: " + ltr(meta.model) + " · الحد الأقصى " + meta.max_text_chars + " حرف";
  $("input").maxLength = meta.max_text_chars;
  const legend = $("legend");
  legend.replaceChildren();
  meta.labels.forEach((label, i) => {
    colours[label] = colourOf(label, i);
    const item = el("span", { title: (meta.label_descriptions || {})[label] || label });
    item.dataset.label = label;
    const swatch = el("span", { className: "swatch" });
    swatch.style.background = colours[label];
    item.append(swatch, el("bdi", {}, label), " " + (arabicNames[label] || ""));
    legend.append(item);
  });
}

function render(text, entities) {
  const chars = Array.from(text);  // code points, as the API counts them
  const result = $("result");
  result.replaceChildren();
  let at = 0;
  for (const entity of entities) {
    if (entity.start > at) result.append(chars.slice(at, entity.start).join(""));
    const mark = el("mark", { className: "entity", title: entity.label + " " + entity.score.toFixed(3) }, chars.slice(entity.start, entity.end).join(""));
    Object.assign(mark.dataset, { label: entity.label, start: entity.start, end: entity.end });
    mark.style.background = colours[entity.label] || colourOf(entity.label, Object.keys(colours).length);
    result.append(mark);
    at = entity.end;
  }
  if (at < chars.length) result.append(chars.slice(at).join(""));
  const rows = $("entities");
  rows.replaceChildren();
  entities.forEach((entity, i) => {
    const row = el("tr");
    row.append(el("td", { className: "num" }, String(i + 1)), el("td", {}, entity.text), el("td", {}, entity.label),
               el("td", { className: "num" }, String(entity.start)), el("td", { className: "num" }, String(entity.end)),
               el("td", { className: "num" }, entity.score.toFixed(3)));
    rows.append(row);
  });
}

async function tag() {
  const text = $("input").value;
  $("tag").disabled = true;
  $("result").dataset.state = "busy";
  setStatus("…");
  try {
    const started = performance.now();
    const response = await fetch(base + "/tag", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }) });
    if (!response.ok) { setStatus(response.status + ": " + await errorText(response), true); $("result").dataset.state = "error"; return; }
    const data = await response.json();
    render(text, data.entities);
    setStatus(data.entities.length + " كيان · " + ltr(Math.round(performance.now() - started) + " ms"));
    $("result").dataset.state = "done";
  } catch (error) {
    setStatus(String(error), true);
    $("result").dataset.state = "error";
  } finally {
    $("tag").disabled = false;
  }
}

$("tag").addEventListener("click", tag);
$("input").addEventListener("keydown", (event) => { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) tag(); });
loadMetadata();
</script>
</body>
</html>
"""


async def page(_: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)
