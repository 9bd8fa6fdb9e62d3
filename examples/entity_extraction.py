"""Case study: extract the person, organisation and place from a sentence.

Free text this time: each completion lists the entities and ends with " END", and the model is called
with stop=[" END"] and temperature 0, so the answer stops exactly where training taught it to. The
metric is the share of held-out sentences whose three entities all come back exactly."""

from __future__ import annotations

import common

from tuneforge.samples import cases


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], examples=300, epochs=6)
    client = common.connect(args)
    train, held_out = common.split(cases.entities(args.examples, seed=args.seed))
    model = common.fine_tune(
        client, "entities", train, [], model=args.model, n_epochs=args.n_epochs, learning_rate_multiplier=0.3
    )
    exact = 0
    for start in range(0, len(held_out), 32):
        rows = held_out[start : start + 32]
        body = {"model": model, "prompt": [row["prompt"] for row in rows], "max_tokens": 80,
                "temperature": 0, "stop": [" END"]}  # fmt: skip
        choices = sorted(client.post("completions", body)["choices"], key=lambda choice: choice["index"])
        for row, choice in zip(rows, choices, strict=True):
            exact += choice["text"] == row["completion"].removesuffix(" END")
    sample = held_out[0]
    print(f"{sample['prompt'].splitlines()[0]}\n  expected:{sample['completion'].removesuffix(' END')!r}")
    common.metric("exact_match", exact / len(held_out), f"{len(held_out)} held-out sentences")


if __name__ == "__main__":
    common.run(main)
