"""Many LoRA adapters on one base, mixed in one forward pass (S-LoRA / Punica style, in plain torch).

Each targeted linear of the base is wrapped once by a `LoraLinear` that holds every loaded adapter's
low-rank pair stacked by slot. A pass names each row's slot (0: no adapter, the base itself); the base
weight is applied once to the whole batch, then each row adds its own adapter's update: the rows' pairs are
gathered and applied with two batched matmuls, so the cost does not grow with the number of distinct
adapters in the batch. The gathered pairs are kept while the batch's rows stay the same (a decode batch
between membership changes), so a steady decode step gathers nothing. Slots are written and freed only under
the base's mutex, which every pass holds too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from tuneforge.errors import ModelUnavailable

_PREFIX = "base_model.model."  # how PEFT names the wrapped model's modules in a saved adapter
_A, _B = ".lora_A.weight", ".lora_B.weight"
NO_ADAPTER = 0  # the slot of rows that run the base alone


# Gathered pairs are kept between passes only while they take at most this much: they cost rows x (one
# adapter's bytes), which on the built-in models is a few MB; on a large base the copies are freed per pass.
_KEEP_GATHERED_BYTES = 64 * 2**20


@dataclass
class Plan:
    """The current pass's row-to-slot map, shared by every wrapped linear of one base."""

    slots: torch.Tensor | None = None  # (batch,) slot per row; None: no row has an adapter
    single: int | None = None  # every row uses this one slot: a plain matmul, no gather
    rows_id: int = 0  # changes with the row-to-slot map: each wrapped linear's key to its gathered pairs
    keep_gathered: bool = True  # whether the gathered pairs fit `_KEEP_GATHERED_BYTES`


class LoraLinear(nn.Module):
    """A base linear plus stacked adapters, stored the way a pass multiplies them: `a[slot]` is (in, rank),
    `b[slot]` is (rank, out), scale folded into `b`. Ranks differ between adapters: smaller ones are
    zero-padded, which adds exact zeros."""

    def __init__(self, base: nn.Linear | Conv1D, plan: Plan) -> None:
        super().__init__()
        self.base = base
        self.plan = plan
        weight = base.weight
        in_features, out_features = _features(base)
        self.a = torch.zeros(1, in_features, 0, dtype=weight.dtype, device=weight.device)
        self.b = torch.zeros(1, 0, out_features, dtype=weight.dtype, device=weight.device)
        self._gathered: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (rows_id, a rows, b rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        plan = self.plan
        if plan.single is not None:
            return out.add_((x @ self.a[plan.single]) @ self.b[plan.single])
        if plan.slots is None:
            return out
        a, b = self._rows_pairs(plan)
        rows = x.reshape(x.shape[0], -1, x.shape[-1])  # (batch, tokens, in): one small matmul per row
        return torch.baddbmm(out.reshape(*rows.shape[:2], -1), torch.bmm(rows, a), b).view_as(out)

    def _rows_pairs(self, plan: Plan) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's (A, B), gathered once per row-to-slot map: a decode batch reuses them every step."""
        cached = self._gathered
        if cached is not None and cached[0] == plan.rows_id:
            return cached[1], cached[2]
        assert plan.slots is not None
        a, b = self.a.index_select(0, plan.slots), self.b.index_select(0, plan.slots)
        self._gathered = (plan.rows_id, a, b) if plan.keep_gathered else None
        return a, b

    def put(self, slot: int, a: torch.Tensor, b: torch.Tensor) -> None:
        self.fit(slot + 1, a.shape[0])
        self._gathered = None
        self.a[slot].zero_()
        self.b[slot].zero_()
        self.a[slot, :, : a.shape[0]] = a.T
        self.b[slot, : b.shape[1]] = b.T

    def clear(self, slot: int) -> None:
        self._gathered = None
        if slot < len(self.a):
            self.a[slot].zero_()
            self.b[slot].zero_()

    def fit(self, slots: int, rank: int) -> None:
        """Grow the stacks (doubling the slot count, so n loads copy O(n) in all) to hold `slots`, `rank`."""
        have_slots, have_rank = self.a.shape[0], self.a.shape[2]
        if slots <= have_slots and rank <= have_rank:
            return
        new_slots = max(have_slots, slots) if slots <= have_slots else max(slots, 2 * have_slots)
        new_rank = max(have_rank, rank)
        a = self.a.new_zeros(new_slots, self.a.shape[1], new_rank)
        b = self.b.new_zeros(new_slots, new_rank, self.b.shape[2])
        a[:have_slots, :, :have_rank] = self.a
        b[:have_slots, :have_rank] = self.b
        self.a, self.b = a, b

    def slot_bytes(self) -> int:
        return (self.a[0].numel() + self.b[0].numel()) * self.a.element_size()

    def extra_bytes(self) -> int:
        return self.a.numel() * self.a.element_size() + self.b.numel() * self.b.element_size()


def _features(base: nn.Linear | Conv1D) -> tuple[int, int]:
    """(in, out) of a linear layer. GPT-2's Conv1D is a linear layer whose weight is stored (in, out);
    PEFT's adapter for it is shaped as for nn.Linear, A (rank, in) and B (out, rank)."""
    if isinstance(base, Conv1D):
        return base.weight.shape[0], base.weight.shape[1]
    return base.in_features, base.out_features


@dataclass
class AdapterWeights:
    """One adapter read from disk: per module path, (A, B * scale)."""

    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]
    rank: int

    @property
    def nbytes(self) -> int:
        return sum(
            a.numel() * a.element_size() + b.numel() * b.element_size() for a, b in self.pairs.values()
        )


