// The dashboard's only way to the server: the public /v1 API over fetch, with the user's key.

const KEY_STORAGE = "tuneforge.apiKey";

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** An error carrying the API's envelope: message, type, param, code and the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || (typeof body?.detail === "string" ? body.detail : `HTTP ${status}`));
    this.status = status;
    this.type = err.type || null;
    this.param = err.param || null;
    this.code = err.code || null;
  }
}

const listeners = new Set();
/** Called with every ApiError (the app shows the key prompt on 401). */
export function onApiError(fn) {
  listeners.add(fn);
}

export async function request(method, path, { json, form, raw = false, signal } = {}) {
  const headers = {};
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // FormData: the browser sets the multipart boundary
  }
  const response = await fetch(path, { method, headers, body, signal });
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    const error = new ApiError(response.status, payload);
    error.keySent = Boolean(key); // a 401 without a key is "enter one", not "refused"
    for (const fn of listeners) fn(error);
    throw error;
  }
  if (raw) return response;
  return response.json();
}

export const get = (path) => request("GET", path);
export const post = (path, json) => request("POST", path, { json });
export const del = (path) => request("DELETE", path);

export function upload(file, purpose = "fine-tune") {
  const form = new FormData();
  form.append("purpose", purpose);
  form.append("file", file, file.name);
  return request("POST", "/v1/files", { form });
}

export function isLegacy(id) {
  return id.startsWith("ft-");
}

/** Both job kinds in one list, newest first. Legacy fine-tunes are normalised to the job shape. */
export async function listAllJobs() {
  const [jobs, legacy] = await Promise.all([get("/v1/fine_tuning/jobs?limit=100"), get("/v1/fine-tunes")]);
  const rows = [...jobs.data.map(fromJob), ...legacy.data.map(fromLegacy)];
  rows.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  return rows;
}

export async function getJob(id) {
  if (isLegacy(id)) return fromLegacy(await get(`/v1/fine-tunes/${id}`));
  return fromJob(await get(`/v1/fine_tuning/jobs/${id}`));
}

export async function cancelJob(id) {
  const path = isLegacy(id) ? `/v1/fine-tunes/${id}/cancel` : `/v1/fine_tuning/jobs/${id}/cancel`;
  return post(path, {});
}

/** Pause or resume a job of today's API (`action` is "pause" or "resume"; the legacy API has neither). */
export async function changeJob(id, action) {
  return post(`/v1/fine_tuning/jobs/${id}/${action}`, {});
}

function fromJob(job) {
  const resolved = job.method?.[job.method?.type]?.hyperparameters || job.hyperparameters || {};
  return {
    id: job.id,
    api: "fine_tuning.jobs",
    status: job.status,
    model: job.model,
    fine_tuned_model: job.fine_tuned_model,
    created_at: job.created_at,
    finished_at: job.finished_at,
    training_file: job.training_file,
    validation_file: job.validation_file,
    result_files: job.result_files || [],
    hyperparameters: resolved,
    trained_tokens: job.trained_tokens,
    seed: job.seed,
    estimated_finish: job.estimated_finish ?? null,
    error: job.error,
  };
}

const LEGACY_FINAL = new Set(["succeeded", "failed", "cancelled"]);

function fromLegacy(ft) {
  return {
    id: ft.id,
    api: "fine-tunes",
    status: ft.status,
    model: ft.model,
    fine_tuned_model: ft.fine_tuned_model,
    created_at: ft.created_at,
    finished_at: LEGACY_FINAL.has(ft.status) ? ft.updated_at : null,
    training_file: ft.training_files?.[0]?.id || null,
    validation_file: ft.validation_files?.[0]?.id || null,
    result_files: (ft.result_files || []).map((f) => f.id),
    hyperparameters: ft.hyperparams || {},
    trained_tokens: null, // the legacy object has neither: the job page reads them from the events
    seed: null,
    estimated_finish: null,
    error: null,
    events: ft.events || [],
  };
}

/**
 * Every event of a fine_tuning job, oldest first. The API pages newest first with `after`; `log`
 * ({ids: Set, events: []}) keeps what was seen, so a poll fetches pages only until a known event.
 */
export async function fetchJobEvents(id, log) {
  const fresh = [];
  let after = null;
  for (;;) {
    const query = after ? `?limit=100&after=${encodeURIComponent(after)}` : "?limit=100";
    const page = await get(`/v1/fine_tuning/jobs/${id}/events${query}`);
    let sawKnown = false;
    for (const event of page.data) {
      if (log.ids.has(event.id)) {
        sawKnown = true;
        break;
      }
      fresh.push(event);
    }
    if (sawKnown || !page.has_more || page.data.length === 0) break;
    after = page.data[page.data.length - 1].id;
  }
  fresh.reverse();
  for (const event of fresh) log.ids.add(event.id);
  log.events.push(...fresh);
  return fresh;
}

/**
 * Follows a legacy fine-tune's server-sent events (`?stream=true`): every event so far, then each new
 * one as it happens, until the job ends. Read with fetch, not EventSource, which cannot send the key.
 */
export async function streamLegacyEvents(id, onEvent, signal) {
  const response = await request("GET", `/v1/fine-tunes/${id}/events?stream=true`, { raw: true, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data === "[DONE]") return;
      if (data) onEvent(JSON.parse(data));
    }
  }
}

/** Parses a results CSV (header row, then numbers) into objects. */
export function parseCsv(text) {
  const lines = text.trim().split(/\r?\n/);
  if (lines.length < 2) return [];
  const header = lines[0].split(",");
  return lines.slice(1).map((line) => {
    const cells = line.split(",");
    const row = {};
    header.forEach((name, i) => {
      const value = cells[i];
      if (value !== undefined && value !== "") row[name] = Number(value);
    });
    return row;
  });
}

export async function fileText(id) {
  const response = await request("GET", `/v1/files/${id}/content`, { raw: true });
  return response.text();
}

/** Saves a file from the API through the browser (the key must be sent, so no plain link). */
export async function downloadFile(id, filename) {
  const response = await request("GET", `/v1/files/${id}/content`, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
