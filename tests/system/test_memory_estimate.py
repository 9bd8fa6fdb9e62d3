"""At a real size, on the CPU: a few LoRA steps of a 0.5B model (Qwen2.5-0.5B's configuration, random
weights, no download) with gradient checkpointing, through the real `tuneforge train`; the peak memory the
run announces must be within ±25% of the process's measured peak RSS. Minutes and ~5 GiB: nightly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.training import families


@pytest.mark.nightly
def test_the_peak_memory_estimate_of_a_half_billion_model_is_within_a_quarter_of_the_measured_peak(
    tmp_path: Path,
) -> None:
    model = families.build("qwen2.5", tmp_path / "qwen2.5-0.5b", shape="real")
    reply = " ".join(["the river is wide and blue while a cloud moves over the stone"] * 4)
    rows = [
        {"messages": [{"role": "user", "content": f"Scene {i}?"}, {"role": "assistant", "content": reply}]}
        for i in range(4)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = [
        sys.executable, "-m", "tuneforge", "train", "--events", "jsonl", "-m", str(model), "-t", str(data),
        "-o", str(tmp_path / "out"), "--tuning", "lora", "--n_epochs", "1", "--batch_size", "4",
        "--seed", "0", "--data-dir", str(tmp_path / "data"),
    ]  # fmt: skip
    env = {**os.environ, "TUNEFORGE_GRADIENT_CHECKPOINTING": "true"}
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, stdout[-2000:]

    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    facts = next(e for e in events if e["type"] == "hyperparameters")["facts"]
    assert 0.45e9 < facts["n_parameters"] < 0.55e9
    measured = usage.ru_maxrss / 2**20  # KiB to GiB
    assert abs(facts["estimated_peak_gib"] / measured - 1) <= 0.25, (facts["estimated_peak_gib"], measured)