def read_adapter(where: Path, dtype: torch.dtype, device: torch.device) -> AdapterWeights:
    """A PEFT LoRA adapter directory as plain tensors, the scale folded into B. Anything but LoRA on
    linear layers (DoRA, embeddings, modules_to_save) is refused with a clear error rather than served
    wrong."""
    from safetensors.torch import load_file

    config = json.loads((where / "adapter_config.json").read_text())
    if config.get("use_dora") or config.get("modules_to_save"):
        raise ModelUnavailable(f"The adapter at {where.name} uses DoRA or modules_to_save", param="model")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    tensors = load_file(str(where / "adapter_model.safetensors"))
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, a in tensors.items():
        if not key.endswith(_A):
            if not key.endswith(_B):
                raise ModelUnavailable(
                    f"The adapter at {where.name} holds {key}: not a LoRA linear", param="model"
                )
            continue
        path = key.removeprefix(_PREFIX).removesuffix(_A)
        b = tensors[key.removesuffix(_A) + _B]
        pairs[path] = (a.to(device, dtype), (b.float() * scale).to(device, dtype))
    return AdapterWeights(pairs, rank)


@dataclass(eq=False)
class MultiLora:
    """The adapters attached to one base model: its wrapped linears and which slot each adapter holds."""

    model: nn.Module
    plan: Plan = field(default_factory=Plan)
    modules: dict[str, LoraLinear] = field(default_factory=dict)
    _free: list[int] = field(default_factory=list)
    _next: int = NO_ADAPTER + 1
    _last_rows: tuple[int, ...] = ()  # the row-to-slot map `plan.rows_id` stands for
    _rows_tensor: torch.Tensor | None = None  # and as a tensor

    def attach(self, weights: AdapterWeights) -> int:
        """Write an adapter into a free slot (the caller holds the base's mutex) and return the slot."""
        slot = self._free.pop() if self._free else self._take_next()
        for path, (a, b) in weights.pairs.items():
            self._wrapped(path).put(slot, a, b)
        for module in self.modules.values():  # every stack covers every slot, so a gather never misses
            module.fit(self._next, 0)
        return slot

    def detach(self, slot: int) -> None:
        for module in self.modules.values():
            module.clear(slot)
        self._free.append(slot)

    def set_rows(self, slots: list[int], device: torch.device) -> None:
        plan = self.plan
        distinct = set(slots)
        if distinct == {NO_ADAPTER}:
            plan.slots, plan.single = None, None
        elif len(distinct) == 1:
            plan.slots, plan.single = None, slots[0]
        else:
            rows = tuple(slots)
            if rows != self._last_rows:  # new rows: every wrapped linear gathers its pairs afresh
                self._last_rows, self._rows_tensor = rows, torch.tensor(slots, device=device)
                plan.rows_id += 1
                plan.keep_gathered = len(rows) * self._slot_bytes() <= _KEEP_GATHERED_BYTES
            plan.slots, plan.single = self._rows_tensor, None

    def stack_bytes(self) -> int:
        return sum(m.extra_bytes() for m in self.modules.values())

    def _slot_bytes(self) -> int:
        return sum(m.slot_bytes() for m in self.modules.values())

    def _take_next(self) -> int:
        self._next += 1
        return self._next - 1

    def _wrapped(self, path: str) -> LoraLinear:
        module = self.modules.get(path)
        if module is not None:
            return module
        parent_path, _, leaf = path.rpartition(".")
        parent = self.model.get_submodule(parent_path) if parent_path else self.model
        linear = getattr(parent, leaf)
        if not isinstance(linear, nn.Linear | Conv1D):
            raise ModelUnavailable(f"The adapter targets {path}, which is not a linear layer", param="model")
        module = LoraLinear(linear, self.plan)
        setattr(parent, leaf, module)
        self.modules[path] = module
        return module


def run_rows(lora: MultiLora | None, model: Any, slots: list[int], **inputs: Any) -> Any:
    """One forward pass of `model` in which row i applies adapter slot `slots[i]`."""
    if lora is not None:
        lora.set_rows(slots, inputs["input_ids"].device)
    try:
        return model(**inputs)
    finally:
        if lora is not None:
            lora.plan.slots, lora.plan.single = None, None
