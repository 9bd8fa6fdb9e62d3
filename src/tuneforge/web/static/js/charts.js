// Training curves drawn with Chart.js (vendored from the npm package, see vendor/). Each chart is a
// <figure> whose canvas carries a text summary for screen readers and `data-points` for tests.

import { h, number } from "./dom.js";

// Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), then Paul Tol's muted
// ones, so that a compare page with many curves repeats none before the thirteenth.
export const PALETTE = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#000000",
  "#882255",
  "#44AA99",
  "#999933",
  "#AA4499",
  "#332288",
  "#661100",
];

/** The curve groups a results-CSV row can feed, in the order the job page shows them. */
export const GROUPS = [
  { id: "loss", title: "Loss", keys: ["training_loss", "validation_loss"], controls: true },
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
  // Reinforcement jobs: the grader's score of the samples, and how far the model moved from its start.
  {
    id: "grader-reward",
    title: "Grader reward",
    keys: [
      "training_reward_mean",
      "validation_reward_mean",
      "training_full_marks",
      "validation_full_marks",
      "training_reward_std",
    ],
  },
  { id: "kl", title: "KL to the starting model", keys: ["training_kl"] },
  {
    id: "sample-length",
    title: "Sampled tokens",
    keys: ["training_sample_length", "validation_sample_length"],
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

/** A figure with an empty line chart; `update(series)` redraws it from [{label, points: [{x,y}]}].
 * With `controls` (the loss charts) it offers a log scale (on by default: after the first steps a
 * falling loss is a flat line on a linear axis) and exponential smoothing, which draws each curve
 * smoothed over a faint copy of its raw points. */
export function lineChart(title, { id, yLabel = "", xLabel = "step", unit = false, controls = false } = {}) {
  const canvas = h("canvas", { role: "img", "aria-label": `${title}: no points yet` });
  const view = { log: controls, smoothing: 0 };
  const toolbar = controls ? chartControls(id || title, view, () => draw()) : null;
  const figure = h(
    "figure.chart",
    { id: id ? `chart-${id}` : null, "data-points": "0" },
    h("figcaption", {}, title),
    toolbar,
    h("div.canvas-wrap", {}, canvas),
  );
  let chart = null;
  let current = [];

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
        plugins: { legend: legendOptions() },
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
    current = series;
    const total = series.reduce((n, s) => n + s.points.length, 0);
    figure.dataset.points = String(total);
    canvas.setAttribute("aria-label", summary(title, series));
    draw();
  }

  function draw() {
    const c = ensure();
    if (!c) return;
    const positive = current.every((s) => s.points.every((p) => p.y > 0));
    const log = view.log && positive; // a log axis cannot show zero or below
    figure.dataset.scale = log ? "logarithmic" : "linear";
    figure.dataset.smoothing = String(view.smoothing);
    c.options.scales.y.type = log ? "logarithmic" : "linear";
    c.options.scales.y.ticks = log ? { callback: logTick } : {};
    c.data.datasets = current.flatMap((s, i) => datasets(s, s.color || PALETTE[i % PALETTE.length], view));
    c.update("none");
  }

  return { figure, update, destroy: () => chart && chart.destroy() };
}

function datasets(s, color, view) {
  const line = {
    label: s.label,
    borderColor: color,
    backgroundColor: color,
    borderDash: s.dashed ? [6, 4] : [],
    borderWidth: 2,
    pointRadius: s.points.length < 30 ? 2 : 0,
    spanGaps: true,
    tension: 0,
  };
  if (!view.smoothing) return [{ ...line, data: s.points }];
  const faint = `${color}40`; // #rrggbb + alpha: the raw points stay visible behind the trend
  return [
    { ...line, data: s.points, raw: true, borderColor: faint, backgroundColor: faint, pointRadius: 0 },
    { ...line, data: smooth(s.points, view.smoothing), pointRadius: 0 },
  ];
}

/** Log-axis labels at 1, 2, … 9 times a power of ten only: Chart.js also labels the ends of the range
 * (3.7, 3.8, 3.9 …), which pile on top of each other. */
function logTick(value) {
  const mantissa = value / 10 ** Math.floor(Math.log10(value) + 1e-9);
  return Math.abs(mantissa - Math.round(mantissa)) < 1e-6 ? String(Number(value.toPrecision(3))) : "";
}

/** Exponential moving average, debiased so the first points are not pulled toward zero. */
export function smooth(points, weight) {
  let average = 0;
  return points.map((p, i) => {
    average = weight * average + (1 - weight) * p.y;
    return { x: p.x, y: average / (1 - weight ** (i + 1)) };
  });
}

// The legend's swatch is a short line drawn like the curve (solid or dashed), not a filled box, which
// turned a dashed border into a blot; the faint raw copies under smoothed curves get no entry.
function legendOptions() {
  return {
    position: "bottom",
    labels: {
      usePointStyle: true,
      pointStyle: "line",
      pointStyleWidth: 28,
      generateLabels(chart) {
        const items = globalThis.Chart.defaults.plugins.legend.labels.generateLabels(chart);
        // with point styles Chart.js reads the swatch from a point, which has no dash: take the line's
        const dataset = (item) => chart.data.datasets[item.datasetIndex];
        return items
          .filter((item) => !dataset(item).raw)
          .map((item) => ({ ...item, lineWidth: 2.5, pointStyle: "line", lineDash: dataset(item).borderDash }));
      },
    },
  };
}

function chartControls(id, view, redraw) {
  const logId = `${id}-log`;
  const smoothId = `${id}-smoothing`;
  const log = h("input", {
    type: "checkbox",
    id: logId,
    checked: view.log,
    onchange: () => {
      view.log = log.checked;
      redraw();
    },
  });
  const smoothing = h(
    "select",
    {
      id: smoothId,
      onchange: () => {
        view.smoothing = Number(smoothing.value);
        redraw();
      },
    },
    h("option", { value: "0" }, "none"),
    h("option", { value: "0.6" }, "light"),
    h("option", { value: "0.9" }, "strong"),
  );
  return h(
    "div.chart-controls",
    {},
    h("span.checkbox", {}, log, h("label", { for: logId }, "Log scale")),
    h("span", {}, h("label", { for: smoothId }, "Smoothing"), " ", smoothing),
  );
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
