// Batches: each batch's status and request counts (refreshed every few seconds), its output and error
// files to download, and cancel for a live one. A batch is created through the API (`POST /v1/batches`).

import { downloadFile, get, post } from "../api.js";
import { clear, errorBox, h, poll, statusBadge, timeCell } from "../dom.js";

const REFRESH_MS = 2000;
const LIVE = new Set(["validating", "in_progress", "finalizing", "cancelling"]);

export function render(main) {
  const error = h("div", { "aria-live": "polite" });
  const body = h("tbody");
  main.append(
    h("h1", {}, "Batches"),
    h(
      "p.hint",
      {},
      "Batches run a file of /v1/completions or /v1/chat/completions requests (uploaded with purpose ",
      h("code", {}, "batch"),
      ") through the workers. Create one with the API: ",
      h("code", {}, "client.batches.create(input_file_id=…, endpoint=…, completion_window=\"24h\")"),
      ".",
    ),
    error,
    h(
      "div.table-wrap",
      {},
      h(
        "table.batches",
        {},
        h("caption.visually-hidden", {}, "Batches, newest first"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Batch", "Status", "Endpoint", "Model", "Requests", "Created", "Files", "Actions"].map((name) =>
              h("th", { scope: "col" }, name),
            ),
          ),
        ),
        body,
      ),
    ),
  );

  function counts(batch) {
    const { total, completed, failed } = batch.request_counts;
    const bar = h("progress", { max: total || 1, value: completed + failed, "aria-label": `${batch.id} progress` });
    return h(
      "td",
      { "data-label": "Requests" },
      h("span.counts", {}, `${completed} completed, ${failed} failed of ${total}`),
      bar,
    );
  }

  function files(batch) {
    const link = (id, kind) =>
      id
        ? h(
            "button.secondary",
            { type: "button", onclick: () => downloadFile(id, `${batch.id}-${kind}.jsonl`).catch(showError) },
            kind,
          )
        : null;
    return h("td", { "data-label": "Files" }, link(batch.output_file_id, "output"), link(batch.error_file_id, "errors"));
  }

  function actions(batch) {
    if (!LIVE.has(batch.status) || batch.status === "cancelling") return h("td", { "data-label": "Actions" });
    const cancel = async () => {
      try {
        await post(`/v1/batches/${batch.id}/cancel`, {});
        await refresh();
      } catch (err) {
        showError(err);
      }
    };
    return h(
      "td",
      { "data-label": "Actions" },
      h("button.danger", { type: "button", onclick: cancel, "aria-label": `Cancel ${batch.id}` }, "Cancel"),
    );
  }

  function row(batch) {
    return h(
      "tr",
      { "data-batch": batch.id },
      h("td", { "data-label": "Batch" }, h("code", {}, batch.id)),
      h("td", { "data-label": "Status" }, statusBadge(batch.status)),
      h("td", { "data-label": "Endpoint" }, batch.endpoint),
      h("td", { "data-label": "Model" }, h("span.model-name", {}, batch.model || "—")),
      counts(batch),
      h("td", { "data-label": "Created" }, timeCell(batch.created_at)),
      files(batch),
      actions(batch),
    );
  }

  function showError(err) {
    clear(error).append(errorBox(err));
  }

  async function refresh() {
    try {
      const page = await get("/v1/batches?limit=100");
      clear(error);
      clear(body);
      if (!page.data.length) body.append(h("tr", {}, h("td", { colspan: 8 }, "No batches yet.")));
      for (const batch of page.data) body.append(row(batch));
    } catch (err) {
      showError(err);
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
