// What a job's events say about its run (total steps, seed, tokens, data format) and how far along it
// is: the job page reads these from the public events, since the legacy fine-tune object lacks them.

/** Facts from the recipe's event messages ("Hyperparameters: … seed=5, total_steps=32, …", "Trained
 * 4,520 tokens in …"); each is null until its message has arrived. */
export function trainingFacts(events) {
  const facts = { totalSteps: null, seed: null, trainedTokens: null, dataFormat: null, startedAt: null };
  for (const event of events) {
    const text = event.message || "";
    if (text.startsWith("Hyperparameters:")) {
      facts.totalSteps = intOf(/\btotal_steps=(\d+)/.exec(text));
      facts.seed = intOf(/\bseed=(\d+)/.exec(text));
      facts.dataFormat = /\bdata_format=(\w+)/.exec(text)?.[1] ?? null;
      facts.startedAt = event.created_at ?? null;
    }
    const trained = /^Trained ([\d,]+) tokens/.exec(text);
    if (trained) facts.trainedTokens = Number(trained[1].replaceAll(",", ""));
  }
  return facts;
}

function intOf(match) {
  return match ? Number(match[1]) : null;
}

/** {step, total, fraction, secondsLeft}: the last metrics step against the planned total, and the time
 * left from the API's `estimated_finish` (jobs) or, lacking it, the pace so far. */
export function progressOf(job, facts, rows, nowSeconds) {
  const step = rows.reduce((most, row) => Math.max(most, row.step || 0), 0);
  const total = facts.totalSteps;
  const done = job.status === "succeeded";
  const fraction = done ? 1 : total ? Math.min(1, step / total) : null;
  let secondsLeft = null;
  if (job.status === "running") {
    if (job.estimated_finish) secondsLeft = Math.max(0, job.estimated_finish - nowSeconds);
    else if (facts.startedAt && fraction > 0 && fraction < 1)
      secondsLeft = ((nowSeconds - facts.startedAt) * (1 - fraction)) / fraction;
  }
  return { step: done && total ? total : step, total, fraction, secondsLeft };
}

/** "about 3 min", "under a minute", "1 h 20 min". */
export function duration(seconds) {
  if (seconds < 60) return "under a minute";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min`;
  return `about ${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
