"""/v1/fine_tuning/checkpoints/{checkpoint}/permissions: share a fine-tuned model or checkpoint the caller
owns with other organisations (OpenAI's `project_ids`), list and revoke those grants."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from sqlalchemy.orm import Session

from tuneforge.api.deps import OwnerDep, PageLimit, SessionDep
from tuneforge.api.protocol.permissions import (
    CreatePermissionRequest,
    Permission,
    PermissionDeleted,
    PermissionList,
)
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.store import models as model_store
from tuneforge.store import permissions as permission_store
from tuneforge.store.tables import CheckpointPermissionRow

router = APIRouter(prefix="/v1/fine_tuning/checkpoints", tags=["fine-tuning"])

PARAM = "fine_tuned_model_checkpoint"  # the SDK's name for the path parameter


@router.post("/{checkpoint:path}/permissions", response_model=PermissionList)
def create_permissions(
    checkpoint: str, body: CreatePermissionRequest, session: SessionDep, owner: OwnerDep
) -> PermissionList:
    _ensure_owned(session, owner, checkpoint)
    for index, project_id in enumerate(body.project_ids):
        if not project_id.strip() or project_id == owner:
            why = "is empty" if not project_id.strip() else "is the checkpoint's own organisation"
            raise InvalidRequest(f"project_ids[{index}] {why}", param=f"project_ids.{index}")
    rows = permission_store.grant(session, owner=owner, model_name=checkpoint, project_ids=body.project_ids)
    session.flush()
    return _page([_permission(row) for row in rows], has_more=False)


@router.get("/{checkpoint:path}/permissions", response_model=PermissionList)
def list_permissions(
    checkpoint: str,
    session: SessionDep,
    owner: OwnerDep,
    after: str | None = None,
    limit: PageLimit = 10,
    order: Literal["ascending", "descending"] = "descending",
    project_id: str | None = None,
) -> PermissionList:
    _ensure_owned(session, owner, checkpoint)
    rows = permission_store.list_permissions(
        session, model_name=checkpoint, project_id=project_id, order=order
    )
    if after is not None:
        position = next((i for i, row in enumerate(rows) if row.id == after), len(rows))
        rows = rows[position + 1 :]
    return _page([_permission(row) for row in rows[:limit]], has_more=len(rows) > limit)


@router.delete("/{checkpoint:path}/permissions/{permission_id}", response_model=PermissionDeleted)
def delete_permission(
    checkpoint: str, permission_id: str, session: SessionDep, owner: OwnerDep
) -> PermissionDeleted:
    _ensure_owned(session, owner, checkpoint)
    permission_store.revoke(session, model_name=checkpoint, permission_id=permission_id)
    return PermissionDeleted(id=permission_id)


def _ensure_owned(session: Session, owner: str, name: str) -> None:
    """Only the owner manages a model's permissions; to anyone else (grantees too) it does not exist."""
    owned = model_store.find_model(session, owner=owner, name=name) or model_store.find_checkpoint(
        session, owner=owner, name=name
    )
    if owned is None:
        raise NotFound(f"No fine-tuned model or checkpoint '{name}'", param=PARAM, code="model_not_found")


def _permission(row: CheckpointPermissionRow) -> Permission:
    return Permission(id=row.id, created_at=row.created_at, project_id=row.project_id)


def _page(data: list[Permission], *, has_more: bool) -> PermissionList:
    return PermissionList(
        data=data,
        has_more=has_more,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )
