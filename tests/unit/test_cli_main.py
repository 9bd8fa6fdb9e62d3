from __future__ import annotations

import subprocess
import sys

import pytest

from tuneforge.cli.main import main


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from tuneforge.cli.main import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_models_list_shows_builtins_and_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny " in out and "tiny-gpt2" in out and "HuggingFaceTB/SmolLM2-135M" in out


def test_unknown_model_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("Error: The model 'nope' does not exist")
