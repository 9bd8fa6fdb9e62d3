"""The API's cold start imports no torch: the engine and the completions routes load it on first use."""

from __future__ import annotations

import subprocess
import sys


def test_engine_and_routes_import_without_torch(settings) -> None:
    code = (
        "import sys\n"
        "from tuneforge.settings import Settings\n"
        "from tuneforge.inference.engine import InferenceEngine\n"
        "import tuneforge.api.routes.completions\n"
        f"InferenceEngine(Settings(data_dir={str(settings.data_dir)!r}), lambda name: name)\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
