// Playground: one prompt to one or two models through /v1/completions, or, in chat mode (for models
// trained on messages), a conversation through /v1/chat/completions; each generated token is shown with
// its top alternatives as probability bars (how a classifier trained the guide's way is read).

import { fetchJobEvents, get, getJob, listAllJobs, post } from "../api.js";
import { clear, errorBox, h, modelOption } from "../dom.js";
import { trainingFacts } from "../progress.js";

export function render(main, { query }) {
  const el = {
    modelA: h("select#pg-model-a", { name: "model" }),
    modelB: h("select#pg-model-b", { name: "compare_model" }, h("option", { value: "" }, "none")),
    mode: h(
      "select#pg-mode",
      { name: "mode" },
      h("option", { value: "completion" }, "Completion: the prompt as raw text"),
      h("option", { value: "chat" }, "Chat: messages, with the model's chat template"),
    ),
    system: h("textarea#pg-system", { name: "system", rows: 2 }),
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
  const promptLabel = label("pg-prompt", "Prompt");
  const systemField = h("div.field", { hidden: true }, label("pg-system", "System message (optional)"), el.system);
  const submit = h("button", { type: "submit" }, "Complete");
  const form = h(
    "form.playground",
    { onsubmit: onSubmit },
    h(
      "div.grid-2",
      {},
      h("div.field", {}, label("pg-model-a", "Model"), el.modelA),
      h("div.field", {}, label("pg-model-b", "Side by side with (optional)"), el.modelB),
    ),
    h("div.field", {}, label("pg-mode", "Mode"), el.mode),
    systemField,
    h("div.field", {}, promptLabel, el.prompt),
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
    h("div.actions", {}, submit),
  );
  main.append(h("h1", {}, "Playground"), form, error, results);

  async function load() {
    try {
      const models = (await get("/v1/models")).data;
      // fine-tuned models first: they are what people come here to try
      models.sort(
        (a, b) => (a.owned_by === "tuneforge") - (b.owned_by === "tuneforge") || b.created - a.created,
      );
      el.modelA.append(...models.map(modelOption));
      el.modelB.append(...models.map(modelOption));
      const wanted = query.get("model");
      if (wanted) el.modelA.value = wanted;
      if (query.get("compare")) el.modelB.value = query.get("compare");
      if (query.get("mode") === "chat") setMode("chat");
      else await suggestMode();
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  let modeChosen = query.has("mode"); // once the user (or the link) picks a mode, it stays
  function setMode(mode) {
    el.mode.value = mode;
    const chat = mode === "chat";
    systemField.hidden = !chat;
    promptLabel.textContent = chat ? "User message" : "Prompt";
    submit.textContent = chat ? "Send" : "Complete";
  }
  el.mode.addEventListener("change", () => {
    modeChosen = true;
    setMode(el.mode.value);
  });
  el.modelA.addEventListener("change", () => suggestMode().catch(() => {}));

  // A model fine-tuned on chat messages answers best through its chat template: its job's events say
  // which data format it was trained on.
  async function suggestMode() {
    if (modeChosen) return;
    const format = await trainedFormat(el.modelA.value);
    if (!modeChosen) setMode(format === "chat" ? "chat" : "completion");
  }

  async function onSubmit(event) {
    event.preventDefault();
    const chat = el.mode.value === "chat";
    const body = {
      max_tokens: Number(el.maxTokens.value || 16),
      temperature: Number(el.temperature.value || 0),
    };
    if (chat) body.messages = messagesOf(el.system.value, el.prompt.value);
    else body.prompt = el.prompt.value;
    const stops = parseStop(el.stop.value);
    if (stops.length) body.stop = stops;
    if (el.logprobs.value !== "") {
      if (chat) Object.assign(body, { logprobs: true, top_logprobs: Number(el.logprobs.value) });
      else body.logprobs = Number(el.logprobs.value);
    }
    const models = [el.modelA.value, el.modelB.value].filter(Boolean);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clear(error);
    clear(results).append(h("p", { role: "status" }, "Generating…"));
    const panes = await Promise.all(models.map((model) => completionPane(model, body, chat)));
    clear(results).append(...panes);
    results.classList.toggle("side-by-side", panes.length > 1);
    button.disabled = false;
  }

  load();
  return null;
}

export function messagesOf(system, user) {
  const messages = system.trim() ? [{ role: "system", content: system }] : [];
  return [...messages, { role: "user", content: user }];
}

const formats = new Map(); // model -> data format its job trained on ("chat", "prompt_completion", …)

async function trainedFormat(model) {
  if (!model || !model.includes(":")) return null; // a base model: no job trained it
  if (formats.has(model)) return formats.get(model);
  const job = (await listAllJobs()).find((j) => j.fine_tuned_model && model.startsWith(j.fine_tuned_model));
  let format = null;
  if (job) {
    const events = job.api === "fine-tunes" ? (await getJob(job.id)).events : await jobEvents(job.id);
    format = trainingFacts(events).dataFormat;
  }
  formats.set(model, format);
  return format;
}

async function jobEvents(id) {
  const log = { ids: new Set(), events: [] };
  await fetchJobEvents(id, log);
  return log.events;
}

export function parseStop(text) {
  return text
    .split(",")
    .map((s) => s.replace(/\\n/g, "\n").replace(/\\t/g, "\t"))
    .filter((s) => s.length > 0)
    .slice(0, 4);
}

async function completionPane(model, body, chat) {
  const pane = h(
    "section.completion",
    { "aria-label": `${chat ? "Reply" : "Completion"} from ${model}` },
    h("h2", {}, h("code", {}, model)),
  );
  try {
    const response = await post(chat ? "/v1/chat/completions" : "/v1/completions", { ...body, model });
    const choice = chat ? fromChat(response.choices[0]) : response.choices[0];
    const echo = chat ? body.messages[body.messages.length - 1].content : body.prompt;
    pane.append(
      h(
        "p.completion-text",
        { tabindex: 0 }, // it scrolls when long: reachable by keyboard
        h("span.prompt-echo", {}, echo),
        chat ? h("br") : null,
        h("mark", {}, choice.text),
      ),
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

/** A chat choice in the completions shape the pane draws: text, and logprobs as tokens + top maps. */
export function fromChat(choice) {
  const content = choice.logprobs?.content;
  const logprobs = content
    ? {
        tokens: content.map((t) => t.token),
        token_logprobs: content.map((t) => t.logprob),
        top_logprobs: content.map((t) => Object.fromEntries((t.top_logprobs || []).map((a) => [a.token, a.logprob]))),
      }
    : null;
  return { text: choice.message?.content ?? "", finish_reason: choice.finish_reason, logprobs };
}

function tokensView(logprobs) {
  // A bounded, scrollable grid: 30 tokens with their bars fit in the pane instead of thousands of pixels.
  const list = h("ol.tokens", {
    "aria-label": "Generated tokens with their top alternatives",
    tabindex: 0, // scrollable: reachable by keyboard
  });
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
