// Training curves drawn with Chart.js (vendored from the npm package, see vendor/). Each chart is a
// <figure> whose canvas carries a text summary for screen readers and `data-points` for tests.

import { h, number } from "./dom.js";

// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

/** The curve groups a results-CSV row can feed, in the order the job page shows them. */
export const GROUPS = [
  { id: "loss", title: "Loss", keys: ["training_loss", "validation_loss"] },
  {
    id: "token-accuracy",
    title: "Token accuracy",
    keys: ["training_token_accuracy", "validation_token_accuracy"],
    unit: true,
  },
  {
    id: "sequence-accuracy",
    title: "Sequence accuracy",
    keys: ["training_sequence_accuracy", "validation_sequence_accuracy"],
    unit: true,
  },
  { id: "classification", title: "Classification metrics", prefix: "classification/", unit: true },
  // Preference (DPO) jobs: how often the preferred output wins, and by how much.
  {
    id: "reward-accuracy",
    title: "Reward accuracy",
    keys: ["training_reward_accuracy", "validation_reward_accuracy"],
    unit: true,
  },
  {
    id: "rewards",
    title: "Rewards",
    keys: [
      "training_reward_margin",
      "validation_reward_margin",
      "training_chosen_reward",
      "training_rejected_reward",
    ],
  },
];

export function keysOf(group, rows) {
  if (group.keys) return group.keys.filter((key) => rows.some((row) => typeof row[key] === "number"));
  const keys = new Set();
  for (const row of rows) {
    for (const key of Object.keys(row)) if (key.startsWith(group.prefix)) keys.add(key);
  }
  return [...keys].sort();
}

/** A figure with an empty line chart; `update(series)` redraws it from [{label, points: [{x,y}]}]. */
export function lineChart(title, { id, yLabel = "", xLabel = "step", unit = false } = {}) {
  const canvas = h("canvas", { role: "img", "aria-label": `${title}: no points yet` });
  const figure = h(
    "figure.chart",
    { id: id ? `chart-${id}` : null, "data-points": "0" },
    h("figcaption", {}, title),
    h("div.canvas-wrap", {}, canvas),
  );
  let chart = null;

  function ensure() {
    if (chart || !globalThis.Chart) return chart;
    chart = new globalThis.Chart(canvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 18 } } },
        scales: {
          x: { type: "linear", ticks: { precision: 0 }, title: { display: true, text: xLabel } },
          // accuracies and classification scores live in [0, 1]: a fixed axis keeps runs comparable
          y: unit
            ? { min: 0, max: 1, title: { display: Boolean(yLabel), text: yLabel } }
            : { title: { display: Boolean(yLabel), text: yLabel } },
        },
      },
    });
    return chart;
  }

  function update(series) {
    const c = ensure();
    const total = series.reduce((n, s) => n + s.points.length, 0);
    figure.dataset.points = String(total);
    canvas.setAttribute("aria-label", summary(title, series));
    if (!c) return;
    c.data.datasets = series.map((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      return {
        label: s.label,
        data: s.points,
        borderColor: color,
        backgroundColor: color,
        borderDash: s.dashed ? [6, 4] : [],
        borderWidth: 2,
        pointRadius: s.points.length < 30 ? 2 : 0,
        spanGaps: true,
        tension: 0,
      };
    });
    c.update("none");
  }

  return { figure, update, destroy: () => chart && chart.destroy() };
}

function summary(title, series) {
  const parts = series
    .filter((s) => s.points.length)
    .map((s) => {
      const last = s.points[s.points.length - 1];
      return `${s.label} ${number(last.y)} at step ${last.x} (${s.points.length} points)`;
    });
  return parts.length ? `${title}: ${parts.join("; ")}` : `${title}: no points yet`;
}

/** Points of `key` from metric rows ({step, ...}). */
export function pointsOf(rows, key) {
  return rows
    .filter((row) => typeof row[key] === "number" && Number.isFinite(row[key]))
    .map((row) => ({ x: row.step, y: row[key] }));
}
