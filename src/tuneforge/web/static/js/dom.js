// A few DOM and formatting helpers shared by the pages. No framework: elements are built with h().

/** h("tag.class#id", {attrs}, ...children): children may be strings, nodes, arrays or null. */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...rest] = spec.split(/(?=[.#])/);
  const el = document.createElement(tag || "div");
  for (const part of rest) {
    if (part.startsWith(".")) el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function time(seconds) {
  if (!seconds) return "—";
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function timeCell(seconds) {
  if (!seconds) return h("span", { text: "—" });
  return h("time", { datetime: new Date(seconds * 1000).toISOString() }, time(seconds));
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function number(value, digits = 4) {
  if (typeof value !== "number") return value === null || value === undefined ? "—" : String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

/** A model as a <select> option. A base model the server cannot load (a hub id with no cached copy and
 * no reachable hub: `available: false` in /v1/models) is listed, disabled, with the server's reason. */
export function modelOption(model) {
  if (model.available !== false) return h("option", { value: model.id }, model.id);
  return h(
    "option",
    { value: model.id, disabled: true, title: model.unavailable_reason || "" },
    `${model.id} (unavailable here)`,
  );
}

export const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export function statusBadge(status) {
  return h(`span.badge.status-${status}`, {}, status);
}

/** An error box that announces itself to screen readers; shows the API's own message. */
export function errorBox(error) {
  const message = error && error.message ? error.message : String(error);
  return h("p.error", { role: "alert" }, message);
}

/** Runs `fn` every `ms` while `alive()` holds; returns a stop function. Skips a tick while one runs. */
export function poll(fn, ms, alive) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped || !alive()) return;
    try {
      await fn();
    } catch (err) {
      console.warn(err);
    }
    if (!stopped && alive()) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
