"""Evaluation end to end, for the CLI and the API: read the test file, find each model and what it was
trained with, run the examples through the inference engine (in this process, or a server's over HTTP),
and return one report per model."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuneforge.evaluation.completers import Completer, EngineCompleter, HttpCompleter
from tuneforge.evaluation.examples import EvalExample, load_examples
from tuneforge.evaluation.models import Locate, TrainedWith, store_locator, trained_with
from tuneforge.evaluation.run import EvalOptions, compare
from tuneforge.settings import Settings


async def evaluate_models(
    completer: Completer,
    models: Sequence[str],
    examples: Sequence[EvalExample],
    options: EvalOptions,
    locate: Locate | None,
) -> dict[str, Any]:
    """`locate` reads each model's manifest (labels, stop, end-of-text); None for a remote server."""
    # `locate` reads the database and a manifest file: on a thread, so the API's event loop keeps serving
    infos = await asyncio.to_thread(_trained_with, models, locate)
    return await compare(completer, infos, examples, options)


def _trained_with(models: Sequence[str], locate: Locate | None) -> list[tuple[str, TrainedWith]]:
    return [(name, trained_with(locate(name)) if locate else TrainedWith()) for name in models]


def evaluate_file(
    settings: Settings,
    models: Sequence[str],
    path: Path,
    options: EvalOptions,
    *,
    server: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The CLI's evaluation: in this process through the inference engine, or through `server`
    (its `/v1` root and API key)."""
    examples = load_examples(path)
    if server is not None:
        return asyncio.run(_remote(server, models, examples, options))
    from tuneforge.inference.engine import InferenceEngine
    from tuneforge.store.blobs import open_blob_store
    from tuneforge.store.db import open_database

    database = open_database(settings)
    locate = store_locator(settings, database, open_blob_store(settings))
    engine = InferenceEngine(settings, locate)
    try:
        return asyncio.run(evaluate_models(EngineCompleter(engine), models, examples, options, locate))
    finally:
        engine.close()
        database.engine.dispose()


async def _remote(
    server: tuple[str, str],
    models: Sequence[str],
    examples: Sequence[EvalExample],
    options: EvalOptions,
) -> dict[str, Any]:
    completer = HttpCompleter(*server)
    try:
        return await evaluate_models(completer, models, examples, options, None)
    finally:
        await completer.aclose()
