"""Classification metrics on the validation file: the model's probability of each class label after each
prompt, renormalised over the labels, scored against the gold completion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tuneforge.data.records import Record
from tuneforge.errors import InvalidRequest
from tuneforge.spec import ClassificationOptions
from tuneforge.training import formats, metrics
from tuneforge.training.batches import collate
from tuneforge.training.formats import Example
from tuneforge.training.metrics import ClassificationSpec


def label_spec(
    options: ClassificationOptions | None, records: Sequence[Record], valid: Sequence[Record], tokenizer: Any
) -> ClassificationSpec | None:
    """The labels (the training file's distinct completions) checked against the options; None when off."""
    if options is None:
        return None
    if not valid:
        raise InvalidRequest("Classification metrics need a validation file.", param="validation_file")
    labels = formats.class_labels(records)
    positive = _positive_label(options.positive_class, labels)
    expected = options.n_classes or (2 if positive is not None else None)
    if expected is not None and len(labels) != expected:
        raise InvalidRequest(
            f"classification_n_classes is {expected} but the training file has "
            f"{len(labels)} distinct completions.",
            param="classification_n_classes",
        )
    label_ids = [
        [*tokenizer(label, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id] for label in labels
    ]
    return ClassificationSpec(labels, label_ids, positive, list(options.betas))


def _positive_label(positive: str | None, labels: list[str]) -> str | None:
    """The label the user named, allowing for the leading space completions usually start with."""
    if positive is None or positive in labels:
        return positive
    stripped = {label.strip(): label for label in labels}
    if positive.strip() not in stripped:
        raise InvalidRequest(
            f"The positive class {positive!r} is not a completion of the training file "
            f"(labels: {labels[:10]}).",
            param="classification_positive_class",
        )
    return stripped[positive.strip()]


class LabelScorer:
    """Collects each validation example's label probabilities over one validation pass. Labels that start
    with distinct tokens are told apart by the first completion token alone, whose distribution comes
    free with the pass's logits; labels sharing a first token are scored whole afterwards."""

    def __init__(self, spec: ClassificationSpec, valid: Sequence[Example]) -> None:
        self.spec, self.valid = spec, valid
        self.first_ids = [ids[0] for ids in spec.label_ids]
        self.by_first_token = len(set(self.first_ids)) == len(self.first_ids)
        self.probabilities = np.full((len(valid), len(spec.labels)), np.nan)

    def add(self, chunk: list[int], logits: torch.Tensor) -> None:
        if not self.by_first_token:
            return
        for row, index in enumerate(chunk):
            position = self.valid[index].prompt_len - 1
            if position < 0:
                self.probabilities[index] = 1.0 / len(self.first_ids)
                continue
            self.probabilities[index] = (
                logits[row, position, self.first_ids].float().softmax(-1).cpu().numpy()
            )

    def metrics(self, model: Any, pad_id: int, device: torch.device) -> dict[str, float]:
        if not self.by_first_token:
            self.probabilities = self._whole_label_probabilities(model, pad_id, device)
        gold = [e.completion for e in self.valid]
        return metrics.classification_metrics(self.spec, gold, self.probabilities)

    def _whole_label_probabilities(self, model: Any, pad_id: int, device: torch.device) -> np.ndarray:
        """Each label's whole completion (with eos) scored after the prompt."""
        out = np.zeros((len(self.valid), len(self.spec.labels)))
        for index, example in enumerate(self.valid):
            prompt = example.ids[: example.prompt_len]
            candidates = [
                Example(
                    prompt + ids,
                    [0.0] * len(prompt) + [1.0] * len(ids),
                    [False] * len(prompt) + [True] * len(ids),
                    len(prompt),
                    "",
                )
                for ids in self.spec.label_ids
            ]
            batch = collate(candidates, pad_id).to(device)
            logits = model(input_ids=batch.inputs, use_cache=False).logits
            logprob = -(metrics.token_losses(logits, batch.labels) * batch.weights).sum(dim=1)
            out[index] = logprob.softmax(-1).cpu().numpy()
        return out
