// Jobs: fine-tuning jobs and legacy fine-tunes in one table, refreshed every few seconds.

import { listAllJobs } from "../api.js";
import { clear, errorBox, h, poll, statusBadge, timeCell } from "../dom.js";

const REFRESH_MS = 2000;

export function render(main) {
  const selected = new Set();
  const error = h("div", { "aria-live": "polite" });
  const body = h("tbody");
  const compareButton = h(
    "button",
    { type: "button", disabled: true, onclick: openCompare },
    "Compare curves",
  );
  const table = h(
    "table.jobs",
    {},
    h("caption.visually-hidden", {}, "Fine-tuning jobs, newest first"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, h("span.visually-hidden", {}, "Select to compare")),
        ["Job", "Status", "Base model", "Fine-tuned model", "Created", "Finished"].map((name) =>
          h("th", { scope: "col" }, name),
        ),
      ),
    ),
    body,
  );
  main.append(
    h(
      "div.page-head",
      {},
      h("h1", {}, "Jobs"),
      h("div.actions", {}, compareButton, h("a.button", { href: "#/new" }, "New fine-tune")),
    ),
    error,
    h("div.table-wrap", {}, table),
  );

  function openCompare() {
    location.hash = `#/compare?ids=${[...selected].join(",")}`;
  }

  function row(job) {
    const box = h("input", {
      type: "checkbox",
      checked: selected.has(job.id),
      "aria-label": `Select ${job.id} to compare`,
      onchange: (event) => {
        if (event.target.checked) selected.add(job.id);
        else selected.delete(job.id);
        compareButton.disabled = selected.size < 1;
      },
    });
    return h(
      "tr",
      { "data-job": job.id },
      h("td", { "data-label": "Compare" }, box),
      h(
        "td",
        { "data-label": "Job" },
        h("a", { href: `#/jobs/${job.id}` }, job.id),
        job.api === "fine-tunes" ? h("span.tag", {}, "legacy") : null,
      ),
      h("td", { "data-label": "Status" }, statusBadge(job.status)),
      h("td", { "data-label": "Base model" }, job.model),
      h("td", { "data-label": "Fine-tuned model" }, h("span.model-name", {}, job.fine_tuned_model || "—")),
      h("td", { "data-label": "Created" }, timeCell(job.created_at)),
      h("td", { "data-label": "Finished" }, timeCell(job.finished_at)),
    );
  }

  async function refresh() {
    try {
      const all = await listAllJobs();
      clear(error);
      clear(body);
      if (!all.length) {
        body.append(
          h(
            "tr",
            {},
            h("td", { colspan: 7 }, "No jobs yet. ", h("a", { href: "#/new" }, "Start a fine-tune")),
          ),
        );
      }
      for (const job of all) body.append(row(job));
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  let alive = true;
  refresh();
  const stop = poll(refresh, REFRESH_MS, () => alive);
  return () => {
    alive = false;
    stop();
  };
}
