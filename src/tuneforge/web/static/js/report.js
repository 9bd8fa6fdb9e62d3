// Renders a prepare report (the JSON of `tuneforge prepare`, served by GET /v1/files/{id}/report).

import { h, number } from "./dom.js";

export function reportView(data) {
  const report = data.report || data;
  const parts = [
    h(
      "dl.details",
      {},
      pair("Format", report.format),
      pair("Task", report.task),
      pair("Examples", `${report.n_examples} of ${report.n_read} read`),
      pair(
        "Tokens counted with",
        `${data.model ?? report.checks?.model ?? "—"} (context ${report.context_length} tokens)`,
      ),
      affix("Separator", report.checks?.separator),
      affix("Stop sequence", report.checks?.stop),
    ),
  ];
  if (report.classification) parts.push(classesView(report.classification));
  if (report.tokens && Object.keys(report.tokens).length) parts.push(tokensView(report.tokens));
  if (report.findings?.length) {
    parts.push(
      h("h3", {}, "Findings"),
      h(
        "ul.findings",
        {},
        report.findings.map((f) => h("li", {}, f)),
      ),
    );
  }
  if (report.fixes?.length) {
    parts.push(
      h("h3", {}, "Suggested fixes"),
      h(
        "ul.findings",
        {},
        report.fixes.map((f) => h("li", {}, h("span.tag", {}, f.kind), " ", f.message)),
      ),
    );
  }
  return h("div.report", {}, parts);
}

function pair(name, value) {
  return [h("dt", {}, name), h("dd", {}, value ?? "—")];
}

/** The affix every example already shares, and the one prepare suggests adding (null: none needed). */
function affix(name, check) {
  if (!check) return null;
  const shared = check.common ? h("code", {}, JSON.stringify(check.common)) : "none";
  // a shared ending that is punctuation, or that also occurs inside examples, marks nothing
  const why = { punctuation: "only punctuation or spaces", repeated: "also occurs inside examples" };
  const rejected = check.common && check.problem ? ` (not usable: ${why[check.problem] ?? check.problem})` : "";
  const suggested = check.suggested
    ? ["; suggested ", h("code.suggested", {}, JSON.stringify(check.suggested))]
    : "";
  return pair(name, h("span", {}, "shared: ", shared, rejected, suggested));
}

function classesView(info) {
  const total = Object.values(info.classes).reduce((a, b) => a + b, 0) || 1;
  const largest = Math.max(...Object.values(info.classes), 1);
  return h(
    "div",
    {},
    h("h3", {}, `Classes (balance ${number(info.balance, 2)})`),
    h(
      "ul.bars",
      { "aria-label": "Examples per class" },
      Object.entries(info.classes).map(([label, count]) =>
        h(
          "li",
          {},
          h("span.bar-label", {}, h("code", {}, JSON.stringify(label))),
          h(
            "span.bar",
            { role: "img", "aria-label": `${count} examples (${Math.round((100 * count) / total)}%)` },
            h("span.bar-fill", { style: `width:${(100 * count) / largest}%` }),
          ),
          h("span.bar-value", {}, String(count)),
        ),
      ),
    ),
    h(
      "p.hint",
      {},
      info.single_token ? "Every label is one token" : "Some labels take several tokens",
      info.first_tokens_distinct
        ? "; their first tokens differ, so max_tokens=1 and logprobs classify."
        : ".",
      info.positive_class ? ` Positive class: ${JSON.stringify(info.positive_class)}.` : "",
    ),
  );
}

function tokensView(tokens) {
  return h(
    "div",
    {},
    h("h3", {}, "Token counts"),
    h(
      "table.kv",
      {},
      h(
        "tbody",
        {},
        Object.entries(tokens).map(([k, v]) =>
          h(
            "tr",
            {},
            h("th", { scope: "row" }, k),
            h("td", {}, typeof v === "object" ? JSON.stringify(v) : number(v, 2)),
          ),
        ),
      ),
    ),
  );
}
