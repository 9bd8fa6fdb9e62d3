"""Golden answers: the source model's replies to a fixed set of prompts, recorded before anything trains,
and the same prompts asked of the migrated model once it has, compared side by side (agreement and the
old-vs-new label confusion for classifiers; exact match, BLEU and ROUGE-L for free text)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from openai import OpenAI, omit

from tuneforge.errors import InvalidFile
from tuneforge.training.hyperparameters import looks_like_classifier

DEFAULT_MAX_TOKENS = 64  # enough for a short reply; a classifier's line sets its own (e.g. 1 or 2)
TOP_LOGPROBS = 5
WORST_LINES = 10  # the lines where old and new differ most, shown in the report


@dataclass(frozen=True)
class GoldenLine:
    prompt: str | None
    messages: list[dict[str, Any]] | None
    max_tokens: int

    @property
    def text(self) -> str:
        return self.prompt if self.prompt is not None else (self.messages or [{}])[-1].get("content") or ""


def read_golden(path: Path) -> list[GoldenLine]:
    lines = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            raise InvalidFile("not a JSON object", file=path.name, line=number) from None
        lines.append(_golden_line(row, path.name, number))
    if not lines:
        raise InvalidFile("no prompts", file=path.name)
    return lines


def _golden_line(row: Any, name: str, number: int) -> GoldenLine:
    if not isinstance(row, dict) or not (
        isinstance(row.get("prompt"), str) or isinstance(row.get("messages"), list)
    ):
        raise InvalidFile('needs "prompt" (a string) or "messages" (a list)', file=name, line=number)
    max_tokens = row.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidFile("must be a positive integer", file=name, line=number, field="max_tokens")
    prompt = row.get("prompt") if isinstance(row.get("prompt"), str) else None
    return GoldenLine(
        prompt=prompt, messages=None if prompt is not None else row["messages"], max_tokens=max_tokens
    )


def ask(client: OpenAI, model: str, lines: list[GoldenLine]) -> list[dict[str, Any]]:
    """Greedy answers (temperature 0), with the top logprobs of each token where the server gives them."""
    return [_ask_one(client, model, line) for line in lines]


def _ask_one(client: OpenAI, model: str, line: GoldenLine) -> dict[str, Any]:
    for logprobs in (True, False):  # a server without logprobs refuses them: ask again without
        try:
            if line.prompt is not None:
                return _completion(client, model, line, logprobs)
            return _chat(client, model, line, logprobs)
        except openai.BadRequestError:
            if not logprobs:
                raise
    raise AssertionError("unreachable")


def _completion(client: OpenAI, model: str, line: GoldenLine, logprobs: bool) -> dict[str, Any]:
    choice = client.completions.create(
        model=model,
        prompt=line.prompt or "",
        max_tokens=line.max_tokens,
        temperature=0,
        logprobs=TOP_LOGPROBS if logprobs else omit,
    ).choices[0]
    top = choice.logprobs.top_logprobs if choice.logprobs else None
    return {"text": choice.text, "top_logprobs": top}


def _chat(client: OpenAI, model: str, line: GoldenLine, logprobs: bool) -> dict[str, Any]:
    choice = client.chat.completions.create(
        model=model,
        messages=line.messages,  # type: ignore[arg-type]
        max_tokens=line.max_tokens,
        temperature=0,
        logprobs=True if logprobs else omit,
        top_logprobs=TOP_LOGPROBS if logprobs else omit,
    ).choices[0]
    content = choice.logprobs.content if choice.logprobs else None
    top = [{t.token: t.logprob for t in c.top_logprobs} for c in content] if content else None
    return {"text": choice.message.content or "", "top_logprobs": top}


def record(path: Path, client: OpenAI, model: str, lines: list[GoldenLine]) -> list[dict[str, Any]]:
    """The answers stored at `path`; asked (and stored atomically) only if they are not there yet."""
    if path.is_file():
        return [json.loads(row) for row in path.read_text().splitlines() if row.strip()]
    answers = ask(client, model, lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text("".join(json.dumps({"model": model, **a}) + "\n" for a in answers))
    os.replace(staging, path)
    return answers


def compare(lines: list[GoldenLine], old: list[str], new: list[str]) -> dict[str, Any]:
    """The report: old answers are the references, new ones the predictions."""
    from rouge_score import rouge_scorer

    from tuneforge.evaluation.metrics import generation_metrics

    old_s, new_s = [o.strip() for o in old], [n.strip() for n in new]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    similarity = [
        scorer.score(o, n)["rougeL"].fmeasure if o or n else 1.0 for o, n in zip(old_s, new_s, strict=True)
    ]
    classifier = looks_like_classifier(old_s)
    report: dict[str, Any] = {
        "n": len(lines),
        "task": "classification" if classifier else "generation",
        "agreement": sum(o == n for o, n in zip(old_s, new_s, strict=True)) / len(lines),
        **generation_metrics(new_s, old_s),
    }
    if classifier:
        report["confusion"] = _confusion(old_s, new_s)
    order = sorted(range(len(lines)), key=lambda i: (similarity[i], i))[:WORST_LINES]
    report["most_different"] = [
        {"line": i + 1, "prompt": lines[i].text, "old": old[i], "new": new[i], "rougeL_f1": similarity[i]}
        for i in order
        if old_s[i] != new_s[i]
    ]
    return report


def _confusion(old: list[str], new: list[str]) -> dict[str, Any]:
    """Rows: the source model's label; columns: the migrated model's (labels only the new one says too)."""
    labels = sorted(set(old)) + sorted(set(new) - set(old))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for o, n in zip(old, new, strict=True):
        matrix[index[o]][index[n]] += 1
    return {"labels": labels, "matrix": matrix}


def render_table(title: str, report: dict[str, Any]) -> str:
    rows = [("lines", f"{report['n']}"), ("task", report["task"]), *_scores(report)]
    out = [title, *(f"  {name:<12} {value}" for name, value in rows)]
    if "confusion" in report:
        labels = report["confusion"]["labels"]
        out.append("  confusion (rows: source model, columns: migrated model)")
        width = max(len(repr(label)) for label in labels) + 2
        out.append(" " * (width + 2) + "".join(f"{label!r:>{width}}" for label in labels))
        for label, row in zip(labels, report["confusion"]["matrix"], strict=True):
            out.append(f"  {label!r:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    for line in report["most_different"][:5]:
        out.append(
            f"  line {line['line']}: {line['old']!r} -> {line['new']!r} (ROUGE-L {line['rougeL_f1']:.2f})"
        )
    return "\n".join(out) + "\n"


def _scores(report: dict[str, Any]) -> list[tuple[str, str]]:
    """A classifier's answers are a word or two: BLEU's 4-grams do not exist there (it reads 0 even when
    every label agrees), so labels are judged by agreement alone; free text by overlap."""
    if report["task"] == "classification":
        return [("agreement", f"{report['agreement']:.3f}")]
    return [
        ("exact match", f"{report['exact_match']:.3f}"),
        ("BLEU", f"{report['bleu']:.1f}"),
        ("ROUGE-L F1", f"{report['rougeL']['f1']:.3f}"),
    ]


def render_png(title: str, report: dict[str, Any]) -> bytes:
    """Left: the headline scores; right: the old-vs-new confusion (classifiers) or the worst lines."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # not pyplot: no global state

    figure = Figure(figsize=(12, 5), dpi=100)
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    scores, detail = figure.subplots(1, 2)
    shown = _scores(report)
    scale = {"BLEU": 100.0}  # BLEU is 0-100; the others 0-1
    scores.bar([n for n, _ in shown], [float(v) / scale.get(n, 1.0) for n, v in shown], color="tab:blue")
    scores.set_ylim(0, 1)
    scores.set_title(f"{report['n']} lines ({report['task']})")
    if "confusion" in report:
        labels = [repr(label) for label in report["confusion"]["labels"]]
        detail.imshow(report["confusion"]["matrix"], cmap="Blues")
        detail.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        detail.set_yticks(range(len(labels)), labels)
        detail.set_xlabel("migrated model")
        detail.set_ylabel("source model")
        peak = max(max(row) for row in report["confusion"]["matrix"])
        for i, row in enumerate(report["confusion"]["matrix"]):
            for j, count in enumerate(row):
                color = "white" if count > peak / 2 else "black"  # readable on the dark cells
                detail.text(j, i, str(count), ha="center", va="center", color=color)
    else:
        worst = report["most_different"]
        detail.barh([f"line {w['line']}" for w in worst], [w["rougeL_f1"] for w in worst], color="tab:orange")
        detail.set_xlim(0, 1)
        detail.set_title("lines that differ most (ROUGE-L F1)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
