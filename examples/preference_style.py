"""Case study: supervised fine-tuning, then preference fine-tuning (DPO) from the supervised model.

The supervised data answers "Tell me about X" in two styles at random, so the model learns both and
greedy decoding settles on one of them. The preference pairs prefer the loud style. The metric is the share
of held-out questions (words never seen in training) the final model answers in the preferred style."""

from __future__ import annotations

import common

from tuneforge.samples import styles


def loud_share(client: common.ApiClient, model: str) -> float:
    replies = []
    for word in styles.HELD_OUT_WORDS:
        body = {"model": model, "messages": styles.question(word), "max_tokens": 24, "temperature": 0}
        replies.append(client.post("chat/completions", body)["choices"][0]["message"]["content"] or "")
    return sum(styles.is_loud(reply) for reply in replies) / len(replies)


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], examples=40, epochs=0)
    client = common.connect(args)
    words = styles.TRAIN_WORDS[: max(4, min(args.examples, len(styles.TRAIN_WORDS)))]
    epochs = {"n_epochs": args.n_epochs} if args.n_epochs else {}  # 0: "auto"
    supervised = common.fine_tuning_job(client, "styles", styles.mixed_chats(words), args.model, **epochs)
    before = loud_share(client, supervised)
    print(f"supervised model {supervised}: {before:.0%} of held-out replies in the preferred style")
    preferred = common.fine_tuning_job(
        client,
        "style_pairs",
        styles.preference_pairs(words),
        supervised,
        valid=styles.preference_pairs(styles.HELD_OUT_WORDS),
        method="dpo",
        **epochs,
    )
    common.metric(
        "preferred_style", loud_share(client, preferred), f"DPO model {preferred}, was {before:.0%}"
    )


if __name__ == "__main__":
    common.run(main)
