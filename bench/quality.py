"""Does "auto" find the best model? A fixed suite of tasks, each with its own validation and held-out test
split, trained on a built-in model with "auto" and with a 9-point sweep beside it (learning-rate multiplier
x epochs, or x batch size where that matters); auto must score within 2% of the sweep's best held-out
score at no more than 1.5x that run's training time.

- binary: sentiment by the majority of positive vs negative words among filler words;
- multiclass: four topics, each prompt mixing words of two topics with the true one more frequent;
- triage50: emails routed to 50 numbered departments (" 1" … " 50"), as in the guide's email triage;
- extract: a name and a city copied out of order notes into JSON, every test name and city never seen in
  training (field accuracy; exact match beside it);
- describe: free-text conditional generation, a product line from its attributes (word F1 against the
  reference; exact match beside it), test attribute combinations unseen in training;
- chat: support chats whose reply depends on the intent and copies the order number (exact match).

Every task is scored on its test split by greedy generation (a classifier's answer is right when it is the
label). The validation split is what the recipe sees (and stops early on); the test split is seen only
here. Training time is the recipe's optimizer time (no loading, evaluation or saving).

Usage: python bench/quality.py [--quick] [--tasks extract chat] [--auto-only] [--threads 2] [--out FILE]
                               [--points LR:EPOCHS:BATCH ...]
`--points` runs those sweep points instead of the task's grid (a sweep cut down to the points around the
best, or points off the grid).
Each run is merged into the JSON file (default bench/results/quality.json) as soon as it ends, so partial
results survive and several processes (one per task) can share one file; `--resume` skips runs already in
it. `--table` prints the table of what the file holds and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.samples.cases import SYSTEM
from tuneforge.settings import Settings
from tuneforge.spec import TrainJob, TrainSpec
from tuneforge.training.events import DoneEvent, Event, HyperparametersEvent, ListSink
from tuneforge.training.preflight import preflight
from tuneforge.training.recipe import train

Row = dict[str, Any]
RESULTS = Path(__file__).parent / "results"
TEST_ROWS = 240  # at least; see splits()
LR_MULTIPLIERS = (0.03, 0.1, 0.3)  # the sweep's learning-rate axis (auto picks 0.1 at batch 8-31)

# --- the tasks' data ---------------------------------------------------------------------------------

POSITIVE = ["good", "great", "lovely", "superb", "happy", "fine", "nice", "brilliant", "solid", "sweet"]
NEGATIVE = ["bad", "awful", "poor", "sad", "broken", "ugly", "weak", "dull", "rotten", "grim"]
FILLER = ["the", "item", "was", "very", "quite", "and", "it", "felt", "but", "also", "a", "bit", "so"]
TOPICS = {
    " sport": ["goal", "match", "team", "score", "coach", "league", "referee", "stadium"],
    " food": ["bread", "soup", "salad", "cake", "spice", "oven", "recipe", "cheese"],
    " music": ["song", "band", "guitar", "album", "drums", "chorus", "concert", "melody"],
    " weather": ["rain", "snow", "storm", "sunny", "cloud", "wind", "forecast", "humid"],
}
SYLLABLES = (
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
)
SENDERS = ("ana@example.com", "li.wei@example.org", "sam@shop.example", "kofi@mail.example")


def binary(rng: random.Random) -> Row:
    n_pos, n_neg = rng.choice([(3, 1), (2, 1), (3, 2), (1, 3), (1, 2), (2, 3), (2, 0), (0, 2)])
    words = rng.choices(POSITIVE, k=n_pos) + rng.choices(NEGATIVE, k=n_neg) + rng.sample(FILLER, 4)
    rng.shuffle(words)
    label = " positive" if n_pos > n_neg else " negative"
    return {"prompt": "Review: " + " ".join(words) + "\nSentiment:", "completion": label}


def multiclass(rng: random.Random) -> Row:
    label, other = rng.sample(sorted(TOPICS), 2)
    words = rng.choices(TOPICS[label], k=3) + rng.choices(TOPICS[other], k=1) + rng.sample(FILLER, 3)
    rng.shuffle(words)
    return {"prompt": "Text: " + " ".join(words) + "\nTopic:", "completion": label}


def _departments() -> dict[int, tuple[str, str]]:
    """50 departments, each known by two made-up keywords of its own (fixed by a seed of their own)."""
    rng = random.Random(50)
    words: set[str] = set()
    while len(words) < 100:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(2)))
    ordered = sorted(words)
    rng.shuffle(ordered)
    return {n: (ordered[2 * n - 2], ordered[2 * n - 1]) for n in range(1, 51)}


DEPARTMENTS = _departments()


def triage50(rng: random.Random) -> Row:
    number = rng.randrange(1, 51)
    keyword = rng.choice(DEPARTMENTS[number])
    subject = f"Re: {keyword}" if rng.random() < 0.5 else f"Question on {keyword}"
    body = rng.choice(["Hi, about the {k}: could you help me? Thanks", "Hello, the {k} needs a look."])
    prompt = f"From: {rng.choice(SENDERS)}\nSubject: {subject}\n\n{body.format(k=keyword)}\n\n###\n\n"
    return {"prompt": prompt, "completion": f" {number}"}


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


ORDER_NOTES = (
    "Order {o}: {q} boxes for {p}, ship to {c}.",
    "Ship to {c} please. Customer {p}, order {o}, {q} items.",
    "{p} called about order {o}; deliver the {q} crates in {c}.",
    "Deliver to {c}: order {o} ({q} units), contact {p}.",
)


def extract(rng: random.Random) -> Row:
    person, city = f"{_name(rng, 2)} {_name(rng, 3)}", _name(rng, 3)
    note = rng.choice(ORDER_NOTES).format(
        p=person, c=city, o=rng.randrange(1000, 9999), q=rng.randrange(2, 9)
    )
    return {
        "prompt": f"Note: {note}\nJSON:",
        "completion": " " + json.dumps({"name": person, "city": city}) + "\n",
    }


ITEMS = {
    "lamp": "light", "chair": "seat", "rug": "floor", "clock": "wall", "vase": "table", "shelf": "wall",
}  # fmt: skip
COLORS = ("red", "blue", "green", "black", "white", "amber", "grey", "teal")
ROOMS = ("kitchen", "office", "bedroom", "hall", "garden", "studio")
MATERIALS = ("oak", "steel", "wool", "glass", "clay", "brass")


def describe(rng: random.Random) -> Row:
    item, color, room, material = (rng.choice(x) for x in (sorted(ITEMS), COLORS, ROOMS, MATERIALS))
    prompt = f"Item: {item}\nColor: {color}\nMaterial: {material}\nRoom: {room}\nDescription:"
    line = f" A {color} {material} {item} for your {room}, a {ITEMS[item]} piece that lasts.\n"
    return {"prompt": prompt, "completion": line}


CHAT_INTENTS = {
    "late": (("Where is my order?", "My package is late."), "Sorry for the wait! Order {n} ships today."),
    "refund": (("I want a refund.", "Can I return this?"), "Order {n} can be returned within 30 days."),
    "cancel": (("Please cancel my order.", "I no longer need it."), "Done: order {n} is cancelled."),
}  # fmt: skip


def chat(rng: random.Random) -> Row:
    intent = rng.choice(sorted(CHAT_INTENTS))
    questions, reply = CHAT_INTENTS[intent]
    number = str(rng.randrange(10_000, 99_999))
    greeting = rng.choice(("Hi.", "Hello!", "Hey,", ""))
    user = f"{greeting} {rng.choice(questions)} It is order {number}.".strip()
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user},
            {"role": "assistant", "content": reply.format(n=number)},
        ]
    }


# --- the suite ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    make: Callable[[random.Random], Row]
    sizes: tuple[int, int]  # training examples: quick, full (validation: a quarter of it, at least 60)
    score: str  # how the greedy completions of the test rows are scored: accuracy, fields, word_f1, reply
    # The sweep beside the learning-rate axis: (n_epochs, batch_size) per size, quick then full.
    budgets: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] = ((), ())
    unseen: tuple[str, ...] = ()  # completion fields the test rows must never share with training


# The budgets span where each task learns on the built-in: chat's replies come right after about 800 steps
# at batch 8, extraction needs about 40 epochs (docs/training.md); a grid that learns nothing tests nothing.
TASKS: dict[str, Task] = {
    "binary": Task(binary, (240, 800), "accuracy", (((2, 8), (4, 8), (8, 8)),) * 2),
    "multiclass": Task(multiclass, (240, 800), "accuracy", (((2, 8), (4, 8), (8, 8)),) * 2),
    "triage50": Task(triage50, (500, 1200), "accuracy",
                     (((4, 8), (8, 8), (16, 8)), ((3, 8), (6, 8), (12, 8)))),
    "extract": Task(extract, (400, 1000), "fields",
                    budgets=(((20, 8), (40, 8), (40, 16)), ((8, 8), (8, 4), (8, 2))),
                    unseen=("name", "city")),
    "describe": Task(describe, (400, 1000), "word_f1",
                     budgets=(((6, 8), (6, 4), (12, 4)), ((4, 8), (4, 4), (8, 4)))),
    "chat": Task(chat, (300, 800), "reply", budgets=(((10, 8), (20, 8), (40, 8)), ((4, 8), (4, 4), (8, 4)))),
}  # fmt: skip


def splits(name: str, task: Task, quick: bool, seed: int = 7) -> tuple[list[Row], list[Row], list[Row]]:
    """Train, validation and test rows, a pure function of the task, the size and the seed."""
    n_train = task.sizes[0 if quick else 1]
    n_held = max(60, n_train // 4)
    # 60 test rows put one seed's accuracy of 0.9 at +-0.04 (one standard error), twice the 2% the target
    # allows; 240 halve it. The test split costs only scoring time, so it is not tied to the file's size.
    n_test = max(TEST_ROWS, n_train // 4)
    rng = random.Random(f"{name}:{seed}")
    train_rows = [task.make(rng) for _ in range(n_train)]
    held = [task.make(rng) for _ in range(2 * (n_held + n_test))]
    if task.unseen:  # names and cities of held-out rows never occur in training
        seen = " ".join(r["completion"] for r in train_rows)
        held = [r for r in held if all(json.loads(r["completion"])[k] not in seen for k in task.unseen)]
    else:
        prompts = {json.dumps(r) for r in train_rows}
        held = [r for r in held if json.dumps(r) not in prompts]
    return train_rows, held[:n_held], held[n_held : n_held + n_test]


# --- scoring -----------------------------------------------------------------------------------------


def generations(model: Any, output_dir: Path, rows: list[Row]) -> list[tuple[str, str]]:
    """(greedy completion, reference) for every test row: prompt/completion or a chat's last reply."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model.eval()
    pairs = []
    with torch.no_grad():
        for row in rows:
            if "messages" in row:
                text = tokenizer.apply_chat_template(
                    row["messages"][:-1], tokenize=False, add_generation_prompt=True
                )
                reference = row["messages"][-1]["content"]
            else:
                text, reference = row["prompt"], row["completion"]
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
            out = model.generate(
                ids,
                max_new_tokens=len(tokenizer(reference).input_ids) + 8,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            pairs.append((tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True), reference))
    return pairs


