// New fine-tune: the create options of both APIs, with the values "auto" will resolve to.

import { fileText, get, post } from "../api.js";
import { clear, errorBox, h, modelOption } from "../dom.js";

// Mirrors tuneforge.training.hyperparameters (docs/training.md) so the form can show what "auto" means
// before the job starts; the job page shows the values the recipe actually chose.
const BUILTIN = new Set(["tiny", "tiny-gpt2"]);
const MIN_BATCH_BUILTIN = 8;
const MAX_BATCH = 256;
const MIN_STEPS = 400; // training/hyperparameters.py: MIN_STEPS
const MIN_STEPS_GENERATION = 1000; // and MIN_STEPS_GENERATION
const MAX_CLASSES = 50;
const MAX_AUTO_EPOCHS = 25;
const MAX_COUNTED_BYTES = 20 * 1024 * 1024; // the form counts examples by downloading the file

/** hyperparameters.looks_like_classifier: few distinct completions, each used again and again. */
export function looksLikeClassifier(completions) {
  const distinct = new Set(completions).size;
  return completions.length > 0 && distinct <= Math.max(2, Math.min(MAX_CLASSES, Math.floor(completions.length / 4)));
}

/** formats.final_completions, from the file's JSONL text: each completion or chat's last assistant turn. */
export function finalCompletions(text) {
  const answers = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let row;
    try {
      row = JSON.parse(line);
    } catch {
      continue; // the job's validation names bad lines; the preview only estimates
    }
    if (typeof row.completion === "string") answers.push(row.completion);
    else if (Array.isArray(row.messages)) {
      const replies = row.messages.filter((m) => m && m.role === "assistant").map((m) => m.content);
      if (replies.length) answers.push(replies[replies.length - 1]);
    }
  }
  return answers;
}

export function autoValues(nExamples, model, classifier = true) {
  const builtin = BUILTIN.has(model);
  let batch = Math.min(MAX_BATCH, Math.max(1, roundHalfEven(0.002 * nExamples)));
  if (builtin) batch = Math.max(batch, Math.min(MIN_BATCH_BUILTIN, nExamples));
  const multiplier = batch < 8 ? 0.05 : batch < 32 ? 0.1 : 0.2;
  let epochs = 4;
  if (builtin) {
    const stepsPerEpoch = Math.max(1, Math.ceil(nExamples / batch));
    const minSteps = classifier ? MIN_STEPS : MIN_STEPS_GENERATION;
    epochs = Math.max(4, Math.min(MAX_AUTO_EPOCHS, Math.ceil(minSteps / stepsPerEpoch)));
  }
  return { n_epochs: epochs, batch_size: batch, learning_rate_multiplier: multiplier };
}

/** Python's round(): halves go to the even neighbour (Math.round sends them up). */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function field(id, label, control, hint) {
  control.id = id;
  if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
  return h(
    "div.field",
    {},
    h("label", { for: id }, label),
    control,
    hint ? h("p.hint", { id: `${id}-hint` }, hint) : null,
  );
}

