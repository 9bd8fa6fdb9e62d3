// Compare: several jobs' curves overlaid (training solid, validation dashed), one colour per job and
// metric, so that two runs, or accuracy and F1 of one run, never share a colour.

import { fetchJobEvents, fileText, getJob, isLegacy, listAllJobs, parseCsv } from "../api.js";
import { GROUPS, PALETTE, keysOf, lineChart, pointsOf } from "../charts.js";
import { FINAL, clear, errorBox, h, poll } from "../dom.js";

const REFRESH_MS = 2000;

export function render(main, { query }) {
  const ids = (query.get("ids") || "").split(",").filter(Boolean);
  const error = h("div", { "aria-live": "polite" });
  const picker = h("fieldset.picker", {}, h("legend", {}, "Jobs to overlay"));
  const curves = h("div.curves");
  main.append(h("h1", {}, "Compare runs"), picker, error, curves);

  const state = new Map(
    ids.map((id) => [id, { log: { ids: new Set(), events: [] }, rows: [], job: null, done: false }]),
  );
  const charts = new Map();

  async function fillPicker() {
    try {
      const jobs = await listAllJobs();
      picker.append(
        ...jobs.map((job) => {
          const box = h("input", {
            type: "checkbox",
            id: `cmp-${job.id}`,
            checked: ids.includes(job.id),
            onchange: () => {
              const chosen = [...picker.querySelectorAll("input:checked")].map((b) => b.id.slice(4));
              location.hash = `#/compare?ids=${chosen.join(",")}`;
            },
          });
          return h(
            "div.field.checkbox",
            {},
            box,
            h(
              "label",
              { for: `cmp-${job.id}` },
              `${job.id} (${job.model}${job.fine_tuned_model ? ` → ${job.fine_tuned_model}` : ""}, ${job.status})`,
            ),
          );
        }),
      );
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  async function refreshOne(id, entry) {
    if (entry.done) return;
    entry.job = await getJob(id);
    if (FINAL.has(entry.job.status) && entry.job.result_files.length) {
      entry.rows = parseCsv(await fileText(entry.job.result_files[0]));
      entry.done = true;
    } else if (!isLegacy(id)) {
      await fetchJobEvents(id, entry.log);
      entry.rows = entry.log.events.filter((e) => e.type === "metrics" && e.data).map((e) => e.data);
      entry.done = FINAL.has(entry.job.status);
    } else {
      entry.done = FINAL.has(entry.job.status);
    }
  }

  async function refresh() {
    try {
      await Promise.all([...state].map(([id, entry]) => refreshOne(id, entry)));
      draw();
      clear(error);
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  function draw() {
    const allRows = [...state.values()].flatMap((e) => e.rows);
    for (const group of GROUPS) {
      const keys = keysOf(group, allRows);
      if (!keys.length) continue;
      if (!charts.has(group.id)) {
        const chart = lineChart(group.title, { id: group.id, unit: group.unit, controls: group.controls });
        charts.set(group.id, chart);
        curves.append(chart.figure);
      }
      const series = [];
      const colours = new Map(); // "job metric" -> colour: one per job and metric, shared by its two splits
      for (const [id, entry] of state) {
        for (const key of keys) {
          const points = pointsOf(entry.rows, key);
          if (!points.length) continue;
          const curve = `${id} ${key.replace(/^(training|validation)_/, "")}`;
          if (!colours.has(curve)) colours.set(curve, PALETTE[colours.size % PALETTE.length]);
          series.push({
            label: `${shortId(id)} ${key}`,
            points,
            color: colours.get(curve),
            dashed: key.startsWith("validation_"),
          });
        }
      }
      charts.get(group.id).update(series);
    }
  }

  let alive = true;
  fillPicker();
  if (!ids.length) curves.append(h("p", {}, "Choose jobs above to overlay their curves."));
  refresh();
  const stop = poll(refresh, REFRESH_MS, () => alive && [...state.values()].some((e) => !e.done));
  return () => {
    alive = false;
    stop();
    for (const chart of charts.values()) chart.destroy();
  };
}

/** "ftjob-s8mhMS" for "ftjob-s8mhMSNUyKOap54ja3zAdeaW": enough to tell runs apart in a legend. */
export function shortId(id) {
  const cut = id.indexOf("-");
  return id.slice(0, cut + 7);
}
