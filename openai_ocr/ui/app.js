// openai-ocr playground: plain JS, no dependencies, talks only to the server that served it.
// One streamed call per file (`/ocr/stream` with output=json): text events as they come,
// and at each page's end the page's blocks, markdown, figure crops and (PDF, TIFF) image.
"use strict";

const KEY_STORAGE = "openai-ocr-api-key";
const SHOWN_IN_BROWSER = /^image\/(png|jpeg|webp|gif)$/;
const LABEL_COLOURS = {
  title: "#d9480f", sub_title: "#e8590c", text: "#1c7ed6", table: "#2f9e44",
  table_caption: "#66a80f", table_footnote: "#66a80f", image: "#ae3ec9",
  image_caption: "#cc5de8", equation: "#f08c00", formula: "#f08c00", list: "#1098ad",
};
const TABLE_TAGS = new Set(["TABLE", "THEAD", "TBODY", "TFOOT", "TR", "TD", "TH", "CAPTION",
  "COLGROUP", "COL", "BR"]);
const DROPPED_TAGS = new Set(["SCRIPT", "STYLE", "TEMPLATE", "IFRAME", "OBJECT", "EMBED", "SVG",
  "MATH", "NOSCRIPT", "TEXTAREA", "SELECT"]);

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style") Object.assign(node.style, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
};

const state = {
  items: [],        // {id, file, name, status, pages: Map, order: [], text, error, ...}
  current: null,    // the item shown
  pageShown: null,  // page number shown in the viewer
  view: "rendered",
  userPickedView: false,
  running: false,
  abort: null,
  resolutionField: false,
  archiving: false, // an archival file is being made
};
let nextId = 1;

// -- colours ---------------------------------------------------------------------------
function colourOf(label) {
  if (LABEL_COLOURS[label]) return LABEL_COLOURS[label];
  let hash = 0;
  for (const ch of label) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 70% 45%)`;
}

// -- markdown ---------------------------------------------------------------------------
// Headings, paragraphs, lists, code fences, pipe tables, HTML tables (only table tags kept),
// and figure references `![](images/N.png)` shown from the crops the server returned.
function sanitizeTable(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  const out = document.createDocumentFragment();
  copySafe(template.content, out);
  return out;
}

function copySafe(source, target) {
  for (const node of source.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      target.append(node.data);
    } else if (node.nodeType === Node.ELEMENT_NODE) {
      if (DROPPED_TAGS.has(node.tagName)) continue;
      if (TABLE_TAGS.has(node.tagName)) {
        const copy = document.createElement(node.tagName.toLowerCase());
        for (const name of ["colspan", "rowspan"]) {
          const value = node.getAttribute(name);
          if (value && /^\d{1,3}$/.test(value)) copy.setAttribute(name, value);
        }
        copySafe(node, copy);
        target.append(copy);
      } else {
        copySafe(node, target);  // other tags are unwrapped: their text stays
      }
    }
  }
}

function inline(text) {
  const out = document.createDocumentFragment();
  const re = /(\*\*[^*]+\*\*|`[^`]+`|\*[^*\s][^*]*\*)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    out.append(text.slice(last, m.index));
    const token = m[0];
    if (token.startsWith("**")) out.append(el("strong", {}, token.slice(2, -2)));
    else if (token.startsWith("`")) out.append(el("code", {}, token.slice(1, -1)));
    else out.append(el("em", {}, token.slice(1, -1)));
    last = m.index + token.length;
  }
  out.append(text.slice(last));
  return out;
}

function pipeCells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}

