// Docmill console: small progressive enhancements over server-rendered pages (every page
// works without this file). No framework, no build step.
"use strict";

const TERMINAL = new Set(["SUCCESS", "ERROR", "EXPIRED", "DELETED"]);
const MAX_STREAMS = 4; // browsers allow ~6 connections per host over HTTP/1.1

function paint(el, job) {
  const bar = el.querySelector("[data-role=bar]");
  const status = el.querySelector("[data-role=status]");
  const message = el.querySelector("[data-role=message]");
  if (bar) { bar.value = job.progress; bar.textContent = job.progress + "%"; }
  if (status) { status.textContent = job.status; status.className = "status status-" + job.status.toLowerCase(); }
  if (message) message.textContent = job.progress + "% · " + (job.message || "");
  const attempts = document.querySelector("[data-role=attempts]");
  if (attempts && el.id === "job-progress") attempts.textContent = job.attempts;
}

const streams = new Map(); // job id -> its EventSource

function follow(id) {
  const source = new EventSource("/console/jobs/" + encodeURIComponent(id) + "/events");
  streams.set(id, source);
  const stop = () => { source.close(); streams.delete(id); };
  source.addEventListener("job", (event) => {
    const job = JSON.parse(event.data);
    const shown = document.querySelectorAll("[data-live-job='" + CSS.escape(id) + "']");
    shown.forEach((el) => paint(el, job));
    if (TERMINAL.has(job.status)) {
      stop();
      if ([...shown].some((el) => el.hasAttribute("data-reload-when-done"))) window.location.reload();
      else followAll(); // a stream is free: follow the next live job
    }
  });
  source.addEventListener("gone", stop);
  source.onerror = stop;
}

function liveIds() {
  return [...new Set([...document.querySelectorAll("[data-live-job]")].map((el) => el.dataset.liveJob))];
}

function followAll() {
  // Returns whether some live jobs are left without a stream.
  const ids = liveIds();
  ids.filter((id) => !streams.has(id)).slice(0, Math.max(0, MAX_STREAMS - streams.size)).forEach(follow);
  return ids.some((id) => !streams.has(id));
}

function pollList() {
  // More live jobs than streams: refresh the rows every few seconds as well.
  const table = document.querySelector("table[data-fragment]");
  if (!table || !followAll()) return;
  const timer = setInterval(async () => {
    const response = await fetch(table.dataset.fragment, { credentials: "same-origin" });
    if (!response.ok) return;
    document.getElementById("job-rows").innerHTML = await response.text();
    const ids = new Set(liveIds());
    for (const [id, source] of streams) if (!ids.has(id)) { source.close(); streams.delete(id); }
    if (!followAll() && !ids.size) clearInterval(timer);
  }, 3000);
}

function operationForm() {
  const select = document.getElementById("operation");
  if (!select) return;
  select.addEventListener("change", async () => {
    const url = select.dataset.paramsUrl + "?operation=" + encodeURIComponent(select.value);
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    document.getElementById("params").outerHTML = await response.text();
    history.replaceState(null, "", "/console/submit?operation=" + encodeURIComponent(select.value));
    bindJson();
  });
}

function dropzone() {
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file");
  const list = document.getElementById("chosen-files");
  if (!zone || !input) return;
  const show = () => {
    list.innerHTML = "";
    for (const file of input.files) {
      const li = document.createElement("li");
      li.textContent = file.name + " (" + file.size + " bytes)";
      list.appendChild(li);
    }
  };
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; show(); }
  });
}

function bindJson() {
  // Live JSON syntax check of JSON text areas; the server checks the schema itself on save.
  document.querySelectorAll("textarea[data-json]").forEach((area) => {
    if (area.dataset.bound) return;
    area.dataset.bound = "1";
    const out = document.querySelector("[data-json-status='" + area.id + "']");
    const check = () => {
      if (!area.value.trim()) { area.removeAttribute("aria-invalid"); if (out) out.textContent = ""; return; }
      try {
        JSON.parse(area.value);
        area.removeAttribute("aria-invalid");
        if (out) { out.textContent = "Valid JSON."; out.className = "hint ok"; }
      } catch (err) {
        area.setAttribute("aria-invalid", "true");
        if (out) { out.textContent = "Not valid JSON: " + err.message; out.className = "field-error"; }
      }
    };
    area.addEventListener("input", check);
    check();
  });
}

function autoSubmit() {
  // A form the page asks to send at once (page 1 of a PDF as an image, for its boxes).
  const form = document.querySelector("form[data-auto-submit]");
  if (!form) return;
  const button = form.querySelector("button");
  if (button) { button.disabled = true; button.textContent = "Rendering page 1…"; }
  form.submit();
}

function confirms() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  });
  document.querySelectorAll("[data-select-on-focus]").forEach((el) => el.addEventListener("focus", () => el.select()));
}

document.addEventListener("DOMContentLoaded", () => {
  pollList(); // follows the first live jobs, and polls if there are more
  followAll(); // the job page (no list table)
  operationForm();
  dropzone();
  bindJson();
  confirms();
  autoSubmit();
});
