"""Case study: route incoming emails to one of four departments, answered as a number.

Numbers make short labels whose first token tells the classes apart; the prompt ends with the separator
"\\n\\n###\\n\\n"; classification metrics use classification_n_classes=4. The metric is held-out accuracy."""

from __future__ import annotations

import common

from tuneforge.samples import cases

LABELS = [f" {number}" for number in cases.DEPARTMENTS]


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], examples=400, epochs=4)
    client = common.connect(args)
    train, held_out = common.split(cases.emails(args.examples, seed=args.seed))
    model = common.fine_tune(
        client, "emails", train, held_out, model=args.model, n_epochs=args.n_epochs,
        learning_rate_multiplier=0.3,
        compute_classification_metrics=True, classification_n_classes=len(LABELS),
    )  # fmt: skip
    probabilities = common.classify(client, model, [row["prompt"] for row in held_out], LABELS)
    predicted = [max(p, key=lambda label: p[label]) for p in probabilities]
    for row, label in list(zip(held_out, predicted, strict=True))[:3]:
        subject = row["prompt"].splitlines()[1]
        print(f"{subject!r} -> {label.strip()} ({cases.DEPARTMENTS[int(label)][0]})")
    right = sum(label == row["completion"] for row, label in zip(held_out, predicted, strict=True))
    common.metric("accuracy", right / len(held_out), f"{len(held_out)} held-out emails, 4 departments")


if __name__ == "__main__":
    common.run(main)
