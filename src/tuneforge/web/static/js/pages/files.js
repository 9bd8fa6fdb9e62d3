// Files: upload (validated by the API, which names the bad line and field), list, delete, and the
// prepare report of a stored file.

import { del, get, upload } from "../api.js";
import { bytes, clear, errorBox, h, timeCell } from "../dom.js";
import { reportView } from "../report.js";

export function render(main) {
  const input = h("input#upload-file", {
    type: "file",
    name: "file",
    accept: ".jsonl,.json,application/jsonl",
    required: true,
  });
  const status = h("div#upload-status", { "aria-live": "polite" });
  const listError = h("div", { "aria-live": "polite" });
  const body = h("tbody");
  const report = h("section#report", { hidden: true, "aria-labelledby": "report-title", tabindex: "-1" });
  const form = h(
    "form.upload",
    { onsubmit: onUpload },
    h("label", { for: "upload-file" }, "JSONL training or validation file"),
    h(
      "p.hint#upload-hint",
      {},
      'One JSON object per line: {"prompt", "completion"} or {"messages": […]}. It is checked the way training reads it.',
    ),
    input,
    h("div.actions", {}, h("button", { type: "submit" }, "Upload")),
  );
  input.setAttribute("aria-describedby", "upload-hint");
  main.append(
    h("h1", {}, "Files"),
    h("section", { "aria-labelledby": "upload-title" }, h("h2#upload-title", {}, "Upload"), form, status),
    h(
      "section",
      { "aria-labelledby": "files-title" },
      h("h2#files-title", {}, "Stored files"),
      listError,
      h(
        "div.table-wrap",
        {},
        h(
          "table.files",
          {},
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["File", "Name", "Purpose", "Size", "Created", "Actions"].map((c) =>
                h("th", { scope: "col" }, c),
              ),
            ),
          ),
          body,
        ),
      ),
    ),
    report,
  );

  async function onUpload(event) {
    event.preventDefault();
    const file = input.files[0];
    if (!file) return;
    const button = form.querySelector("button");
    button.disabled = true;
    clear(status).append(h("p", {}, `Uploading ${file.name}…`));
    try {
      const stored = await upload(file);
      clear(status).append(
        h("p.success", { role: "status" }, `Uploaded ${stored.filename} as `, h("code", {}, stored.id), "."),
      );
      form.reset();
      await refresh();
    } catch (err) {
      clear(status).append(errorBox(err));
    } finally {
      button.disabled = false;
    }
  }

  async function onDelete(file) {
    if (!confirm(`Delete ${file.filename} (${file.id})?`)) return;
    try {
      await del(`/v1/files/${file.id}`);
      clear(listError);
      await refresh();
    } catch (err) {
      clear(listError).append(errorBox(err));
    }
  }

  async function onReport(file) {
    report.hidden = false;
    clear(report).append(
      h("h2#report-title", {}, `Prepare report: ${file.filename}`),
      h("p", {}, "Analysing…"),
    );
    report.focus();
    try {
      const data = await get(`/v1/files/${file.id}/report`);
      clear(report).append(h("h2#report-title", {}, `Prepare report: ${file.filename}`), reportView(data));
    } catch (err) {
      clear(report).append(h("h2#report-title", {}, `Prepare report: ${file.filename}`), errorBox(err));
    }
  }

  function row(file) {
    return h(
      "tr",
      { "data-file": file.id },
      h("td", { "data-label": "File" }, h("code", {}, file.id)),
      h("td", { "data-label": "Name" }, file.filename),
      h("td", { "data-label": "Purpose" }, file.purpose),
      h("td", { "data-label": "Size" }, bytes(file.bytes)),
      h("td", { "data-label": "Created" }, timeCell(file.created_at)),
      h(
        "td.actions",
        { "data-label": "Actions" },
        file.purpose === "fine-tune"
          ? h(
              "button.secondary",
              {
                type: "button",
                onclick: () => onReport(file),
                "aria-label": `Prepare report for ${file.filename}`,
              },
              "Report",
            )
          : null,
        h(
          "button.danger",
          { type: "button", onclick: () => onDelete(file), "aria-label": `Delete ${file.filename}` },
          "Delete",
        ),
      ),
    );
  }

  async function refresh() {
    try {
      const list = await get("/v1/files");
      const files = list.data.slice().sort((a, b) => b.created_at - a.created_at);
      clear(body).append(
        ...(files.length ? files.map(row) : [h("tr", {}, h("td", { colspan: 6 }, "No files yet."))]),
      );
    } catch (err) {
      clear(listError).append(errorBox(err));
    }
  }

  refresh();
  return null;
}