function renderMarkdown(source, crops = {}) {
  const out = document.createDocumentFragment();
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) out.append(el("p", {}, inline(paragraph.join(" "))));
    paragraph = [];
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const trimmed = line.trim();
    let m;
    if (!trimmed) { flush(); continue; }
    if (/^<table[\s>]/i.test(trimmed)) {
      flush();
      let html = line;
      while (!/<\/table>/i.test(html) && i + 1 < lines.length) html += "\n" + lines[++i];
      out.append(el("div", { className: "table-wrap" }, sanitizeTable(html)));
    } else if (trimmed.startsWith("```")) {
      flush();
      const code = [];
      while (i + 1 < lines.length && !lines[i + 1].trim().startsWith("```")) code.push(lines[++i]);
      i++;
      out.append(el("pre", {}, el("code", {}, code.join("\n"))));
    } else if ((m = /^(#{1,6})\s+(.*)$/.exec(trimmed))) {
      flush();
      out.append(el(`h${m[1].length}`, {}, inline(m[2])));
    } else if ((m = /^!\[([^\]]*)\]\(([^)\s]+)\)$/.exec(trimmed))) {
      flush();
      const crop = crops[m[2]];
      out.append(crop
        ? el("figure", {}, el("img", { src: `data:image/png;base64,${crop}`, alt: m[1] || m[2] }))
        : el("p", { className: "muted" }, `[figure ${m[2]}]`));
    } else if (trimmed.startsWith("|") && i + 1 < lines.length && /^\|?\s*:?-{3,}/.test(lines[i + 1].trim())) {
      flush();
      const table = el("table");
      table.append(el("thead", {}, el("tr", {}, ...pipeCells(trimmed).map((c) => el("th", {}, inline(c))))));
      const body = el("tbody");
      i++;
      while (i + 1 < lines.length && lines[i + 1].trim().startsWith("|")) {
        body.append(el("tr", {}, ...pipeCells(lines[++i]).map((c) => el("td", {}, inline(c)))));
      }
      table.append(body);
      out.append(el("div", { className: "table-wrap" }, table));
    } else if ((m = /^([-*+]|\d+[.)])\s+(.*)$/.exec(trimmed))) {
      if (paragraph.length) { out.append(el("p", {}, inline(paragraph.join(" ")))); paragraph = []; }
      const tag = /\d/.test(m[1]) ? "ol" : "ul";
      if (!list || list.tagName.toLowerCase() !== tag) { list = el(tag); out.append(list); }
      list.append(el("li", {}, inline(m[2])));
    } else {
      list = null;
      paragraph.push(trimmed);
    }
  }
  flush();
  return out;
}

// -- requests ---------------------------------------------------------------------------
function authHeaders() {
  const key = $("key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return `${response.status}: ${body.error.message}`;
  } catch { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

async function loadServerInfo() {
  try {
    const r = await fetch("/", { headers: { Accept: "application/json" } });
    if (r.ok) {
      const info = await r.json();
      $("server-info").textContent = `${info.model} · ${info.engine} engine · v${info.version}`;
    }
  } catch { /* the page still works */ }
  try {
    const r = await fetch("/openapi.json", { headers: authHeaders() });
    if (!r.ok) return;
    const spec = await r.json();
    const schemas = (spec.components && spec.components.schemas) || {};
    const found = Object.values(schemas).find((s) => s && s.properties && s.properties.resolution);
    if (found) {
      state.resolutionField = true;
      $("resolution").disabled = false;
    }
  } catch { /* no schema: the selector stays off */ }
  if (!state.resolutionField) $("resolution").title = "this server does not offer resolution modes";
}

function formFor(item) {
  const form = new FormData();
  form.append("file", item.file, item.name);
  form.append("mode", item.mode);
  if (item.mode === "locate") form.append("ref", item.ref);
  if (item.pageRange) form.append("pages", item.pageRange);
  if (item.resolution) form.append("resolution", item.resolution);
  form.append("output", "json");
  form.append("include_images", "true");
  if (!SHOWN_IN_BROWSER.test(item.file.type)) form.append("include_page_images", "true");
  return form;
}

// The archival file of an item (searchable PDF, hOCR, ALTO): the same request sent to
// `/ocr/file` with that output; the server answers with the file itself.
const ARCHIVE_SUFFIX = { pdf: ".ocr.pdf", hocr: ".hocr", alto: ".alto.xml" };

function archiveForm(item, format) {
  const form = formFor(item);
  form.set("output", format);
  form.delete("include_images");
  form.delete("include_page_images");
  return form;
}

function fileNameOf(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const utf8 = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (utf8) { try { return decodeURIComponent(utf8[1]); } catch { /* the plain name */ } }
  const plain = /filename="([^"]+)"/i.exec(header);
  return plain ? plain[1] : fallback;
}

