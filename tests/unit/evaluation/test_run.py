"""The evaluation loop over a scripted completer: label probabilities come from echoed log-probabilities
after the prompt, predictions are their argmax, and the metrics are those of the same predictions."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from tuneforge.errors import InvalidRequest
from tuneforge.evaluation.examples import EvalExample, load_examples
from tuneforge.evaluation.models import TrainedWith
from tuneforge.evaluation.requests import ChatRequest, CompletionRequest
from tuneforge.evaluation.run import EvalOptions, compare, evaluate

EOS = "<|endoftext|>"


class ScriptedCompleter:
    """Echo requests: the prompt as one token, then word tokens (and end-of-text) whose log-probabilities
    the script gives (a float: the first token's, the others 0). Generation: the scripted answer."""

    def __init__(self, scores: dict[str, Any], answers: dict[str, str] | None = None) -> None:
        self.scores, self.answers, self.requests = scores, answers or {}, []  # type: ignore[var-annotated]

    async def complete(self, req: CompletionRequest) -> dict[str, Any]:
        self.requests.append(req)
        texts = req.prompt if isinstance(req.prompt, list) else [req.prompt]
        if not req.echo:
            return {"choices": [{"index": 0, "text": self.answers[texts[0]], "finish_reason": "stop"}]}
        choices = []
        for index, text in enumerate(texts):
            prompt, rest = text.split("|", 1)
            prompt += "|"
            tokens = re.findall(r"<\|endoftext\|>|\s?[^\s<]+", rest)
            script = self.scores[text]
            values = script if isinstance(script, list) else [script] + [0.0] * (len(tokens) - 1)
            offsets = [len(prompt) + sum(map(len, tokens[:k])) for k in range(len(tokens))]
            logprobs = {
                "tokens": [prompt, *tokens],
                "token_logprobs": [None, *values],
                "text_offset": [0, *offsets],
            }
            choices.append({"index": index, "text": text, "logprobs": logprobs})
        return {"choices": choices[::-1]}  # out of order: the evaluation must sort by index

    async def chat(self, req: ChatRequest) -> dict[str, Any]:
        return {"choices": [{"index": 0, "message": {"content": self.answers[req.messages[-1].content]}}]}


def test_classification_probabilities_predictions_and_metrics() -> None:
    examples = [
        EvalExample(reference=gold, prompt=f"q{i}|") for i, gold in enumerate([" a", " b", " a", " b"])
    ]
    logits = {0: (-1.0, -2.0), 1: (-0.5, -0.1), 2: (-3.0, -0.2), 3: (-2.0, -2.5)}
    scores = {f"q{i}| a{EOS}": la for i, (la, _) in logits.items()}
    scores |= {f"q{i}| b{EOS}": lb for i, (_, lb) in logits.items()}
    completer = ScriptedCompleter(scores)

    report = asyncio.run(
        evaluate(completer, "m", examples, EvalOptions(), TrainedWith(labels=(" a", " b"), eos_token=EOS))
    )

    raw = np.array([logits[i] for i in range(4)])
    expected = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    got = np.array([row["probabilities"] for row in report["predictions"]])
    assert got == pytest.approx(expected, abs=1e-6)
    assert [row["prediction"] for row in report["predictions"]] == [" a", " b", " b", " a"]
    truth, pred = [0, 1, 0, 1], expected.argmax(axis=1)
    assert report["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert report["metrics"]["macro"]["f1"] == pytest.approx(skm.f1_score(truth, pred, average="macro"))
    assert report["metrics"]["calibration"]["log_loss"] == pytest.approx(skm.log_loss(truth, expected))
    assert all(r.echo and r.max_tokens == 0 and r.logprobs == 0 for r in completer.requests)


def test_labels_sharing_a_first_token_are_scored_whole_with_end_of_text() -> None:
    examples = [EvalExample(reference=" yes", prompt="q|"), EvalExample(reference=" yes please", prompt="r|")]
    scores = {
        f"q| yes{EOS}": [-0.1, -0.2],  # " yes", eos
        f"q| yes please{EOS}": [-0.1, -1.0, -0.3],  # " yes", " please", eos
        f"r| yes{EOS}": [-0.1, -3.0],
        f"r| yes please{EOS}": [-0.1, -0.5, -0.5],
    }
    report = asyncio.run(
        evaluate(ScriptedCompleter(scores), "m", examples, EvalOptions(), TrainedWith(eos_token=EOS))
    )
    first = np.exp([-0.3, -1.4]) / np.exp([-0.3, -1.4]).sum()
    second = np.exp([-3.1, -1.1]) / np.exp([-3.1, -1.1]).sum()
    got = [row["probabilities"] for row in report["predictions"]]
    assert np.array(got) == pytest.approx(np.stack([first, second]), abs=1e-6)
    assert report["metrics"]["accuracy"] == 1.0


def test_compare_scores_both_models_on_one_label_set() -> None:
    examples = [EvalExample(reference=" yes", prompt="x|"), EvalExample(reference=" no", prompt="y|")]
    scores = {f"{p}|{label}": -1.0 for p in "xy" for label in (" yes", " no", " maybe")}
    result = asyncio.run(
        compare(
            ScriptedCompleter(scores),
            [("base", TrainedWith()), ("tuned", TrainedWith(labels=(" maybe",)))],
            examples,
            EvalOptions(),
        )
    )
    assert [r["model"] for r in result["reports"]] == ["base", "tuned"]
    assert all(r["metrics"]["labels"] == [" maybe", " yes", " no"] for r in result["reports"])


def test_generation_strips_the_trained_stop_sequence_from_references() -> None:
    examples = [
        EvalExample(reference=" Paris END", prompt="capital|"),
        EvalExample(reference=" Rome END", prompt="it|"),
    ]
    completer = ScriptedCompleter({}, answers={"capital|": " Paris", "it|": " Milan"})
    report = asyncio.run(
        evaluate(completer, "m", examples, EvalOptions(task="generation"), TrainedWith(stop=(" END",)))
    )
    assert report["metrics"]["exact_match"] == 0.5
    assert report["predictions"][0] == {"reference": " Paris", "prediction": " Paris"}
    assert completer.requests[0].max_tokens == len(" Paris") + 16 and completer.requests[0].temperature == 0


def test_chat_classification_matches_answers_to_labels() -> None:
    examples = [
        EvalExample(reference="spam", messages=(("user", "buy now"),)),
        EvalExample(reference="ham", messages=(("user", "hi mum"),)),
    ]
    completer = ScriptedCompleter({}, answers={"buy now": "spam", "hi mum": "no idea"})
    report = asyncio.run(evaluate(completer, "m", examples, EvalOptions()))
    assert [r["prediction"] for r in report["predictions"]] == ["spam", "<other>"]
    assert report["metrics"]["accuracy"] == 0.5 and report["metrics"]["calibration"] is None


def test_load_examples_reads_both_formats_and_names_bad_lines(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p ->", "completion": " c"}) + "\n")
    assert load_examples(pairs) == [EvalExample(reference=" c", prompt="p ->")]
    chat = tmp_path / "chat.jsonl"
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    chat.write_text(json.dumps({"messages": messages}) + "\n")
    assert load_examples(chat) == [EvalExample(reference="a", messages=(("system", "s"), ("user", "u")))]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "completion": " y"}\n{"prompt": 3}\n')
    with pytest.raises(InvalidRequest, match="line 2"):
        load_examples(bad)
