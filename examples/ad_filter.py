"""Case study: keep only ads that promote the product and company they are filed under.

A structured prompt (Company / Product / Ad, ending "\\nSupported:") and a one-token answer " yes"/" no".
The metric is accuracy on held-out ads, and the precision of the ads the model approves with P(yes) > 0.9:
the ones a site could publish without review."""

from __future__ import annotations

import common

from tuneforge.samples import cases


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], examples=400, epochs=4)
    client = common.connect(args)
    train, held_out = common.split(cases.ads(args.examples, seed=args.seed))
    model = common.fine_tune(
        client, "ads", train, held_out, model=args.model, n_epochs=args.n_epochs,
        learning_rate_multiplier=0.3,
        compute_classification_metrics=True, classification_positive_class=" yes",
    )  # fmt: skip
    probabilities = common.classify(client, model, [row["prompt"] for row in held_out], [" yes", " no"])
    truth = [row["completion"] == " yes" for row in held_out]
    said_yes = [p[" yes"] > p[" no"] for p in probabilities]
    confident = [yes for p, yes in zip(probabilities, truth, strict=True) if p[" yes"] > 0.9]
    precision = sum(confident) / len(confident) if confident else 0.0
    print(f"approved with P(yes) > 0.9: {len(confident)} ads, {precision:.0%} of them correctly")
    accuracy = sum(s == t for s, t in zip(said_yes, truth, strict=True)) / len(truth)
    common.metric("accuracy", accuracy, f"{len(truth)} held-out ads")


if __name__ == "__main__":
    common.run(main)
