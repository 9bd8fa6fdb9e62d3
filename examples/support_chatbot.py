"""Case study: a multi-turn customer-support chatbot in the chat format.

Each training line is a whole conversation ({"messages": [...]}, system prompt included); every assistant
turn is learned in its context. It trains through the fine_tuning.jobs API and is called through
/v1/chat/completions. The metric is the share of held-out conversations whose first reply is the right
one for the customer's question."""

from __future__ import annotations

import common

from tuneforge.samples import cases


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], examples=200, epochs=6)
    client = common.connect(args)
    train, held_out = common.split(cases.support_chats(args.examples, seed=args.seed))
    model = common.fine_tuning_job(
        client, "support", train, args.model, n_epochs=args.n_epochs, learning_rate_multiplier=0.3
    )
    right = 0
    for row in held_out:
        question = row["messages"][:2]  # the system prompt and the customer's first message
        body = {"model": model, "messages": question, "max_tokens": 80, "temperature": 0}
        reply = client.post("chat/completions", body)["choices"][0]["message"]["content"]
        right += reply.strip() == row["messages"][2]["content"]
    last = held_out[-1]["messages"]
    print(f"customer: {last[1]['content']}\nbot:      {reply}")
    common.metric("reply_accuracy", right / len(held_out), f"{len(held_out)} held-out conversations")


if __name__ == "__main__":
    common.run(main)
