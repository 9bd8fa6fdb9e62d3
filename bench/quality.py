"""Do the "auto" hyperparameters make the built-in models really learn? Three synthetic tasks with held-out
splits, trained with "auto" and with a small sweep of learning rate and epochs beside it:

- binary: sentiment by the majority of positive vs negative words among filler words, against a TF-IDF +
  logistic-regression baseline;
- multiclass: four topics, each prompt mixing words of two topics with the true one more frequent (same
  baseline);
- copy: extract a person and a place into JSON, where every test name and place never occurs in training
  (exact match of the greedy completion).

Usage: python bench/quality.py [--quick] [--threads 2]. Prints a table; writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.settings import Settings
from tuneforge.spec import TrainJob, TrainSpec
from tuneforge.training.events import ListSink
from tuneforge.training.recipe import train

POSITIVE = ["good", "great", "lovely", "superb", "happy", "fine", "nice", "brilliant", "solid", "sweet"]
NEGATIVE = ["bad", "awful", "poor", "sad", "broken", "ugly", "weak", "dull", "rotten", "grim"]
FILLER = ["the", "item", "was", "very", "quite", "and", "it", "felt", "but", "also", "a", "bit", "so"]
TOPICS = {
    " sport": ["goal", "match", "team", "score", "coach", "league", "referee", "stadium"],
    " food": ["bread", "soup", "salad", "cake", "spice", "oven", "recipe", "cheese"],
    " music": ["song", "band", "guitar", "album", "drums", "chorus", "concert", "melody"],
    " weather": ["rain", "snow", "storm", "sunny", "cloud", "wind", "forecast", "humid"],
}
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "tu",
    "sa",
    "vor",
    "el",
    "an",
    "di",
    "po",
    "zu",
    "bel",
    "qua",
    "ny",
    "ot",
]


def binary(rng: random.Random) -> dict[str, str]:
    n_pos, n_neg = rng.choice([(3, 1), (2, 1), (3, 2), (1, 3), (1, 2), (2, 3), (2, 0), (0, 2)])
    words = rng.choices(POSITIVE, k=n_pos) + rng.choices(NEGATIVE, k=n_neg) + rng.sample(FILLER, 4)
    rng.shuffle(words)
    return {
        "prompt": "Review: " + " ".join(words) + "\nSentiment:",
        "completion": " positive" if n_pos > n_neg else " negative",
    }


def multiclass(rng: random.Random) -> dict[str, str]:
    label, other = rng.sample(sorted(TOPICS), 2)
    words = rng.choices(TOPICS[label], k=3) + rng.choices(TOPICS[other], k=1) + rng.sample(FILLER, 3)
    rng.shuffle(words)
    return {"prompt": "Text: " + " ".join(words) + "\nTopic:", "completion": label}


def name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def copy_task(rng: random.Random) -> dict[str, str]:
    person, place = f"{name(rng, 2)} {name(rng, 3)}", name(rng, 3)
    template = rng.choice(
        [
            "Yesterday {p} flew to {c} for a meeting.",
            "{p} has lived in {c} for years.",
            "In {c}, {p} opened a bakery.",
            "The mayor of {c} thanked {p} warmly.",
        ]
    )
    return {
        "prompt": "Text: " + template.format(p=person, c=place) + "\nJSON:",
        "completion": json.dumps({"name": person, "city": place}).join([" ", "\n"]),
    }


def split(
    make: Any, n_train: int, n_test: int, seed: int, disjoint: bool = False
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rng = random.Random(seed)
    rows = [make(rng) for _ in range(n_train + n_test)]
    train_rows, test_rows = rows[:n_train], rows[n_train:]
    if disjoint:  # the test names and places must never occur in training
        seen = " ".join(r["completion"] for r in train_rows)
        test_rows = [r for r in test_rows if all(v not in seen for v in json.loads(r["completion"]).values())]
    return train_rows, test_rows


def tfidf_baseline(train_rows: list[dict[str, str]], test_rows: list[dict[str, str]]) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    x = vectorizer.fit_transform([r["prompt"] for r in train_rows])
    model = LogisticRegression(max_iter=2000, C=10).fit(x, [r["completion"] for r in train_rows])
    return float(
        np.mean(
            model.predict(vectorizer.transform([r["prompt"] for r in test_rows]))
            == [r["completion"] for r in test_rows]
        )
    )


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def exact_match(model: Any, output_dir: Path, rows: list[dict[str, str]]) -> float:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model.eval()
    hits = 0
    with torch.no_grad():
        for row in rows:
            ids = tokenizer(row["prompt"], return_tensors="pt").input_ids
            out = model.generate(
                ids,
                max_new_tokens=48,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            hits += tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True) == row["completion"]
    return hits / len(rows)


def run(
    task: str,
    files: tuple[Path, Path],
    test_rows: list[dict[str, str]],
    settings: Settings,
    out: Path,
    threads: int,
    **overrides: Any,
) -> dict[str, Any]:
    classification: dict[str, Any] | None = None
    if task == "binary":
        classification = {"positive_class": " positive"}
    elif task == "multiclass":
        classification = {"n_classes": 4}
    spec = TrainSpec.model_validate(
        {
            "model": "tiny",
            "training_file": str(files[0]),
            "validation_file": str(files[1]),
            "method": {"type": "supervised", "hyperparameters": overrides},
            "classification": classification,
            "seed": 0,
        }
    )
    config = TrainJob.local(spec, out, threads=threads, eval_every=10**9)
    start = time.perf_counter()
    result = train(config, settings, ListSink())
    seconds = time.perf_counter() - start
    score = (
        result.metrics["classification/accuracy"]
        if task != "copy"
        else exact_match(result.model, out, test_rows)
    )
    hp = result.hyperparameters
    return {
        "task": task,
        "n_epochs": hp.n_epochs,
        "batch_size": hp.batch_size,
        "lr_multiplier": hp.learning_rate_multiplier,
        "score": score,
        "seconds": seconds,
        "validation_loss": result.metrics.get("validation_loss"),
        "auto": not overrides,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer examples and a smaller sweep")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--auto-only", action="store_true", help="no sweep: check the auto rule alone")
    parser.add_argument("--tasks", nargs="+", default=["binary", "multiclass", "copy"])
    args = parser.parse_args()
    n_train, n_test = (400, 150) if args.quick else (1000, 300)
    makers = {"binary": binary, "multiclass": multiclass, "copy": copy_task}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "data")
        for task in args.tasks:
            train_rows, test_rows = split(makers[task], n_train, n_test, seed=7, disjoint=task == "copy")
            files = (
                write(root / f"{task}-train.jsonl", train_rows),
                write(root / f"{task}-test.jsonl", test_rows),
            )
            auto = run(task, files, test_rows, settings, root / f"{task}-auto", args.threads)
            rows.append(auto)
            print(_line(auto), file=sys.stderr, flush=True)
            if task != "copy":
                rows.append(
                    {
                        "task": task,
                        "n_epochs": "-",
                        "batch_size": "-",
                        "lr_multiplier": "-",
                        "score": tfidf_baseline(train_rows, test_rows),
                        "seconds": 0.0,
                        "validation_loss": None,
                        "auto": "tfidf+logreg",
                    }
                )
            sweep = [(m, auto["n_epochs"]) for m in (auto["lr_multiplier"] / 3, auto["lr_multiplier"] * 3)]
            sweep.append((auto["lr_multiplier"], auto["n_epochs"] * 2))
            if not args.quick:
                sweep.append((auto["lr_multiplier"] * 3, auto["n_epochs"] * 2))
            for index, (multiplier, epochs) in enumerate([] if args.auto_only else sweep):
                row = run(
                    task,
                    files,
                    test_rows,
                    settings,
                    root / f"{task}-{index}",
                    args.threads,
                    learning_rate_multiplier=multiplier,
                    n_epochs=epochs,
                )
                rows.append(row)
                print(_line(row), file=sys.stderr, flush=True)
    header = ("task", "setting", "epochs", "batch", "lr_mult", "score", "val_loss", "sec")
    print("{:<11} {:<13} {:>6} {:>5} {:>8} {:>6} {:>8} {:>6}".format(*header))
    for row in rows:
        print(_line(row))
    best = {
        t: max(r["score"] for r in rows if r["task"] == t and r["auto"] in (True, False)) for t in args.tasks
    }
    for task in args.tasks:
        auto_score = next(r["score"] for r in rows if r["task"] == task and r["auto"] is True)
        print(f"{task}: auto {auto_score:.3f}, best {best[task]:.3f}, gap {best[task] - auto_score:+.3f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "quality.json").write_text(
        json.dumps({"rows": rows, "threads": args.threads, "quick": args.quick}, indent=2)
    )
    return 0


def _line(row: dict[str, Any]) -> str:
    setting = "auto" if row["auto"] is True else ("sweep" if row["auto"] is False else row["auto"])
    val = "" if row["validation_loss"] is None else f"{row['validation_loss']:.4f}"
    lr = row["lr_multiplier"] if isinstance(row["lr_multiplier"], str) else f"{row['lr_multiplier']:.3g}"
    return (
        f"{row['task']:<11} {setting:<13} {row['n_epochs']!s:>6} {row['batch_size']!s:>5} {lr:>8} "
        f"{row['score']:>6.3f} {val:>8} {row['seconds']:>6.1f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
