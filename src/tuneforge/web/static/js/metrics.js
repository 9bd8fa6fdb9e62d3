// Checkpoint metrics as a person reads them: named, losses to three decimals, accuracies as percents,
// counts with separators; OpenAI's aliases left out when they are empty.

const NAMES = {
  training_loss: "training loss",
  validation_loss: "validation loss",
  training_token_accuracy: "training token accuracy",
  validation_token_accuracy: "validation token accuracy",
  training_sequence_accuracy: "training sequence accuracy",
  validation_sequence_accuracy: "validation sequence accuracy",
  full_valid_loss: "full validation loss",
  full_valid_mean_token_accuracy: "full validation token accuracy",
  train_loss: "train loss",
  train_mean_token_accuracy: "train token accuracy",
  valid_loss: "valid loss",
  valid_mean_token_accuracy: "valid token accuracy",
  elapsed_tokens: "tokens seen",
  elapsed_examples: "examples seen",
  total_steps: "total steps",
};

/** [[name, text], …] for the metrics that have a value, in a stable reading order. */
export function formatMetrics(metrics) {
  const known = Object.keys(NAMES).filter((k) => k in metrics);
  const others = Object.keys(metrics).filter((k) => !(k in NAMES) && k !== "step").sort();
  return [...known, ...others]
    .filter((key) => typeof metrics[key] === "number" && Number.isFinite(metrics[key]))
    .map((key) => [NAMES[key] || key.replaceAll("_", " "), formatValue(key, metrics[key])]);
}

function formatValue(key, value) {
  if (key.startsWith("elapsed_") || key === "total_steps") return Math.round(value).toLocaleString("en-US");
  if (/accuracy|precision|recall|f1/.test(key)) return `${(100 * value).toFixed(1)}%`;
  return value.toFixed(3);
}
