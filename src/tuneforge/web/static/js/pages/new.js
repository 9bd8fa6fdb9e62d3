// New fine-tune: the create options of both APIs, with the values "auto" will resolve to.

import { get, post } from "../api.js";
import { bytes, clear, errorBox, h, modelOption } from "../dom.js";

// What "auto" resolves to, and what the run will cost, come from the server's dry run of the same body
// (POST /v1/fine_tuning/jobs/preflight): it resolves the spec exactly as the job will.
const PREFLIGHT_DELAY_MS = 300; // typing a number asks once, when the typing pauses

/** The jobs API's body for the form's choices: the legacy form's hyperparameters resolve alike. */
export function jobBody(form) {
  const body = { model: form.model, training_file: form.training_file };
  if (form.validation_file) body.validation_file = form.validation_file;
  const hp = {};
  for (const key of ["n_epochs", "batch_size", "learning_rate_multiplier"])
    if (form[key] !== "auto") hp[key] = form[key];
  body.method = { type: "supervised", supervised: { hyperparameters: hp } };
  return body;
}

/** One line: each value, "(auto)" where the server chose it, then the work and its estimated cost. */
export function describePreflight(answer) {
  const hp = answer.hyperparameters;
  const reasons = hp.reasons || {};
  const shown = (name) => `${name}=${hp[name]}${name in reasons ? " (auto)" : ""}`;
  const minutes = answer.estimate.seconds / 60;
  const time = minutes < 1.5 ? `${Math.round(answer.estimate.seconds)} s` : `${minutes.toFixed(1)} minutes`;
  const gpu = answer.estimate.peak_gpu_bytes == null ? "" : `, GPU ${memory(answer.estimate.peak_gpu_bytes)}`;
  return (
    `${shown("n_epochs")}, ${shown("batch_size")}, ${shown("learning_rate_multiplier")} ` +
    `for ${answer.n_train_examples} examples: ${answer.total_steps} steps, ` +
    `${answer.trained_tokens.toLocaleString("en")} tokens; about ${time} on ${answer.estimate.device}, ` +
    `peak memory ${memory(answer.estimate.peak_cpu_bytes)}${gpu}`
  );
}

function memory(n) {
  return n < 2 ** 30 ? bytes(n) : `${(n / 2 ** 30).toFixed(2)} GiB`;
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
    for: "f-training f-validation f-model f-epochs f-batch f-lr",
    "aria-live": "polite",
  });
  const reasons = h("ul#resolved-reasons.hint", { "aria-label": "Why auto chose each value" });
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
      reasons,
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

  let asked = 0; // the latest preflight asked for: an older answer arriving late is dropped
  let timer = null;
  function showResolved() {
    clearTimeout(timer);
    if (!el.training.value) {
      resolved.value = "choose a training file";
      reasons.replaceChildren();
      return;
    }
    resolved.value = "resolving…";
    timer = setTimeout(askPreflight, PREFLIGHT_DELAY_MS);
  }
  async function askPreflight() {
    const mine = ++asked;
    const num = (input) => (input.value === "" ? "auto" : Number(input.value));
    const body = jobBody({
      model: el.model.value,
      training_file: el.training.value,
      validation_file: el.validation.value,
      n_epochs: num(el.epochs),
      batch_size: num(el.batch),
      learning_rate_multiplier: num(el.lr),
    });
    try {
      const answer = await post("/v1/fine_tuning/jobs/preflight", body);
      if (mine !== asked) return;
      resolved.value = describePreflight(answer);
      const why = Object.entries(answer.hyperparameters.reasons || {});
      reasons.replaceChildren(...why.map(([key, line]) => h("li", {}, `${key} = ${line}`)));
    } catch (err) {
      if (mine !== asked) return;
      resolved.value = err.message;
      reasons.replaceChildren();
    }
  }
  function syncApi() {
    legacyOnly.hidden = el.api.value !== "legacy";
  }
  for (const control of [el.training, el.validation, el.model, el.epochs, el.batch, el.lr])
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
      const option = (f) => h("option", { value: f.id }, `${f.filename} (${f.id})`);
      el.training.append(...usable.map(option));
      el.validation.append(h("option", { value: "" }, "none"), ...usable.map(option));
      if (!usable.length)
        clear(error).append(
          h("p.hint", {}, "No files yet: ", h("a", { href: "#/files" }, "upload one"), " first."),
        );
      showResolved();
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
