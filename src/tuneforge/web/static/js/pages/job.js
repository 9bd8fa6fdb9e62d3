// One job: details, resolved hyperparameters, live curves and event log, checkpoints, results, cancel.

import {
  cancelJob,
  changeJob,
  downloadFile,
  fetchJobEvents,
  fileText,
  get,
  getJob,
  isLegacy,
  parseCsv,
  streamLegacyEvents,
} from "../api.js";
import { GROUPS, keysOf, lineChart, pointsOf } from "../charts.js";
import { FINAL, clear, errorBox, h, poll, statusBadge, time, timeCell } from "../dom.js";
import { formatMetrics } from "../metrics.js";
import { duration, progressOf, trainingFacts } from "../progress.js";

const REFRESH_MS = 1000;

export function render(main, { match }) {
  const id = match[0];
  const view = layout(main, id);
  const log = { ids: new Set(), events: [] };
  const charts = new Map(); // group id -> lineChart
  let metricRows = [];
  let resultsLoaded = false;
  let job = null;

  // Steps, time left, tokens and seed from what the job object and the events say now.
  function drawRun() {
    showRun(view, job, trainingFacts(view.messages), metricRows);
  }

  async function refresh() {
    try {
      job = await getJob(id);
      showJob(view, job);
      // the status badge and the run facts change together, before the awaits below (a badge that says
      // succeeded beside "Time left: under a minute" would be a page that contradicts itself)
      drawRun();
      if (isLegacy(id) && !streaming) addEvents(view, job.events.slice(view.events.children.length));
      else if (!isLegacy(id)) await refreshJobEvents();
      if (!isLegacy(id))
        showCheckpoints(view, (await get(`/v1/fine_tuning/jobs/${id}/checkpoints?limit=100`)).data);
      if (FINAL.has(job.status) && job.result_files.length && !resultsLoaded) await loadResults();
      drawCurves();
      drawRun();
      clear(view.error);
    } catch (err) {
      clear(view.error).append(errorBox(err));
    }
  }

  async function refreshJobEvents() {
    const fresh = await fetchJobEvents(id, log);
    addEvents(
      view,
      fresh.filter((e) => e.type !== "metrics"),
    );
    if (!resultsLoaded)
      metricRows = log.events.filter((e) => e.type === "metrics" && e.data).map((e) => e.data);
  }

  // The results CSV has every step (the events carry a sample), so once it exists it feeds the curves.
  async function loadResults() {
    const fileId = job.result_files[0];
    const rows = parseCsv(await fileText(fileId));
    if (rows.length) metricRows = rows;
    resultsLoaded = true;
    view.results.hidden = false;
    clear(view.results).append(
      h("h2", {}, "Results"),
      h("p", {}, `${rows.length} rows in `, h("code", {}, fileId), "."),
      h(
        "button",
        { type: "button", onclick: () => downloadFile(fileId, `${id}-results.csv`).catch(showError) },
        "Download results CSV",
      ),
    );
  }

  function drawCurves() {
    for (const group of GROUPS) {
      const keys = keysOf(group, metricRows);
      if (!keys.length && group.prefix) continue;
      if (!charts.has(group.id)) {
        const chart = lineChart(group.title, { id: group.id, unit: group.unit, controls: group.controls });
        charts.set(group.id, chart);
        view.curves.append(chart.figure);
      }
      const series = (keys.length ? keys : group.keys).map((key) => ({
        label: key,
        points: pointsOf(metricRows, key),
        dashed: key.startsWith("validation_"),
      }));
      charts.get(group.id).update(series);
    }
    view.curvesNote.textContent = metricRows.length
      ? `${metricRows.length} metric rows${resultsLoaded ? " (from the results CSV)" : ""}.`
      : "No metrics yet: curves appear once training reports its first step.";
  }

  function showError(err) {
    clear(view.error).append(errorBox(err));
  }

  view.cancel.addEventListener("click", async () => {
    if (!confirm(`Cancel ${id}?`)) return;
    view.cancel.disabled = true;
    try {
      await cancelJob(id);
      await refresh();
    } catch (err) {
      showError(err);
      view.cancel.disabled = false;
    }
  });

  for (const action of ["pause", "resume"]) {
    view[action].addEventListener("click", async () => {
      view[action].disabled = true;
      try {
        await changeJob(id, action);
        await refresh();
      } catch (err) {
        showError(err);
      }
      view[action].disabled = false;
    });
  }

  // Legacy fine-tunes stream their events; if the stream fails, the retrieve poll shows them instead.
  let streaming = isLegacy(id);
  const abort = new AbortController();
  if (streaming) {
    const onEvent = (event) => {
      addEvents(view, [event]);
      if (job) drawRun(); // the facts the log just told
    };
    streamLegacyEvents(id, onEvent, abort.signal).catch((err) => {
      streaming = false;
      if (err.name !== "AbortError") console.warn("event stream ended:", err);
    });
  }

  let alive = true;
  refresh();
  const stop = poll(refresh, REFRESH_MS, () => alive && !(job && FINAL.has(job.status) && resultsSettled()));
  function resultsSettled() {
    return resultsLoaded || !job.result_files.length;
  }
  return () => {
    alive = false;
    abort.abort();
    stop();
    for (const chart of charts.values()) chart.destroy();
  };
}

