// pixloom's page: talks to the JSON API of the same server; no external request of any kind.
"use strict";

const $ = (id) => document.getElementById(id);
let MODELS = [];

function say(id, text, isError) {
  const node = $(id);
  node.textContent = text || "";
  node.classList.toggle("error", Boolean(isError));
}

// Start a job and follow it until it is done, showing where it is ("waiting, 2 ahead" / "working, 3.1 s").
async function run(path, options, messageId) {
  say(messageId, "sending...");
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    say(messageId, "the server cannot be reached", true);
    throw error;
  }
  let body = await response.json().catch(() => ({ error: "the server answered something that is not JSON" }));
  if (!response.ok && response.status !== 202) {
    say(messageId, body.error || `error ${response.status}`, true);
    throw new Error(body.error);
  }
  const job = body.job;
  for (;;) {
    const poll = await fetch(`/api/jobs/${job}`);
    body = await poll.json();
    if (body.state === "done") { say(messageId, `done in ${body.seconds} s`); return body.result; }
    if (body.state === "error" || !poll.ok) { say(messageId, body.error || "failed", true); throw new Error(body.error); }
    say(messageId, body.state === "waiting" ? `waiting (${body.ahead} ahead)...` : `working... ${body.seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function postJSON(value) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) };
}

function fill(selectId, capability) {
  const select = $(selectId);
  select.innerHTML = "";
  for (const model of MODELS.filter((m) => m.capabilities.includes(capability))) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = `${model.name} (${model.model})`;
    select.appendChild(option);
  }
  return select.options.length;
}

// -- tabs -------------------------------------------------------------------------------------------------
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => {
    document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b === button));
    document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === `panel-${button.dataset.panel}`));
    if (button.dataset.panel === "compare") loadCompare();
  });
}

// -- sample -----------------------------------------------------------------------------------------------
function updateLabels() {
  const model = MODELS.find((m) => m.name === $("sample-model").value);
  const box = $("sample-label-box");
  const select = $("sample-label");
  select.innerHTML = "";
  const classes = model && model.num_classes ? model.num_classes : 0;
  box.hidden = !classes;
  const any = document.createElement("option");
  any.value = ""; any.textContent = "all classes"; select.appendChild(any);
  for (let k = 0; k < classes; k++) {
    const option = document.createElement("option");
    option.value = k; option.textContent = k; select.appendChild(option);
  }
}
$("sample-model").addEventListener("change", updateLabels);
$("sample-go").addEventListener("click", async () => {
  const label = $("sample-label").value;
  const result = await run("/api/sample", postJSON({
    model: $("sample-model").value, n: Number($("sample-n").value), seed: Number($("sample-seed").value),
    temperature: Number($("sample-temperature").value), label: label === "" ? null : Number(label),
  }), "sample-message");
  $("sample-image").src = result.image;
  const link = $("sample-download");
  link.href = result.image; link.hidden = false;
});

// -- complete: a 28x28 drawing canvas shown 10 times larger -----------------------------------------------
const canvas = $("complete-canvas");
const pen = canvas.getContext("2d");
const GRID = 28, CELL = canvas.width / GRID;
let pixels = new Float32Array(GRID * GRID);
let drawing = false;

function paint(event) {
  const box = canvas.getBoundingClientRect();
  const x = Math.floor((event.clientX - box.left) / (box.width / GRID));
  const y = Math.floor((event.clientY - box.top) / (box.height / GRID));
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const px = x + dx, py = y + dy;
      if (px < 0 || py < 0 || px >= GRID || py >= GRID) continue;
      const value = dx === 0 && dy === 0 ? 1 : 0.6;
      pixels[py * GRID + px] = Math.max(pixels[py * GRID + px], value);
    }
  }
  redraw();
}
function redraw() {
  pen.fillStyle = "#000"; pen.fillRect(0, 0, canvas.width, canvas.height);
  for (let k = 0; k < pixels.length; k++) {
    if (!pixels[k]) continue;
    const v = Math.round(pixels[k] * 255);
    pen.fillStyle = `rgb(${v},${v},${v})`;
    pen.fillRect((k % GRID) * CELL, Math.floor(k / GRID) * CELL, CELL, CELL);
  }
  const rows = Number($("complete-rows").value);
  pen.strokeStyle = "#ff5252"; pen.lineWidth = 2;
  pen.beginPath(); pen.moveTo(0, rows * CELL); pen.lineTo(canvas.width, rows * CELL); pen.stroke();
}
canvas.addEventListener("pointerdown", (e) => { drawing = true; paint(e); });
canvas.addEventListener("pointermove", (e) => { if (drawing) paint(e); });
window.addEventListener("pointerup", () => { drawing = false; });
$("complete-clear").addEventListener("click", () => { pixels = new Float32Array(GRID * GRID); redraw(); });
$("complete-rows").addEventListener("input", () => { $("complete-rows-value").textContent = $("complete-rows").value; redraw(); });
$("complete-go").addEventListener("click", async () => {
  const result = await run("/api/complete", postJSON({
    model: $("complete-model").value, pixels: Array.from(pixels), keep_rows: Number($("complete-rows").value),
    n: Number($("complete-n").value), seed: Number($("complete-seed").value),
  }), "complete-message");
  $("complete-image").src = result.image;
});

// -- DRAW ----------------------------------------------------------------------------------------------------
let animation = null;
$("draw-go").addEventListener("click", async () => {
  if (animation) clearInterval(animation);
  const result = await run("/api/canvas", postJSON({ model: $("draw-model").value, n: 4, seed: Number($("draw-seed").value) }),
                           "draw-message");
  let step = 0;
  animation = setInterval(() => {
    $("draw-image").src = result.frames[step];
    $("draw-step").textContent = `step ${step + 1} of ${result.steps}`;
    step += 1;
    if (step === result.frames.length) { clearInterval(animation); animation = null; }
  }, 80);
});

// -- caption -------------------------------------------------------------------------------------------------
$("caption-go").addEventListener("click", async () => {
  const file = $("caption-file").files[0];
  if (!file) { say("caption-message", "choose a photo first", true); return; }
  const form = new FormData();
  form.append("model", $("caption-model").value);
  form.append("beam", $("caption-beam").value);
  form.append("file", file);
  $("caption-text").textContent = "";
  $("caption-attention").innerHTML = "";
  const result = await run("/api/caption", { method: "POST", body: form }, "caption-message");
  $("caption-text").textContent = result.caption;
  result.attention.forEach((image, k) => {
    const figure = document.createElement("figure");
    const picture = document.createElement("img");
    picture.src = image; picture.alt = `attention for ${result.words[k]}`;
    const caption = document.createElement("figcaption");
    caption.textContent = result.words[k];
    figure.appendChild(picture); figure.appendChild(caption);
    $("caption-attention").appendChild(figure);
  });
});

// -- upscale ----------------------------------------------------------------------------------------------------
function slide() {
  const share = Number($("upscale-slider").value) / 100;
  $("upscale-top").style.width = `${share * $("upscale-bicubic").clientWidth}px`;
}
$("upscale-slider").addEventListener("input", slide);
$("upscale-go").addEventListener("click", async () => {
  const file = $("upscale-file").files[0];
  if (!file) { say("upscale-message", "choose a photo first", true); return; }
  const form = new FormData();
  form.append("model", $("upscale-model").value);
  form.append("file", file);
  const result = await run("/api/upscale", { method: "POST", body: form }, "upscale-message");
  $("upscale-bicubic").src = result.bicubic;
  $("upscale-image").src = result.upscaled;
  $("upscale-compare").hidden = false;
  $("upscale-bicubic").onload = slide;
});

// -- compare ----------------------------------------------------------------------------------------------------
async function loadCompare() {
  const response = await fetch("/api/compare");
  const body = await response.json();
  if (!response.ok) { say("compare-message", body.error, true); return; }
  const lines = body.markdown.split("\n").filter((line) => line.startsWith("|"));
  const table = document.createElement("table");
  lines.filter((line) => !/^\|[-| ]+\|$/.test(line)).forEach((line, k) => {
    const row = document.createElement("tr");
    line.split("|").slice(1, -1).forEach((cell) => {
      const node = document.createElement(k === 0 ? "th" : "td");
      node.textContent = cell.trim(); row.appendChild(node);
    });
    table.appendChild(row);
  });
  $("compare-table").innerHTML = ""; $("compare-table").appendChild(table);
}

// -- start ---------------------------------------------------------------------------------------------------------
(async () => {
  const response = await fetch("/api/models");
  MODELS = (await response.json()).models;
  const counts = {
    sample: fill("sample-model", "sample"), complete: fill("complete-model", "complete"),
    draw: fill("draw-model", "canvas"), caption: fill("caption-model", "caption"), upscale: fill("upscale-model", "upscale"),
  };
  for (const [panel, count] of Object.entries(counts)) {
    if (!count) say(`${panel}-message`, "no served model can do this (start pixloom serve with --models ...)", true);
  }
  updateLabels();
  redraw();
  $("status").textContent = `${MODELS.length} model(s) served`;
})();
