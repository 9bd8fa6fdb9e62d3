"""GET /v1/tuneforge/adapters (a tuneforge extension): the LoRA adapters the engine holds in memory, least
recently used first, with their bytes against `adapter_memory`. A caller sees only its own fine-tunes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tuneforge.api.access import ensure_model_access
from tuneforge.api.deps import OwnerDep, SettingsDep
from tuneforge.errors import NotFound
from tuneforge.inference.engine import Backend

router = APIRouter(prefix="/v1/tuneforge", tags=["serving (tuneforge)"])


@router.get("/adapters")
async def list_adapters(request: Request, owner: OwnerDep, settings: SettingsDep) -> dict[str, Any]:
    engine: Backend = request.app.state.inference
    loaded = await engine.adapters()
    visible = [a for a in loaded if _may_see(request, owner, a["model"])]
    return {
        "object": "list",
        "data": [{"object": "tuneforge.adapter", **a} for a in visible],
        "memory_bytes": sum(a["bytes"] for a in loaded),
        "memory_budget_bytes": settings.adapter_memory,
    }


def _may_see(request: Request, owner: str, model: str) -> bool:
    try:
        ensure_model_access(request.app.state.database, owner, model)
    except NotFound:
        return False
    return True