function layout(main, id) {
  const view = {
    status: h("span", { "aria-live": "polite" }),
    cancel: h("button.danger", { type: "button", hidden: true }, "Cancel job"),
    pause: h("button.secondary", { type: "button", hidden: true }, "Pause"),
    resume: h("button", { type: "button", hidden: true }, "Resume"),
    tryLink: h("a.button.secondary", { href: "#/playground", hidden: true }, "Try in playground"),
    error: h("div"),
    details: h("dl.details"),
    run: h("dl.details.run"),
    progress: h("progress#job-progress", { max: 1, "aria-label": "Training progress" }),
    messages: [], // every event message so far, oldest first: the run's facts are read from them
    hyper: h("tbody"),
    curves: h("div.curves"),
    curvesNote: h("p.note", { role: "status" }),
    checkpoints: h("tbody"),
    checkpointSection: h("section", { "aria-labelledby": "ckpt-title", hidden: isLegacy(id) }),
    results: h("section", { hidden: true }),
    events: h("ol.events", { role: "log", "aria-live": "polite", "aria-label": "Event log, newest first" }),
  };
  view.checkpointSection.append(
    h("h2#ckpt-title", {}, "Checkpoints"),
    h(
      "div.table-wrap",
      {},
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Step", "Checkpoint model", "Metrics", "Created"].map((c) => h("th", { scope: "col" }, c)),
          ),
        ),
        view.checkpoints,
      ),
    ),
  );
  main.append(
    h(
      "div.page-head",
      {},
      h("h1", {}, h("span.visually-hidden", {}, "Job "), h("code", {}, id), " ", view.status),
      h(
        "div.actions",
        {},
        view.tryLink,
        h("a.button.secondary", { href: `#/compare?ids=${id}` }, "Compare"),
        view.pause,
        view.resume,
        view.cancel,
      ),
    ),
    view.error,
    h(
      "div.grid-2",
      {},
      h(
        "section",
        { "aria-labelledby": "details-title" },
        h("h2#details-title", {}, "Details"),
        view.details,
        h("h2#run-title", {}, "Run"),
        view.progress,
        view.run,
      ),
      h(
        "section",
        { "aria-labelledby": "hp-title" },
        h("h2#hp-title", {}, "Hyperparameters"),
        h(
          "table.kv",
          {},
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"))),
          view.hyper,
        ),
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "curves-title" },
      h("h2#curves-title", {}, "Curves"),
      view.curvesNote,
      view.curves,
    ),
    view.checkpointSection,
    view.results,
    h("section", { "aria-labelledby": "events-title" }, h("h2#events-title", {}, "Events"), view.events),
  );
  return view;
}