def field_accuracy(pairs: list[tuple[str, str]]) -> float:
    right = total = 0
    for said, reference in pairs:
        gold = json.loads(reference)
        try:
            got = json.loads(said)
        except ValueError:
            got = {}
        got = got if isinstance(got, dict) else {}
        right += sum(got.get(key) == value for key, value in gold.items())
        total += len(gold)
    return right / total


def word_f1(said: str, reference: str) -> float:
    a, b = said.split(), reference.split()
    common = sum(min(a.count(w), b.count(w)) for w in set(b))
    return 0.0 if not common else 2 * common / (len(a) + len(b))


def score(task: Task, result: Any, out: Path, test_rows: list[Row]) -> dict[str, float]:
    pairs = generations(result.model, out, test_rows)
    exact = sum(said.strip() == reference.strip() for said, reference in pairs) / len(pairs)
    if task.score == "accuracy":  # the greedy answer is the label
        return {"score": exact}
    if task.score == "fields":
        return {"score": field_accuracy(pairs), "exact_match": exact}
    if task.score == "word_f1":
        return {"score": sum(word_f1(s, r) for s, r in pairs) / len(pairs), "exact_match": exact}
    return {"score": exact}


# --- runs --------------------------------------------------------------------------------------------


class TimedSink(ListSink):
    """Keeps the events and times the training loop as the worker sees it: from the hyperparameters event
    (the run planned, the model loaded) to the done event, validation passes included."""

    def __init__(self) -> None:
        super().__init__()
        self.started = self.ended = 0.0

    def emit(self, event: Event) -> None:
        super().emit(event)
        if isinstance(event, HyperparametersEvent):
            self.started = time.perf_counter()
        elif isinstance(event, DoneEvent):
            self.ended = time.perf_counter()

    @property
    def loop_seconds(self) -> float:
        return self.ended - self.started


