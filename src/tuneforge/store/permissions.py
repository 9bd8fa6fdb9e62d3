"""Repository functions for checkpoint permissions: a fine-tuned model or checkpoint shared by its owner
with other organisations, who may then call it and fine-tune from it."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.errors import NotFound
from tuneforge.store.tables import CheckpointPermissionRow


def grant(
    session: Session, *, owner: str, model_name: str, project_ids: list[str]
) -> list[CheckpointPermissionRow]:
    """One permission per organisation; granting again returns the existing one."""
    existing = {row.project_id: row for row in list_permissions(session, model_name=model_name)}
    rows = []
    for project_id in dict.fromkeys(project_ids):
        row = existing.get(project_id)
        if row is None:
            row = CheckpointPermissionRow(
                id=ids.new_id("cp"), owner=owner, model_name=model_name, project_id=project_id,
                created_at=ids.now(),
            )  # fmt: skip
            session.add(row)
        rows.append(row)
    return rows


def list_permissions(
    session: Session,
    *,
    model_name: str,
    project_id: str | None = None,
    order: Literal["ascending", "descending"] = "descending",
) -> list[CheckpointPermissionRow]:
    query = select(CheckpointPermissionRow).where(CheckpointPermissionRow.model_name == model_name)
    if project_id is not None:
        query = query.where(CheckpointPermissionRow.project_id == project_id)
    keys = (CheckpointPermissionRow.created_at, CheckpointPermissionRow.id)
    return list(session.scalars(query.order_by(*(k.desc() if order == "descending" else k for k in keys))))


def revoke(session: Session, *, model_name: str, permission_id: str) -> None:
    row = session.get(CheckpointPermissionRow, permission_id)
    if row is None or row.model_name != model_name:
        raise NotFound(f"No permission '{permission_id}' on '{model_name}'", param="permission_id")
    session.delete(row)


def is_granted(session: Session, *, model_name: str, org: str) -> bool:
    query = select(CheckpointPermissionRow.id).where(
        CheckpointPermissionRow.model_name == model_name, CheckpointPermissionRow.project_id == org
    )
    return session.scalars(query.limit(1)).first() is not None
