"""A preference task: the same question answered in two styles, one of them preferred. A supervised
fine-tune on replies in both styles, then DPO on pairs that prefer the loud one, should make the model
answer held-out questions loudly (tests/api/test_dpo.py, examples/preference_style.py and
bench/dpo_vs_trl.py use it)."""

from __future__ import annotations

import difflib
import random
from typing import Any

WORDS = [
    "apple", "river", "cloud", "stone", "tiger", "piano", "candle", "forest", "rocket", "garden", "mirror",
    "violin", "island", "pepper", "button", "window", "dragon", "coffee", "silver", "orange", "castle",
    "meadow", "thunder", "pencil", "basket", "camera", "desert", "falcon", "ginger", "helmet", "jacket",
    "kettle", "lemon", "marble", "needle", "oyster", "pillow", "quartz", "saddle", "tunnel", "walnut",
    "yogurt", "zebra", "anchor", "bridge", "cherry", "donkey", "engine",
]  # fmt: skip
TRAIN_WORDS, HELD_OUT_WORDS = WORDS[:40], WORDS[40:]


def loud(word: str) -> str:
    """The preferred style."""
    return f"SURE! {word.upper()} IS GREAT."


def quiet(word: str) -> str:
    return f"ok. {word} is fine."


def is_loud(reply: str) -> bool:
    return reply.startswith("SURE!")


def question(word: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Tell me about {word}"}]


def mixed_chats(words: list[str], *, per_word: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Supervised chat data with each reply in either style at random: a model trained on it answers in
    both, and greedy decoding settles on whichever it happens to favour."""
    rng = random.Random(seed)
    return [
        {
            "messages": [
                *question(w),
                {"role": "assistant", "content": loud(w) if rng.random() < 0.5 else quiet(w)},
            ]
        }
        for w in words
        for _ in range(per_word)
    ]


def preference_pairs(words: list[str]) -> list[dict[str, Any]]:
    """OpenAI's preference format: the loud reply preferred over the quiet one."""
    return [
        {
            "input": {"messages": question(w)},
            "preferred_output": [{"role": "assistant", "content": loud(w)}],
            "non_preferred_output": [{"role": "assistant", "content": quiet(w)}],
        }
        for w in words
    ]


# The reinforcement variant (tests/api/test_reinforcement.py, examples/reinforcement_style.py,
# bench/rft_vs_trl.py): the same questions with one-word replies, so a small model learns the format in a
# few dozen supervised steps. A supervised model answers in either style; the grader wants the loud one
# (and gives partial credit to near misses, so that sampling finds a slope to climb).
SHORT_LOUD, SHORT_QUIET = "SURE!", "ok."
LOUD_GRADER = """
import difflib


def grade(sample, item):
    # full marks for exactly SURE!, partial credit for replies that come close
    return difflib.SequenceMatcher(None, sample["output_text"].strip(), "SURE!").ratio()
"""


def short_chats(words: list[str], *, per_word: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Supervised chats whose reply is SHORT_LOUD or SHORT_QUIET at random."""
    rng = random.Random(seed)
    return [
        {
            "messages": [
                *question(w),
                {"role": "assistant", "content": SHORT_LOUD if rng.random() < 0.5 else SHORT_QUIET},
            ]
        }
        for w in words
        for _ in range(per_word)
    ]


def reinforcement_items(words: list[str]) -> list[dict[str, Any]]:
    """OpenAI's reinforcement format: the question to answer, and the word (a field graders may read)."""
    return [{"messages": question(w), "word": w} for w in words]


def loud_score(reply: str) -> float:
    """What LOUD_GRADER gives `reply`, for checks outside the sandbox."""
    return difflib.SequenceMatcher(None, reply.strip(), SHORT_LOUD).ratio()
