// Run: OPENAI_OCR_URL=http://localhost:8000 node examples/javascript_example.mjs page.png
// fetch + FormData (Node 18+ or a browser) against the legacy routes and the OpenAI route.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";

const URL_BASE = process.env.OPENAI_OCR_URL ?? "http://localhost:8000";
const HEADERS = process.env.OPENAI_OCR_API_KEY ? { "X-API-Key": process.env.OPENAI_OCR_API_KEY } : {};

async function form(path, fields = {}) {
  const data = new FormData();
  data.append("file", new Blob([await readFile(path)]), basename(path));
  for (const [key, value] of Object.entries(fields)) data.append(key, String(value));
  return data;
}

export async function ocrFile(path, mode = "free_ocr") {
  const response = await fetch(`${URL_BASE}/ocr/file`, { method: "POST", headers: HEADERS, body: await form(path, { mode }) });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  return (await response.json()).text;
}

// Reads /ocr/stream: events are separated by a blank line; each `data:` holds JSON
// ({"type": "text", "text": "..."}), and the stream ends with `data: [DONE]`.
export async function ocrStream(path, onText, mode = "free_ocr") {
  const response = await fetch(`${URL_BASE}/ocr/stream`, { method: "POST", headers: HEADERS, body: await form(path, { mode }) });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return text;
      const event = JSON.parse(data);
      if (event.type === "error") throw new Error(event.error.message);
      if (event.text) { text += event.text; onText(event.text); }
    }
  }
  return text;
}

export async function chat(path) {
  const image = (await readFile(path)).toString("base64");
  const response = await fetch(`${URL_BASE}/v1/chat/completions`, {
    method: "POST",
    headers: { ...HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: [
      { type: "image_url", image_url: { url: `data:image/png;base64,${image}` } },
      { type: "text", text: "Free OCR." }] }] }),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  return (await response.json()).choices[0].message.content;
}

const path = process.argv[2];
console.log("== /ocr/file ==\n" + (await ocrFile(path)));
console.log("== /ocr/stream ==");
await ocrStream(path, (piece) => process.stdout.write(piece));
console.log("\n== /v1/chat/completions ==\n" + (await chat(path)));
