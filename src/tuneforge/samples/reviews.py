"""Product reviews labelled positive or negative: the quickstart's dataset, generated from a seed.

Sentences are drawn from phrase banks a store's review page would show (openers, verdicts, details,
contrasts such as "the box was dented but it works great"), with a little label noise, so the task is
realistic enough that accuracy on held-out reviews means something and small enough for the built-in
model to learn in about a minute on two cores."""

from __future__ import annotations

import random
from dataclasses import dataclass

LABELS = ("positive", "negative")
LABEL_NOISE = 0.03  # real review labels disagree with their text now and then

PRODUCTS = (
    "kettle", "blender", "toaster", "desk lamp", "headphones", "backpack", "water bottle", "office chair",
    "keyboard", "rice cooker", "umbrella", "phone case", "vacuum", "coffee grinder", "yoga mat", "jacket",
    "frying pan", "speaker", "mouse", "air fryer", "hair dryer", "sneakers", "monitor", "charger",
)  # fmt: skip
OPENERS = (
    "Bought this {p} last month.", "Got the {p} as a gift.", "Ordered the {p} on sale.", "Second {p}.",
    "Replaced my old {p}.", "Used the {p} daily.", "", "", "", "",
)  # fmt: skip
GOOD = (
    "Works perfectly.", "Love it!", "Great value for the price.", "Sturdy and well made.",
    "Exceeded my expectations.", "Would buy again.", "Arrived early and works great.", "Highly recommend.",
    "Really happy with it.", "Quiet and easy to clean.", "Five stars.", "Does exactly what it should.",
    "Excellent quality.", "My family loves it.", "Best purchase this year.", "Solid and reliable.",
)  # fmt: skip
BAD = (
    "Stopped working after a week.", "Arrived broken.", "Cheaply made.", "Total waste of money.",
    "Would not recommend.", "Returned it.", "Very disappointed.", "Falls apart easily.",
    "Way too loud.", "Poor quality.", "Broke on the first day.", "Customer service never replied.",
    "Not worth the price.", "Feels flimsy.", "One star.", "Terrible, avoid it.",
)  # fmt: skip
MINOR_GOOD = ("The color is nice", "Shipping was fast", "It looks good", "The box was pretty")
MINOR_BAD = (
    "The box was dented",
    "Shipping took ages",
    "The manual is confusing",
    "It smells a bit at first",
)


@dataclass(frozen=True)
class Review:
    text: str
    label: str  # one of LABELS


def generate(n: int, *, seed: int = 0) -> list[Review]:
    """`n` reviews, about half of each label; equal seeds give equal lists."""
    rng = random.Random(seed)
    reviews = []
    for _ in range(n):
        label = rng.choice(LABELS)
        text = _review(rng, label)
        if rng.random() < LABEL_NOISE:
            label = LABELS[1 - LABELS.index(label)]
        reviews.append(Review(text, label))
    return reviews


def _review(rng: random.Random, label: str) -> str:
    product = rng.choice(PRODUCTS)
    verdicts, minors = (GOOD, MINOR_BAD) if label == "positive" else (BAD, MINOR_GOOD)
    parts = [rng.choice(OPENERS).format(p=product)]
    if rng.random() < 0.15:  # a contrast: the minor point pulls the other way, the verdict decides
        verdict = rng.choice(verdicts)
        parts.append(f"{rng.choice(minors)} but {verdict[0].lower()}{verdict[1:]}")
    else:
        parts.append(rng.choice(verdicts))
    if rng.random() < 0.4:
        parts.append(rng.choice(verdicts))
    return " ".join(part for part in parts if part)


def split(reviews: list[Review], held_out: float) -> tuple[list[Review], list[Review]]:
    """The first part to fine-tune on (train and validation), the last `held_out` share to test on."""
    cut = len(reviews) - max(1, round(held_out * len(reviews)))
    return reviews[:cut], reviews[cut:]
