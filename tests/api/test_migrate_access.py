"""`tuneforge migrate` against a source that refuses its key: one line naming the source, never the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.test_privacy import serving
from tuneforge.api.app import create_app
from tuneforge.cli.main import main
from tuneforge.settings import Settings


def test_a_source_key_without_access_is_one_clear_error(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = create_app(settings.model_copy(update={"auth": True}), workers=0)
    with serving(source) as base:
        flags = ["--from-base-url", f"{base}/v1", "--from-api-key", "sk-not-a-key-0123", "--dry-run"]
        code = main(["migrate", *flags, "--data-dir", str(tmp_path / "target")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"Error: the source key has no access to {base}/v1 (401); check --from-api-key"
    assert "sk-not-a-key" not in err