export function render(main) {
  const el = {
    api: h(
      "select",
      { name: "api" },
      h("option", { value: "jobs" }, "Fine-tuning job (/v1/fine_tuning/jobs)"),
      h("option", { value: "legacy" }, "Legacy fine-tune (/v1/fine-tunes)"),
    ),
    model: h("select", { name: "model", required: true }),
    training: h("select", { name: "training_file", required: true }),
    validation: h("select", { name: "validation_file" }),
    epochs: h("input", { type: "number", name: "n_epochs", min: 1, max: 50, step: 1, placeholder: "auto" }),
    batch: h("input", { type: "number", name: "batch_size", min: 1, max: 256, step: 1, placeholder: "auto" }),
    lr: h("input", {
      type: "number",
      name: "learning_rate_multiplier",
      min: 0.0001,
      max: 100,
      step: "any",
      placeholder: "auto",
    }),
    plw: h("input", {
      type: "number",
      name: "prompt_loss_weight",
      min: 0,
      max: 1,
      step: "any",
      placeholder: "0.01",
    }),
    suffix: h("input", {
      type: "text",
      name: "suffix",
      maxlength: 40,
      pattern: "[A-Za-z0-9._\\-]*",
      autocomplete: "off",
    }),
    seed: h("input", { type: "number", name: "seed", min: 0, step: 1, placeholder: "random" }),
    cls: h("input", { type: "checkbox", name: "compute_classification_metrics" }),
    nClasses: h("input", { type: "number", name: "classification_n_classes", min: 2, step: 1 }),
    positive: h("input", { type: "text", name: "classification_positive_class", autocomplete: "off" }),
    betas: h("input", {
      type: "text",
      name: "classification_betas",
      placeholder: "e.g. 0.5, 1, 2",
      autocomplete: "off",
    }),
  };
  const resolved = h("output#resolved", {
    for: "f-training f-model f-epochs f-batch f-lr",
    "aria-live": "polite",
  });
  const error = h("div", { "aria-live": "polite" });
  const legacyOnly = h(
    "fieldset#legacy-options",
    {},
    h("legend", {}, "Legacy options (/v1/fine-tunes only)"),
    field("f-plw", "Prompt loss weight", el.plw),
    h(
      "div.field.checkbox",
      {},
      el.cls,
      h("label", { for: "f-cls" }, "Compute classification metrics (needs a validation file)"),
    ),
    field(
      "f-nclasses",
      "Number of classes",
      el.nClasses,
      "For multiclass; 2 with a positive class for binary.",
    ),
    field(
      "f-positive",
      "Positive class",
      el.positive,
      'The binary task\'s positive completion, e.g. " positive".',
    ),
    field("f-betas", "F-beta values", el.betas),
  );
  el.cls.id = "f-cls";
  const form = h(
    "form.new-job",
    { onsubmit: onSubmit },
    field("f-api", "API", el.api),
    field("f-model", "Base model", el.model),
    field("f-training", "Training file", el.training),
    field("f-validation", "Validation file (optional)", el.validation),
    h(
      "fieldset",
      {},
      h("legend", {}, "Hyperparameters (empty = auto)"),
      h(
        "div.grid-3",
        {},
        field("f-epochs", "Epochs", el.epochs),
        field("f-batch", "Batch size", el.batch),
        field("f-lr", "Learning-rate multiplier", el.lr),
      ),
      h("p.hint", {}, "Auto resolves to: ", resolved),
    ),
    field(
      "f-suffix",
      "Suffix (optional)",
      el.suffix,
      "Letters, digits, '-', '_' and '.'; becomes part of the model name.",
    ),
    field("f-seed", "Seed (optional)", el.seed),
    legacyOnly,
    h("div.actions", {}, h("button", { type: "submit" }, "Create fine-tune")),
  );
  main.append(h("h1", {}, "New fine-tune"), error, form);

  const fileFacts = new Map();
  const fileSizes = new Map();
  async function showResolved() {
    const fileId = el.training.value;
    if (!fileId) {
      resolved.value = "choose a training file";
      return;
    }
    if ((fileSizes.get(fileId) || 0) > MAX_COUNTED_BYTES) {
      resolved.value = "chosen when the job starts (the file is too large to count here)";
      return;
    }
    if (!fileFacts.has(fileId)) {
      try {
        const text = await fileText(fileId);
        fileFacts.set(fileId, {
          n: text.split("\n").filter((line) => line.trim()).length,
          classifier: looksLikeClassifier(finalCompletions(text)),
        });
      } catch (err) {
        resolved.value = err.message;
        return;
      }
    }
    const { n, classifier } = fileFacts.get(fileId);
    const auto = autoValues(n, el.model.value, classifier);
    const shown = (name, input) => `${name}=${input.value || auto[name]}${input.value ? "" : " (auto)"}`;
    resolved.value = `${shown("n_epochs", el.epochs)}, ${shown("batch_size", el.batch)}, ${shown("learning_rate_multiplier", el.lr)} for ${n} examples`;
  }
  function syncApi() {
    legacyOnly.hidden = el.api.value !== "legacy";
  }
  for (const control of [el.training, el.model, el.epochs, el.batch, el.lr])
    control.addEventListener("input", showResolved);
  el.api.addEventListener("change", syncApi);
  syncApi();

  async function load() {
    try {
      const [models, files] = await Promise.all([get("/v1/models"), get("/v1/files")]);
      el.model.append(...models.data.map(modelOption));
      const usable = files.data
        .filter((f) => f.purpose === "fine-tune")
        .sort((a, b) => b.created_at - a.created_at);
      for (const f of usable) fileSizes.set(f.id, f.bytes);
      const option = (f) => h("option", { value: f.id }, `${f.filename} (${f.id})`);
      el.training.append(...usable.map(option));
      el.validation.append(h("option", { value: "" }, "none"), ...usable.map(option));
      if (!usable.length)
        clear(error).append(
          h("p.hint", {}, "No files yet: ", h("a", { href: "#/files" }, "upload one"), " first."),
        );
      await showResolved();
    } catch (err) {
      clear(error).append(errorBox(err));
    }
  }

  async function onSubmit(event) {
    event.preventDefault();
    const num = (input) => (input.value === "" ? "auto" : Number(input.value));
    const body = { model: el.model.value, training_file: el.training.value };
    if (el.validation.value) body.validation_file = el.validation.value;
    if (el.suffix.value) body.suffix = el.suffix.value;
    if (el.seed.value !== "") body.seed = Number(el.seed.value);
    const hp = { n_epochs: num(el.epochs), batch_size: num(el.batch), learning_rate_multiplier: num(el.lr) };
    let path = "/v1/fine_tuning/jobs";
    if (el.api.value === "legacy") {
      path = "/v1/fine-tunes";
      for (const [key, value] of Object.entries(hp)) if (value !== "auto") body[key] = value;
      if (el.plw.value !== "") body.prompt_loss_weight = Number(el.plw.value);
      if (el.cls.checked) {
        body.compute_classification_metrics = true;
        if (el.nClasses.value) body.classification_n_classes = Number(el.nClasses.value);
        if (el.positive.value) body.classification_positive_class = el.positive.value;
        if (el.betas.value.trim())
          body.classification_betas = el.betas.value.split(",").map((b) => Number(b.trim()));
      }
    } else {
      body.method = { type: "supervised", supervised: { hyperparameters: hp } };
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await post(path, body);
      location.hash = `#/jobs/${created.id}`;
    } catch (err) {
      clear(error).append(errorBox(err));
      error.querySelector("[role=alert]")?.focus?.();
    } finally {
      button.disabled = false;
    }
  }

  load();
  return null;
}
