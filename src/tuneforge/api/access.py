"""Which models a caller may use: base models are shared; a fine-tuned model or checkpoint exists only for
the organisation that trained it and those it shared it with (to anyone else it is a 404, as if it did not
exist); a base model that cannot load here (a hub id with no cached copy and no reachable hub) is a 404
saying what to set."""

from __future__ import annotations

from tuneforge import catalog, ids
from tuneforge.errors import ModelUnavailable, NotFound
from tuneforge.settings import Settings
from tuneforge.store.db import Database
from tuneforge.store.models import may_use


def ensure_model_access(database: Database, owner: str, name: str) -> None:
    if not ids.may_name_a_fine_tuned_model(name):
        return  # a base model: no lookup (it was a third of the API's time per classification request)
    with database.session() as session:
        allowed = may_use(session, owner=owner, name=name)
    if not allowed:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")


def locate_base_model(settings: Settings, name: str) -> catalog.ModelRef:
    """A base model's reference, or NotFound naming `model`: it does not exist, or cannot load here."""
    try:
        return catalog.resolve_loadable(name, settings, local=catalog.server_dirs(settings))
    except ModelUnavailable as exc:
        # 404, not 503: no retry would help (the SDK retries 5xx), and the message says what to set.
        raise NotFound(exc.message, param="model", code="model_not_available") from exc
    except NotFound as exc:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found") from exc


def ensure_base_model_loadable(settings: Settings, name: str) -> None:
    """Refuse a base model that cannot load before the request reaches the engine, which would start
    (and import torch) only to find out."""
    if ids.may_name_a_fine_tuned_model(name):
        return
    try:
        locate_base_model(settings, name)
    except NotFound as exc:
        if exc.code == "model_not_available":
            raise
        # an unknown name: the route answers it, as for any other model
