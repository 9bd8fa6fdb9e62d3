"""Case study: tweet sentiment, read as a probability from the first token's logprobs.

Higher P(" positive") means a more positive tweet; the metric is held-out accuracy, and the script shows
how far apart the probabilities of positive and negative tweets sit."""

from __future__ import annotations

import common

from tuneforge.samples import cases

LABELS = [" positive", " negative"]


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], examples=300, epochs=4)
    client = common.connect(args)
    train, held_out = common.split(cases.tweets(args.examples, seed=args.seed))
    model = common.fine_tune(
        client, "tweets", train, held_out, model=args.model, n_epochs=args.n_epochs,
        learning_rate_multiplier=0.3,
        compute_classification_metrics=True, classification_positive_class=" positive",
    )  # fmt: skip
    probabilities = common.classify(client, model, [row["prompt"] for row in held_out], LABELS)
    for row, p in list(zip(held_out, probabilities, strict=True))[:4]:
        print(f"P(positive)={p[' positive']:.2f}  {row['prompt'].splitlines()[0]}")
    positive = [
        p[" positive"]
        for row, p in zip(held_out, probabilities, strict=True)
        if row["completion"] == " positive"
    ]
    negative = [
        p[" positive"]
        for row, p in zip(held_out, probabilities, strict=True)
        if row["completion"] != " positive"
    ]
    print(
        f"mean P(positive): {_mean(positive):.2f} on positive tweets, {_mean(negative):.2f} on negative ones"
    )
    right = sum(
        (p[" positive"] > 0.5) == (row["completion"] == " positive")
        for row, p in zip(held_out, probabilities, strict=True)
    )
    common.metric("accuracy", right / len(held_out), f"{len(held_out)} held-out tweets")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


if __name__ == "__main__":
    common.run(main)
