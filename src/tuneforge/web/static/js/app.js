// The dashboard shell: hash routes to pages, the API-key prompt, and the nav's current page.

import { getKey, onApiError, setKey } from "./api.js";
import { clear, h } from "./dom.js";
import * as batches from "./pages/batches.js";
import * as compare from "./pages/compare.js";
import * as files from "./pages/files.js";
import * as job from "./pages/job.js";
import * as jobs from "./pages/jobs.js";
import * as newJob from "./pages/new.js";
import * as playground from "./pages/playground.js";

// [pattern, page, nav id]; the first match wins. Each page's render(main, params) returns a cleanup.
const ROUTES = [
  [/^\/jobs\/([\w-]+)$/, job, "jobs"],
  [/^\/jobs\/?$/, jobs, "jobs"],
  [/^\/compare$/, compare, "jobs"],
  [/^\/files\/?$/, files, "files"],
  [/^\/new$/, newJob, "new"],
  [/^\/playground$/, playground, "playground"],
  [/^\/batches\/?$/, batches, "batches"],
];

const main = document.getElementById("main");
let cleanup = null;

function route() {
  const hash = location.hash.replace(/^#/, "") || "/jobs";
  const [path, query = ""] = hash.split("?");
  if (cleanup) cleanup();
  cleanup = null;
  clear(main);
  for (const [pattern, page, nav] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    markNav(nav);
    const params = { match: match.slice(1), query: new URLSearchParams(query) };
    cleanup = page.render(main, params) || null;
    return;
  }
  markNav(null);
  main.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/jobs" }, "Back to jobs")));
}

function markNav(current) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// --- API key -------------------------------------------------------------------------------------

const panel = document.getElementById("key-panel");
const input = document.getElementById("api-key");
const message = document.getElementById("key-message");

function openKeyPanel(note = "") {
  panel.hidden = false;
  input.value = getKey();
  message.textContent = note;
  input.focus();
}

document.getElementById("key-button").addEventListener("click", () => openKeyPanel());
document.getElementById("key-close").addEventListener("click", () => {
  panel.hidden = true;
});
document.getElementById("key-forget").addEventListener("click", () => {
  setKey("");
  input.value = "";
  message.textContent = "Key removed from this browser.";
});
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setKey(input.value.trim());
  message.textContent = "Key saved in this browser.";
  panel.hidden = true;
  route(); // reload the page's data with the new key
});

const NO_KEY = "No API key is stored in this browser yet; enter one to use the API.";

onApiError((error) => {
  if (error.status !== 401) return;
  // Before any key was typed the first requests are refused too: that is no news, and the prompt
  // already says what to do.
  if (error.keySent) openKeyPanel(`The API refused the key: ${error.message}`);
  else if (panel.hidden) openKeyPanel(NO_KEY);
});

if (!getKey()) openKeyPanel(NO_KEY);
window.addEventListener("hashchange", route);
route();