function showJob(view, job) {
  clear(view.status).append(statusBadge(job.status));
  view.cancel.hidden = FINAL.has(job.status);
  const jobsApi = job.api !== "fine-tunes"; // the legacy API has no pause
  view.pause.hidden = !(jobsApi && (job.status === "queued" || job.status === "running"));
  view.resume.hidden = !(jobsApi && job.status === "paused");
  const rows = [
    ["API", job.api === "fine-tunes" ? "legacy /v1/fine-tunes" : "/v1/fine_tuning/jobs"],
    ["Base model", job.model],
    ["Fine-tuned model", job.fine_tuned_model || "—"],
    ["Training file", job.training_file || "—"],
    ["Validation file", job.validation_file || "—"],
    ["Created", timeCell(job.created_at)],
    ["Finished", timeCell(job.finished_at)],
  ];
  if (job.error) rows.push(["Error", h("span.error-text", {}, `${job.error.code}: ${job.error.message}`)]);
  clear(view.details).append(...rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
  clear(view.hyper).append(
    ...Object.entries(job.hyperparameters).map(([name, value]) =>
      h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, formatValue(value))),
    ),
  );
}

/** Steps, progress, time left, tokens and seed: from the job object where the API has them, else from
 * what its events said (the legacy object has no seed or trained_tokens). */
function showRun(view, job, facts, rows) {
  const progress = progressOf(job, facts, rows, Date.now() / 1000);
  if (progress.fraction === null) view.progress.removeAttribute("value");
  else view.progress.value = progress.fraction;
  view.progress.hidden = job.status === "cancelled" || job.status === "failed";
  const steps = progress.total
    ? `${progress.step} of ${progress.total} (${Math.round(100 * progress.fraction)}%)`
    : progress.step || "—";
  const left = timeLeft(job, progress);
  const tokens = job.trained_tokens ?? facts.trainedTokens;
  const rowsShown = [
    ["Steps", steps],
    ["Time left", left],
    ["Trained tokens", tokens == null ? "—" : tokens.toLocaleString("en-US")],
    ["Seed", job.seed ?? facts.seed ?? "—"],
  ];
  clear(view.run).append(...rowsShown.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
  if (job.fine_tuned_model) {
    const query = new URLSearchParams({ model: job.fine_tuned_model, compare: job.model });
    if (facts.dataFormat === "chat") query.set("mode", "chat"); // trained on messages: chat with it
    view.tryLink.href = `#/playground?${query}`;
    view.tryLink.hidden = false;
  }
}

function timeLeft(job, progress) {
  if (FINAL.has(job.status)) return job.status === "succeeded" ? "done" : "—";
  if (job.status !== "running") return "starts when a worker is free";
  if (progress.secondsLeft === null) return "estimating…";
  const at = new Date((Date.now() / 1000 + progress.secondsLeft) * 1000);
  return `${duration(progress.secondsLeft)} (around ${at.toLocaleTimeString(undefined, { timeStyle: "short" })})`;
}

function formatValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "number") return String(Number(value.toPrecision(6)));
  // a label such as " positive" differs from "positive" only by its space: show the quotes then
  return typeof value === "string" && value.trim() !== value ? JSON.stringify(value) : String(value);
}

/** Adds events (oldest first) at the top of the log. Only new items are inserted, so the live region
 * announces each event once instead of re-reading the whole log. */
function addEvents(view, oldestFirst) {
  view.messages.push(...oldestFirst);
  for (const event of oldestFirst) {
    view.events.prepend(
      h(
        `li.level-${event.level || "info"}`,
        {},
        h("time", { datetime: new Date(event.created_at * 1000).toISOString() }, time(event.created_at)),
        " ",
        h("span", {}, event.message),
      ),
    );
  }
}

function showCheckpoints(view, checkpoints) {
  clear(view.checkpoints).append(
    ...(checkpoints.length
      ? checkpoints.map((c) =>
          h(
            "tr",
            {},
            h("td", {}, c.step_number),
            h("td.model-name", {}, c.fine_tuned_model_checkpoint),
            h("td", {}, metricList(c.metrics)),
            h("td", {}, timeCell(c.created_at)),
          ),
        )
      : [h("tr", {}, h("td", { colspan: 4 }, "No checkpoints yet."))]),
  );
}

function metricList(metrics) {
  const shown = formatMetrics(metrics);
  if (!shown.length) return "—";
  return h(
    "ul.metrics",
    {},
    shown.map(([name, value]) => h("li", {}, h("span.metric-name", {}, name), " ", h("b", {}, value))),
  );
}
