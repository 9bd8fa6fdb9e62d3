"""Which models a caller may use: base models are shared; a fine-tuned model or checkpoint exists only for
the organisation that trained it and those it shared it with (to anyone else it is a 404, as if it did not
exist)."""

from __future__ import annotations

from tuneforge import ids
from tuneforge.errors import NotFound
from tuneforge.store.db import Database
from tuneforge.store.models import may_use


def ensure_model_access(database: Database, owner: str, name: str) -> None:
    if not ids.may_name_a_fine_tuned_model(name):
        return  # a base model: no lookup (it was a third of the API's time per classification request)
    with database.session() as session:
        allowed = may_use(session, owner=owner, name=name)
    if not allowed:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
