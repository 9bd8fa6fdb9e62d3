"""The golden report: old answers are the references, new ones the predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.errors import InvalidFile
from tuneforge.migration.golden import GoldenLine, compare, read_golden, render_png, render_table


def lines(n: int) -> list[GoldenLine]:
    return [GoldenLine(prompt=f"p{i}", messages=None, max_tokens=2) for i in range(n)]


def test_classifier_agreement_and_confusion_between_old_and_new_labels() -> None:
    old = [" yes", " no", " yes", " no", " yes", " no", " yes", " no"]
    new = [" yes", " no", " yes", " yes", " yes", " no", " yes", " no"]
    report = compare(lines(8), old, new)
    assert report["task"] == "classification" and report["agreement"] == 7 / 8
    assert report["confusion"] == {"labels": ["no", "yes"], "matrix": [[3, 1], [0, 4]]}
    assert [d["line"] for d in report["most_different"]] == [4]
    table = render_table("old -> new", report)
    assert "agreement    0.875" in table and "line 4: ' no' -> ' yes'" in table
    assert "BLEU" not in table  # labels have no 4-grams: BLEU would read 0 however well they agree
    assert render_png("old -> new", report)[:4] == b"\x89PNG"


def test_free_text_gets_bleu_rouge_and_the_worst_lines_first() -> None:
    old = ["the cat sat on the mat", "a quick brown fox jumps", "hello there my friend", "it is raining"]
    new = ["the cat sat on the mat", "a quick brown dog jumps", "goodbye", "it is raining"]
    report = compare(lines(4), old, new)
    assert report["task"] == "generation" and "confusion" not in report
    assert report["exact_match"] == 0.5 and 0 < report["bleu"] < 100
    assert [d["line"] for d in report["most_different"]] == [3, 2]
    assert "BLEU" in render_table("t", report) and "agreement" not in render_table("t", report)
    assert render_png("t", report)[:4] == b"\x89PNG"


def test_golden_file_lines_are_prompts_or_chats(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(
        json.dumps({"prompt": "hi ->"})
        + "\n\n"
        + json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 3})
        + "\n"
    )
    read = read_golden(path)
    assert [(g.prompt, g.max_tokens, g.text) for g in read] == [("hi ->", 64, "hi ->"), (None, 3, "x")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a"}\nnot json\n', "golden.jsonl, line 2: not a JSON object"),
        ('{"text": "a"}\n', 'golden.jsonl, line 1: needs "prompt"'),
        ('{"prompt": "a", "max_tokens": 0}\n', "golden.jsonl, line 1, field 'max_tokens'"),
        ("\n", "golden.jsonl: no prompts"),
    ],
)
def test_bad_golden_lines_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidFile) as raised:
        read_golden(path)
    assert raised.value.message.startswith(message)
