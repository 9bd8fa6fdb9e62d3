// Playground: one prompt to one or two models through /v1/completions; each generated token is shown
// with its top alternatives as probability bars (how a classifier trained the guide's way is read).

import { get, post } from "../api.js";
import { clear, errorBox, h } from "../dom.js";

export function render(main, { query }) {
  const el = {
    modelA: h("select#pg-model-a", { name: "model" }),
    modelB: h("select#pg-model-b", { name: "compare_model" }, h("option", { value: "" }, "none")),
    prompt: h("textarea#pg-prompt", { name: "prompt", rows: 4, required: true }),
    maxTokens: h("input#pg-max-tokens", {
      type: "number",
      name: "max_tokens",
      min: 1,
      max: 2048,
      value: "16",
    }),
    temperature: h("input#pg-temperature", {
      type: "number",
      name: "temperature",
      min: 0,
      max: 2,
      step: "any",
      value: "0",
    }),
    stop: h("input#pg-stop", {
      type: "text",
      name: "stop",
      autocomplete: "off",
      placeholder: "e.g. \\n or END",
    }),
    logprobs: h("input#pg-logprobs", { type: "number", name: "logprobs", min: 0, max: 5, value: "5" }),
  };
  const error = h("div", { "aria-live": "polite" });
  const results = h("div#pg-results.results");
  const label = (id, text) => h("label", { for: id }, text);
  const form = h(
    "form.playground",
    { onsubmit: onSubmit },
    h(
      "div.grid-2",
      {},
      h("div.field", {}, label("pg-model-a", "Model"), el.modelA),
      h("div.field", {}, label("pg-model-b", "Side by side with (optional)"), el.modelB),
    ),
    h("div.field", {}, label("pg-prompt", "Prompt"), el.prompt),
    h(
      "div.grid-4",
      {},
      h("div.field", {}, label("pg-max-tokens", "Max tokens"), el.maxTokens),
      h("div.field", {}, label("pg-temperature", "Temperature"), el.temperature),
      h(
        "div.field",
        {},
        label("pg-stop", "Stop"),
        el.stop,
        h("p.hint", {}, "Comma-separated; \\n is a newline."),
      ),
      h("div.field", {}, label("pg-logprobs", "Logprobs (top-N)"), el.logprobs),
    ),
    h("div.actions", {}, h("button", { type: "submit" }, "Complete")),
  );
  main.append(h("h1", {}, "Playground"), form, error, results);

  async function load() {
    try {
      const models = (await get("/v1/models")).data;
      // fine-tuned models first: they are what people come here to try
      models.sort(
        (a, b) => (a.owned_by === "tuneforge") - (b.owned_by === "tuneforge") || b.created - a.created,
      );
      el.modelA.append(...models.map((m) => h("option", { value: m.id }, m.id)));
      el.modelB.append(...models.map((m) => h("option", { value: m.id }, m.id)));
      const wanted = query.get("model");
      if (wanted) el.modelA.value = wanted;
      if (query.get("compare")) el.modelB.value = query.get("compare");
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  async function onSubmit(event) {
    event.preventDefault();
    const body = {
      prompt: el.prompt.value,
      max_tokens: Number(el.maxTokens.value || 16),
      temperature: Number(el.temperature.value || 0),
    };
    const stops = parseStop(el.stop.value);
    if (stops.length) body.stop = stops;
    if (el.logprobs.value !== "") body.logprobs = Number(el.logprobs.value);
    const models = [el.modelA.value, el.modelB.value].filter(Boolean);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(error);
    clear(results).append(h("p", { role: "status" }, "Generating…"));
    const panes = await Promise.all(models.map((model) => completionPane(model, body)));
    clear(results).append(...panes);
    results.classList.toggle("side-by-side", panes.length > 1);
    button.disabled = false;
  }

  load();
  return null;
}

export function parseStop(text) {
  return text
    .split(",")
    .map((s) => s.replace(/\\n/g, "\n").replace(/\\t/g, "\t"))
    .filter((s) => s.length > 0)
    .slice(0, 4);
}

async function completionPane(model, body) {
  const pane = h(
    "section.completion",
    { "aria-label": `Completion from ${model}` },
    h("h2", {}, h("code", {}, model)),
  );
  try {
    const response = await post("/v1/completions", { ...body, model });
    const choice = response.choices[0];
    pane.append(
      h("p.completion-text", {}, h("span.prompt-echo", {}, body.prompt), h("mark", {}, choice.text)),
      h(
        "p.hint",
        {},
        `finish_reason: ${choice.finish_reason}`,
        response.usage ? ` · ${response.usage.completion_tokens} tokens` : "",
      ),
    );
    if (choice.logprobs) pane.append(tokensView(choice.logprobs));
  } catch (err) {
    pane.append(errorBox(err));
  }
  return pane;
}

function tokensView(logprobs) {
  const list = h("ol.tokens", { "aria-label": "Generated tokens with their top alternatives" });
  logprobs.tokens.forEach((token, i) => {
    const top = Object.entries(logprobs.top_logprobs?.[i] || {})
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5);
    const chosen = logprobs.token_logprobs?.[i];
    list.append(
      h(
        "li.token",
        {},
        h(
          "h3",
          {},
          "Token ",
          i + 1,
          ": ",
          h("code", {}, visible(token)),
          chosen != null ? ` (p=${pct(chosen)})` : "",
        ),
        h(
          "ul.bars",
          { "aria-label": `Top ${top.length} alternatives for token ${i + 1}` },
          top.map(([alt, lp]) =>
            h(
              `li${alt === token ? ".chosen" : ""}`,
              {},
              h("span.bar-label", {}, h("code", {}, visible(alt))),
              h(
                "span.bar",
                {
                  role: "meter",
                  "aria-valuemin": 0,
                  "aria-valuemax": 100,
                  "aria-valuenow": (100 * Math.exp(lp)).toFixed(1),
                  "aria-label": `${visible(alt)} probability`,
                },
                h("span.bar-fill", { style: `width:${(100 * Math.exp(lp)).toFixed(1)}%` }),
              ),
              h("span.bar-value", {}, pct(lp)),
            ),
          ),
        ),
      ),
    );
  });
  return list;
}

function pct(logprob) {
  return `${(100 * Math.exp(logprob)).toFixed(1)}%`;
}

/** Whitespace made visible, as the prepare report shows it. */
function visible(token) {
  return JSON.stringify(token).slice(1, -1).replace(/ /g, "␣");
}
