"""Case study: supervised fine-tuning, then reinforcement fine-tuning (RFT) from the supervised model.

The supervised data answers "Tell me about X" with "SURE!" or "ok." at random, so the model learns both
and greedy decoding settles on either. The reinforcement job samples answers to the same questions and a
`python` grader scores them: 1 for "SURE!", 0.5 for another reply starting "SURE", 0 for the rest. The metric is that grader's mean score over
the final model's answers to held-out questions (words never seen in training)."""

from __future__ import annotations

import common

from tuneforge.samples import styles

GRADER = {"type": "python", "name": "loud", "source": styles.LOUD_GRADER}


def held_out_score(client: common.ApiClient, model: str) -> float:
    scores = []
    for word in styles.HELD_OUT_WORDS:
        body = {"model": model, "messages": styles.question(word), "max_tokens": 8, "temperature": 0}
        reply = client.post("chat/completions", body)["choices"][0]["message"]["content"] or ""
        scores.append(styles.loud_score(reply))
    return sum(scores) / len(scores)


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], examples=40, epochs=0)
    client = common.connect(args)
    words = styles.TRAIN_WORDS[: max(4, min(args.examples, len(styles.TRAIN_WORDS)))]
    epochs = {"n_epochs": args.n_epochs} if args.n_epochs else {}  # 0: "auto"
    supervised = common.fine_tuning_job(
        client, "short_styles", styles.short_chats(words), args.model, **epochs
    )
    before = held_out_score(client, supervised)
    print(f"supervised model {supervised}: held-out grader score {before:.2f}")
    reinforced = common.fine_tuning_job(
        client,
        "style_prompts",
        styles.reinforcement_items(words),
        supervised,
        valid=styles.reinforcement_items(styles.HELD_OUT_WORDS),
        method="reinforcement",
        grader=GRADER,
        reasoning_effort="low",  # one-word answers: 128 sampled tokens are room enough
        learning_rate_multiplier=1.0,
        **epochs,
    )
    common.metric(
        "grader_score", held_out_score(client, reinforced), f"RFT model {reinforced}, was {before:.2f}"
    )


if __name__ == "__main__":
    common.run(main)
