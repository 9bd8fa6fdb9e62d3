"""/v1/models: built-in and aliased base models (shared) and the caller's fine-tuned models."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge import catalog
from tuneforge.api.deps import BlobsDep, OwnerDep, SessionDep, SettingsDep
from tuneforge.api.protocol.models import Model, ModelDeleted, ModelList
from tuneforge.errors import NotFound, PermissionDenied
from tuneforge.settings import Settings
from tuneforge.store import models as model_store

router = APIRouter(prefix="/v1/models", tags=["models"])

_BASE_CREATED = 1704067200  # base models have no creation time of their own; 2024-01-01


@router.get("", response_model=ModelList)
def list_models(session: SessionDep, settings: SettingsDep, owner: OwnerDep) -> ModelList:
    base = [_base_model(ref, settings) for ref in catalog.listing(settings)]
    tuned = [
        Model(id=row.id, created=row.created_at, owned_by=row.owner)
        for row in model_store.list_models(session, owner=owner)
    ]
    return ModelList(data=base + tuned)


@router.get("/{model:path}", response_model=Model)
def retrieve_model(model: str, session: SessionDep, settings: SettingsDep, owner: OwnerDep) -> Model:
    row = model_store.find_model(session, owner=owner, name=model)
    if row is not None:
        return Model(id=row.id, created=row.created_at, owned_by=row.owner)
    checkpoint = model_store.find_checkpoint(session, owner=owner, name=model)
    if checkpoint is not None:
        return Model(id=checkpoint.model_name, created=checkpoint.created_at, owned_by=checkpoint.owner)
    if model in catalog.BUILTIN_MODELS or model in settings.model_aliases:
        return _base_model(catalog.resolve(model, settings), settings)
    raise NotFound(f"The model '{model}' does not exist", param="model", code="model_not_found")


@router.delete("/{model:path}", response_model=ModelDeleted)
def delete_model(
    model: str, request: Request, session: SessionDep, settings: SettingsDep, owner: OwnerDep, blobs: BlobsDep
) -> ModelDeleted:
    row = model_store.find_model(session, owner=owner, name=model)
    if row is None:
        if model in catalog.BUILTIN_MODELS or model in settings.model_aliases:
            raise PermissionDenied(f"'{model}' is a base model; only fine-tuned models can be deleted")
        raise NotFound(f"The model '{model}' does not exist", param="model", code="model_not_found")
    row.deleted = True
    # The job's last checkpoint is this same directory: it leaves the listing with the model.
    unlisted = model_store.unlist_checkpoints_at(session, row.path)
    inference = getattr(request.app.state, "inference", None)
    if inference is not None:
        for name in (model, *unlisted):
            inference.unload(name)
    session.flush()
    blobs.delete(row.path)
    return ModelDeleted(id=model)


def _base_model(ref: catalog.ModelRef, settings: Settings) -> Model:
    reason = catalog.unavailable_reason(ref, settings)
    return Model(
        id=ref.name,
        created=_BASE_CREATED,
        owned_by="tuneforge",
        available=reason is None,
        unavailable_reason=reason,
    )
