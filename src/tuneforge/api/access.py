"""Which models a caller may use: base models are shared; a fine-tuned model or checkpoint exists only for
the organisation that trained it (to anyone else it is a 404, as if it did not exist)."""

from __future__ import annotations

from tuneforge import ids
from tuneforge.errors import NotFound
from tuneforge.store.db import Database
from tuneforge.store.models import model_owner


def ensure_model_access(database: Database, owner: str, name: str) -> None:
    if not ids.may_name_a_fine_tuned_model(name):
        return  # a base model: no lookup (it was a third of the API's time per classification request)
    with database.session() as session:
        holder = model_owner(session, name)
    if holder is not None and holder != owner:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
