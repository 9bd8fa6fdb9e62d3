"""The engine's adapters before mixed batches, kept as a benchmark baseline (`inference_adapter_batching=
peft_switch`): PEFT's multi-adapter model with one adapter active at a time, switched by `set_adapter`
before a pass whose model differs from the last pass's. The scheduler groups these passes per served model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from tuneforge.inference.lora import NO_ADAPTER


class PeftSwitch:
    """The adapters of one base as PEFT holds them: each in its own named LoRA layers, one active."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model  # PEFT injects its LoRA layers into these modules in place
        self._peft: Any = None  # peft.PeftModel once the first adapter is attached
        self._names: dict[int, str] = {}  # slot -> PEFT adapter name
        self._next = NO_ADAPTER + 1

    def attach(self, where: Path) -> int:
        """Load the adapter at `where` (the caller holds the base's mutex) and return its slot."""
        from peft import PeftModel

        slot, self._next = self._next, self._next + 1
        name = f"slot{slot}"  # PEFT adapter names become module attribute keys: safe characters only
        if self._peft is None:
            self._peft = PeftModel.from_pretrained(self.model, str(where), adapter_name=name).eval()
        else:
            self._peft.load_adapter(str(where), adapter_name=name)
        self._names[slot] = name
        return slot

    def detach(self, slot: int) -> None:
        name = self._names.pop(slot)
        if self._names:
            self._peft.delete_adapter(name)
        else:  # the last adapter gone: strip the LoRA layers so the base runs bare again
            self._peft.unload()
            self._peft = None

    def run(self, slots: list[int], **inputs: Any) -> Any:
        """One pass in which every row runs the same slot (passes are grouped per served model)."""
        slot = slots[0]
        if any(s != slot for s in slots):
            raise ValueError("peft_switch passes run one adapter: group them per served model")
        if self._peft is None:
            return self.model(**inputs)
        if slot == NO_ADAPTER:  # the base served by its own name while adapters are attached
            with self._peft.disable_adapter():
                return self._peft(**inputs)
        if self._peft.active_adapter != self._names[slot]:
            self._peft.set_adapter(self._names[slot])
        return self._peft(**inputs)