async function downloadArchive() {
  const item = state.current;
  const format = $("archive-format").value;
  if (!item || !item.file || state.archiving) return;
  state.archiving = true;
  $("archive").disabled = true;
  $("archive").textContent = "Making…";
  showError(null);
  try {
    const response = await fetch("/ocr/file", { method: "POST", body: archiveForm(item, format), headers: authHeaders() });
    if (!response.ok) throw new Error(await errorMessage(response));
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const name = fileNameOf(response, `${item.name.replace(/\.[^.]+$/, "")}${ARCHIVE_SUFFIX[format]}`);
    el("a", { href: url, download: name }).click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    showError(`${format} file: ${err.message || String(err)}`);
  } finally {
    state.archiving = false;
    $("archive").textContent = "Get file";
    $("archive").disabled = !(state.current && state.current.file);
  }
}

async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    buffer = buffer.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) yield data;
    }
    if (done) return;
  }
}

async function runItem(item) {
  item.status = "running";
  item.started = performance.now();
  item.text = "";
  item.pages = new Map();
  item.order = [];
  item.error = null;
  showItem(item);
  renderQueue();
  state.abort = new AbortController();
  try {
    const response = await fetch("/ocr/stream", {
      method: "POST", body: formFor(item), headers: authHeaders(), signal: state.abort.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const data of sseEvents(response)) {
      if (data === "[DONE]") break;
      onEvent(item, JSON.parse(data));
    }
    if (item.status === "running") item.status = item.error ? "error" : "done";
  } catch (err) {
    item.status = "error";
    item.error = err.name === "AbortError" ? "stopped" : (err.message || String(err));
  }
  item.elapsed = (performance.now() - item.started) / 1000;
  state.abort = null;
  renderQueue();
  if (item === state.current) {
    if (item.status === "done" && !state.userPickedView) setView("rendered");
    showItem(item);
  }
}

function onEvent(item, event) {
  const type = event.type || "text";
  if (type === "page") {
    const page = { number: event.page, width: event.width, height: event.height, text: "", result: null };
    item.pages.set(event.page, page);
    item.order.push(event.page);
    item.pageCount = event.page_count || item.pageCount || 1;
    if (item === state.current) { state.pageShown = event.page; showItem(item); }
  } else if (type === "text") {
    item.text += event.text;
    const page = item.pages.get(event.page);
    if (page) page.text += event.text;
    if (item === state.current) $("panel-text").append(event.text);
  } else if (type === "page_reset") {
    // the page's answer looped or was cut: what it streamed is withdrawn, the kept answer follows
    const page = item.pages.get(event.page);
    if (page) {
      item.text = item.text.slice(0, item.text.length - page.text.length);
      page.text = "";
    }
    if (item === state.current) $("panel-text").textContent = item.text;
  } else if (type === "page_end") {
    const page = item.pages.get(event.page);
    if (page) { page.result = event.result || null; page.done = true; page.finish_reason = event.finish_reason; }
    if (event.warning) item.warnings = [...(item.warnings || []), event.warning];
    if (item === state.current) showItem(item);
  } else if (type === "done") {
    Object.assign(item, { model: event.model, usage: event.usage, finish_reason: event.finish_reason,
      request_id: event.request_id, status: "done" });
  } else if (type === "error") {
    item.status = "error";
    item.error = (event.error && event.error.message) || "the server reported an error";
  }
}

// -- showing a result -------------------------------------------------------------------
function responseOf(item) {
  // The shape of /ocr/file's JSON answer, rebuilt from the stream.
  const pages = item.order.map((n) => item.pages.get(n)).filter((p) => p.result).map((p) => p.result);
  return { request_id: item.request_id || null, model: item.model || null, finish_reason: item.finish_reason || null,
    usage: item.usage || null, page_count: item.order.length, pages, warnings: item.warnings || [] };
}

function shortJson(value) {
  return JSON.stringify(value, (k, v) => (k === "image_base64" && typeof v === "string"
    ? `<${Math.round(v.length * 0.75 / 1024)} KiB of base64 PNG>` : v), 2);
}

function markdownOf(item) {
  return item.order.map((n) => item.pages.get(n)).filter((p) => p.result)
    .map((p) => p.result.markdown).join("\n\n<--- Page Split --->\n\n");
}

function pageImageSrc(item, page) {
  if (page && page.result && page.result.image_base64) return `data:image/png;base64,${page.result.image_base64}`;
  if (item.file && SHOWN_IN_BROWSER.test(item.file.type)) {
    if (!item.objectUrl) item.objectUrl = URL.createObjectURL(item.file);
    return item.objectUrl;
  }
  return item.imageUrl || "";
}

function showItem(item) {
  state.current = item;
  $("results").hidden = !item.order.length;
  const numbers = item.order;
  if (!numbers.includes(state.pageShown)) state.pageShown = numbers[0] ?? null;
  // page buttons
  const tabs = $("page-tabs");
  tabs.replaceChildren(...(numbers.length > 1 ? numbers.map((n) => el("button", {
    type: "button", textContent: String(n), ariaPressed: String(n === state.pageShown),
    title: `page ${n}`, onclick: () => { state.pageShown = n; showItem(item); },
  })) : []));
  const page = item.pages.get(state.pageShown);
  $("page-title").textContent = page ? `${item.name} · page ${page.number}` : item.name;
  drawPage(item, page);
  // text views
  if ($("panel-text").textContent !== item.text) $("panel-text").textContent = item.text;
  $("panel-markdown").textContent = markdownOf(item);
  $("panel-json").textContent = item.order.length ? shortJson(responseOf(item)) : "";
  renderBlocks(item);
  showProgress();
  showError(item.status === "error" ? item.error : null);
  document.body.dataset.state = item.status;
  $("archive").disabled = !item.file || state.archiving;
}

function drawPage(item, page) {
  const image = $("page-image");
  const overlay = $("overlay");
  overlay.replaceChildren();
  $("legend").replaceChildren();
  if (!page) { image.removeAttribute("src"); return; }
  const src = pageImageSrc(item, page);
  if (src && image.getAttribute("src") !== src) image.src = src;
  image.alt = `${item.name}, page ${page.number}`;
  $("viewer").style.aspectRatio = `${page.width} / ${page.height}`;
  const blocks = (page.result && page.result.blocks) || [];
  const counts = new Map();
  blocks.forEach((block, index) => {
    if (!block.boxes_px.length) return;
    counts.set(block.label, (counts.get(block.label) || 0) + 1);
    for (const [x1, y1, x2, y2] of block.boxes_px) {
      const box = el("div", {
        className: "box", tabIndex: 0, title: `${block.label}: ${block.text.slice(0, 80)}`,
        dataset: { page: String(page.number), block: String(index), label: block.label },
        style: {
          left: `${(x1 / page.width) * 100}%`, top: `${(y1 / page.height) * 100}%`,
          width: `${((x2 - x1) / page.width) * 100}%`, height: `${((y2 - y1) / page.height) * 100}%`,
          borderColor: colourOf(block.label), "--c": colourOf(block.label),
        },
      });
      box.style.setProperty("--c", colourOf(block.label));
      box.setAttribute("aria-label", `${block.label} block ${index + 1}`);
      overlay.append(box);
    }
  });
  $("legend").append(...[...counts].map(([label, n]) => el("li", {},
    el("span", { className: "swatch", style: { background: colourOf(label) } }), `${label} (${n})`)));
}

function renderBlocks(item) {
  const panel = $("panel-rendered");
  panel.replaceChildren();
  const many = item.order.length > 1;
  for (const number of item.order) {
    const page = item.pages.get(number);
    const section = el("section", { className: "md-page", dataset: { page: String(number) } });
    if (many) section.append(el("p", { className: "page-mark" }, `Page ${number}`));
    if (!page.result) {
      section.append(el("p", { className: "muted" }, page.done ? "(no layout for this page)" : "reading…"));
    } else {
      const crops = Object.fromEntries((page.result.images || []).map((c) => [c.name, c.image_base64]));
      let figure = 0;
      page.result.blocks.forEach((block, index) => {
        let source = block.text;
        if (block.label === "image") {
          source = `![](images/${number}_${figure}.png)${block.text ? "\n\n" + block.text : ""}`;
          figure++;
        }
        section.append(el("div", {
          className: "md-block", tabIndex: -1,
          dataset: { page: String(number), block: String(index), label: block.label },
          style: { "--c": colourOf(block.label) },
        }, renderMarkdown(source, crops)));
      });
    }
    panel.append(section);
  }
  for (const node of panel.querySelectorAll(".md-block")) node.style.setProperty("--c", colourOf(node.dataset.label));
}

function highlight(pageNumber, blockIndex, on, scroll) {
  const selector = `[data-page="${pageNumber}"][data-block="${blockIndex}"]`;
  for (const node of document.querySelectorAll(`.box${selector}, .md-block${selector}`)) {
    node.classList.toggle("hl", on);
    if (on && scroll && node.classList.contains("md-block")) node.scrollIntoView({ block: "nearest" });
  }
}

function showProgress() {
  const item = state.current;
  const bar = $("bar");
  if (!item) return;
  const seconds = ((item.status === "running" ? performance.now() - item.started : item.elapsed * 1000) / 1000);
  const n = item.pageCount || item.order.length || 0;
  const k = item.order.length;
  const done = item.order.filter((p) => item.pages.get(p).done).length;
  let text;
  if (item.status === "running") text = n ? `${item.name}: page ${k} of ${n} · ${seconds.toFixed(1)} s` : `${item.name}: sending · ${seconds.toFixed(1)} s`;
  else if (item.status === "done") text = `${item.name}: ${done} page${done === 1 ? "" : "s"} in ${seconds.toFixed(1)} s`;
  else if (item.status === "error") text = `${item.name}: failed`;
  else text = `${item.name}: queued`;
  $("progress-text").textContent = text;
  bar.hidden = !n;
  bar.max = Math.max(n, 1);
  bar.value = done;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function renderQueue() {
  $("queue").replaceChildren(...state.items.map((item) => {
    const button = el("button", { type: "button", className: "item", onclick: () => showItem(item),
      ariaCurrent: item === state.current ? "true" : "false" }, item.name);
    return el("li", { dataset: { status: item.status } }, button, el("span", { className: `badge ${item.status}` },
      { queued: "queued", running: "reading", done: "done", error: "error" }[item.status]));
  }));
  $("run").disabled = state.running;
  $("stop").disabled = !state.running;
}

function setView(view) {
  state.view = view;
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
}

function viewContent() {
  const item = state.current;
  if (!item) return { text: "", ext: "txt", type: "text/plain" };
  switch (state.view) {
    case "json": return { text: JSON.stringify(responseOf(item), null, 2), ext: "json", type: "application/json" };
    case "text": return { text: item.text, ext: "txt", type: "text/plain" };
    default: return { text: markdownOf(item), ext: "md", type: "text/markdown" };
  }
}

// -- queue ------------------------------------------------------------------------------
function addFiles(files) {
  for (const file of files) {
    state.items.push({ id: nextId++, file, name: file.name || "upload", status: "queued",
      pages: new Map(), order: [], text: "" });
  }
  if (!state.current && state.items.length) showItem(state.items[0]);
  renderQueue();
  showProgress();
}

async function runQueue() {
  if (state.running) return;
  state.running = true;
  state.userPickedView = false;
  setView("text");
  renderQueue();
  const options = { mode: $("mode").value, ref: $("ref").value, pageRange: $("pages").value.trim(),
    resolution: state.resolutionField ? $("resolution").value : "" };
  if (options.mode === "locate" && !options.ref.trim()) {
    showError("locate needs the text to find");
    state.running = false;
    renderQueue();
    return;
  }
  for (const item of state.items) {
    if (item.status !== "queued") continue;
    Object.assign(item, options);
    await runItem(item);
    if (!state.running) break;  // stopped
  }
  state.running = false;
  renderQueue();
}

function init() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) $("key").value = key;
  $("key").addEventListener("change", () => {
    const value = $("key").value.trim();
    if (value) sessionStorage.setItem(KEY_STORAGE, value); else sessionStorage.removeItem(KEY_STORAGE);
    loadServerInfo();
  });
  $("mode").addEventListener("change", () => { $("ref-field").hidden = $("mode").value !== "locate"; });
  $("file").addEventListener("change", () => { addFiles($("file").files); $("file").value = ""; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  $("form").addEventListener("submit", (e) => { e.preventDefault(); runQueue(); });
  $("stop").addEventListener("click", () => { state.running = false; if (state.abort) state.abort.abort(); });
  $("clear").addEventListener("click", () => {
    if (state.running) return;
    for (const item of state.items) if (item.objectUrl) URL.revokeObjectURL(item.objectUrl);
    state.items = [];
    state.current = null;
    $("results").hidden = true;
    showError(null);
    $("progress-text").textContent = "Choose a file to start.";
    $("bar").hidden = true;
    document.body.dataset.state = "idle";
    renderQueue();
  });
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => { state.userPickedView = true; setView(tab.dataset.view); });
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      next.click();
    });
  });
  $("copy").addEventListener("click", async () => {
    const { text } = viewContent();
    try { await navigator.clipboard.writeText(text); $("copy").textContent = "Copied"; } catch { $("copy").textContent = "Copy failed"; }
    setTimeout(() => { $("copy").textContent = "Copy"; }, 1500);
  });
  $("download").addEventListener("click", () => {
    const { text, ext, type } = viewContent();
    const url = URL.createObjectURL(new Blob([text], { type }));
    const base = (state.current && state.current.name.replace(/\.[^.]+$/, "")) || "ocr";
    el("a", { href: url, download: `${base}.${ext}` }).click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  $("archive").addEventListener("click", downloadArchive);
  for (const [type, on] of [["mouseover", true], ["mouseout", false], ["focusin", true], ["focusout", false]]) {
    document.addEventListener(type, (e) => {
      const target = e.target.closest && e.target.closest(".box, .md-block");
      if (!target) return;
      const { page, block } = target.dataset;
      if (on && target.classList.contains("md-block") && state.current && Number(page) !== state.pageShown) {
        state.pageShown = Number(page);
        drawPage(state.current, state.current.pages.get(state.pageShown));
      }
      highlight(page, block, on, target.classList.contains("box"));
    });
  }
  setInterval(() => { if (state.current && state.current.status === "running") showProgress(); }, 200);
  setView("rendered");
  renderQueue();
  loadServerInfo();
}

// Shows an `/ocr/file` answer (output=json) as a finished item: for tests and for pasting.
function showResponse(name, response) {
  const item = { id: nextId++, file: null, name, status: "done", pages: new Map(), order: [], text: response.text || "",
    model: response.model, usage: response.usage, finish_reason: response.finish_reason, elapsed: response.processing_time || 0,
    pageCount: (response.pages || []).length };
  for (const result of response.pages || []) {
    item.pages.set(result.index, { number: result.index, width: result.width, height: result.height,
      text: result.text, result, done: true });
    item.order.push(result.index);
  }
  state.items.push(item);
  state.userPickedView = false;
  setView("rendered");
  showItem(item);
  renderQueue();
  return item;
}

window.playground = { renderMarkdown, showResponse, state };
document.addEventListener("DOMContentLoaded", init);