def run(
    name: str, files: tuple[Path, Path], test_rows: list[Row], args: argparse.Namespace, **hp: Any
) -> Row:
    task = TASKS[name]
    spec = TrainSpec.model_validate(
        {
            "model": args.model,
            "training_file": str(files[0]),
            "validation_file": str(files[1]),
            "method": {"type": "supervised", "hyperparameters": hp},
            "seed": 0,
        }
    )
    settings = Settings(data_dir=args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        sink = TimedSink()
        job = TrainJob.local(spec, out, threads=args.threads)
        # The preflight a user would see for this run, from this machine's pace: a warm-up the first time,
        # then the pace earlier runs of this process recorded (the data dir is the process's).
        forecast = preflight(job, settings).estimate
        start = time.perf_counter()
        result = train(job, settings, sink)
        wall = time.perf_counter() - start
        scores = score(task, result, out, test_rows)
    resolved = result.hyperparameters
    return {
        "task": name,
        "quick": args.quick,
        "setting": "auto" if not hp else "sweep",
        "n_epochs": resolved.n_epochs,
        "batch_size": resolved.batch_size,
        "lr_multiplier": resolved.learning_rate_multiplier,
        "total_steps": resolved.total_steps,
        "steps": result.step,
        **scores,
        "validation_loss": result.metrics.get("validation_loss"),
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds": round(wall, 1),
        # The preflight's estimate is for every step; a run that stops early is compared at its own steps.
        "predicted_seconds": round(forecast.seconds * result.step / max(1, resolved.total_steps), 1),
        "calibration": forecast.calibration,
        "loop_seconds": round(sink.loop_seconds, 1),
        "stopped_early": any("Stopped early" in getattr(e, "message", "") for e in sink.events),
    }


def sweep_points(name: str, quick: bool) -> list[dict[str, Any]]:
    budgets = TASKS[name].budgets[0 if quick else 1]
    return [  # auto's multiplier over every budget first, so a sweep cut short still spans the budgets
        {"learning_rate_multiplier": lr, "n_epochs": epochs, "batch_size": batch}
        for lr in sorted(LR_MULTIPLIERS, key=lambda m: abs(math.log(m / 0.1)))
        for epochs, batch in budgets
    ]


def key(row: Row) -> tuple[Any, ...]:
    """One auto run per task and size (a rule change replaces it); one run per sweep point."""
    if row["setting"] == "auto":
        return row["task"], row["quick"], "auto"
    return row["task"], row["quick"], "sweep", row["n_epochs"], row["batch_size"], row["lr_multiplier"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several bench processes (one per task) share the file
        yield


def load(path: Path) -> list[Row]:
    return json.loads(path.read_text())["rows"] if path.exists() else []


def save(path: Path, row: Row) -> None:
    """Merge one run into the results file (replacing an earlier run of the same setting)."""
    with _locked(path):
        rows = [r for r in load(path) if key(r) != key(row)] + [row]
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps({"rows": rows}, indent=2))
        staging.replace(path)


def run_task(name: str, args: argparse.Namespace, root: Path) -> None:
    train_rows, valid_rows, test_rows = splits(name, TASKS[name], args.quick)
    files = (write(root / f"{name}-train.jsonl", train_rows), write(root / f"{name}-valid.jsonl", valid_rows))
    done = {key(r) for r in load(args.out)} if args.resume else set()
    grid = args.points if args.points is not None else sweep_points(name, args.quick)
    points = ([] if args.sweep_only else [{}]) + ([] if args.auto_only else grid)
    for hp in points:
        planned = (name, args.quick, "auto")
        if hp:
            planned = (
                name,
                args.quick,
                "sweep",
                hp["n_epochs"],
                hp["batch_size"],
                hp["learning_rate_multiplier"],
            )
        if planned in done:
            continue
        row = run(name, files, test_rows, args, **hp)
        save(args.out, row)
        print(line(row), file=sys.stderr, flush=True)


def write(path: Path, rows: list[Row]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- the table ---------------------------------------------------------------------------------------

HEADER = (
    "task", "setting", "epochs", "batch", "lr_mult", "steps", "score", "exact", "val_loss", "train_s",
    "loop_s", "pred_s", "pred/act",
)  # fmt: skip


def line(row: Row) -> str:
    exact = f"{row['exact_match']:.3f}" if "exact_match" in row else ""
    val = "" if row["validation_loss"] is None else f"{row['validation_loss']:.4f}"
    steps = f"{row['steps']}" + ("*" if row.get("stopped_early") else "")
    ratio = _ratio(row)
    return (
        f"{row['task']:<10} {row['setting']:<6} {row['n_epochs']:>6} {row['batch_size']:>5} "
        f"{row['lr_multiplier']:>7.3g} {steps:>6} {row['score']:>6.3f} {exact:>6} {val:>8} "
        f"{row['train_seconds']:>7.1f} {row.get('loop_seconds', 0):>7.1f} "
        f"{row.get('predicted_seconds', 0):>7.1f} {'' if ratio is None else f'{ratio:.2f}':>8}"
    )


def _ratio(row: Row) -> float | None:
    """The preflight's predicted loop time over the actual one (rows of before the preflight have none)."""
    if not row.get("loop_seconds") or row.get("predicted_seconds") is None:
        return None
    return float(row["predicted_seconds"] / row["loop_seconds"])


def estimate_summary(rows: list[Row]) -> str:
    ratios = [r for r in map(_ratio, rows) if r is not None]
    within = sum(0.7 <= r <= 1.3 for r in ratios)
    return f"preflight time within ±30% of the loop's on {within} of {len(ratios)} runs"


def summary(rows: list[Row], quick: bool) -> list[str]:
    """Per task: auto against the sweep's best, with the two targets (2% of the score, 1.5x the time)."""
    lines = []
    for name in TASKS:
        mine = [r for r in rows if r["task"] == name and r["quick"] == quick]
        auto = next((r for r in mine if r["setting"] == "auto"), None)
        sweep = [r for r in mine if r["setting"] == "sweep"]
        if auto is None or not sweep:
            continue
        best = max(sweep, key=lambda r: (r["score"], -r["train_seconds"]))
        close = auto["score"] >= 0.98 * best["score"]
        ratio = auto["train_seconds"] / max(1e-9, best["train_seconds"])
        lines.append(
            f"{name:<10} auto {auto['score']:.3f} in {auto['train_seconds']:.0f} s; "
            f"sweep best {best['score']:.3f} in {best['train_seconds']:.0f} s ({len(sweep)} points): "
            f"score {'ok' if close else 'MISS'}, time x{ratio:.2f} {'ok' if ratio <= 1.5 else 'MISS'}"
        )
    return lines


def print_table(path: Path, quick: bool, tasks: list[str]) -> None:
    rows = [r for r in load(path) if r["quick"] == quick and r["task"] in tasks]
    rows.sort(key=lambda r: (list(TASKS).index(r["task"]), r["setting"] != "auto", r["train_seconds"]))
    print("{:<10} {:<6} {:>6} {:>5} {:>7} {:>6} {:>6} {:>6} {:>8} {:>7} {:>7} {:>7} {:>8}".format(*HEADER))
    for row in rows:
        print(line(row))
    print("\n".join(summary(rows, quick)))
    print(estimate_summary(rows))
    print("(* stopped early on the validation loss; score: accuracy, field accuracy, word F1 or exact match)")


def point(text: str) -> dict[str, Any]:
    """A sweep point from the command line: LR_MULTIPLIER:N_EPOCHS:BATCH_SIZE, e.g. 0.03:8:8."""
    try:
        lr, epochs, batch = text.split(":")
        return {"learning_rate_multiplier": float(lr), "n_epochs": int(epochs), "batch_size": int(batch)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LR:EPOCHS:BATCH, e.g. 0.03:8:8") from None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller files and sweep budgets")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--auto-only", action="store_true", help="no sweep: check the auto rule alone")
    parser.add_argument("--sweep-only", action="store_true", help="the sweep without auto")
    parser.add_argument("--points", nargs="+", type=point, help="sweep points instead of the task's grid")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    parser.add_argument("--resume", action="store_true", help="skip runs the results file already has")
    parser.add_argument("--table", action="store_true", help="print the results file's table and exit")
    args = parser.parse_args()
    if not args.table:
        with tempfile.TemporaryDirectory() as tmp:
            args.data_dir = Path(tmp) / "data"
            for name in args.tasks:
                run_task(name, args, Path(tmp))
    print_table(args.out, args.quick, args.tasks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
