"""Repository functions for fine-tuned models (and job checkpoints, which are models too), and who may use
them: their owner, and organisations the owner granted a checkpoint permission."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.errors import NotFound
from tuneforge.store.permissions import is_granted
from tuneforge.store.tables import CheckpointRow, JobRow, ModelRow


def add_model(session: Session, row: ModelRow) -> None:
    session.add(row)


def find_model(session: Session, *, owner: str, name: str) -> ModelRow | None:
    row = session.get(ModelRow, name)
    return row if row is not None and row.owner == owner and not row.deleted else None


def get_model(session: Session, *, owner: str, name: str) -> ModelRow:
    row = find_model(session, owner=owner, name=name)
    if row is None:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    return row


def list_models(session: Session, *, owner: str) -> list[ModelRow]:
    query = select(ModelRow).where(ModelRow.owner == owner, ModelRow.deleted.is_(False))
    return list(session.scalars(query.order_by(ModelRow.created_at)))


def find_checkpoint(session: Session, *, owner: str, name: str) -> CheckpointRow | None:
    row = session.scalars(select(CheckpointRow).where(CheckpointRow.model_name == name)).first()
    return row if row is not None and row.owner == owner else None


def list_checkpoints(
    session: Session, *, job_id: str, after: str | None = None, limit: int | None = None
) -> list[CheckpointRow]:
    """Latest step first; `after` is the id of the last checkpoint of the previous page (one that is not
    this job's, or no longer exists, ends the listing)."""
    query = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
    if after:
        anchor = session.get(CheckpointRow, after)
        if anchor is None or anchor.job_id != job_id:
            return []
        query = query.where(CheckpointRow.step < anchor.step)
    query = query.order_by(CheckpointRow.step.desc())
    return list(session.scalars(query if limit is None else query.limit(limit)))


def add_checkpoint(session: Session, row: CheckpointRow) -> None:
    session.add(row)


def prune_checkpoints(session: Session, *, job_id: str, keep: int) -> list[str]:
    """Unlist all but the job's newest `keep` checkpoints; returns the blob keys of those unlisted, for
    the caller to delete from disk once this transaction commits."""
    session.flush()
    old = list_checkpoints(session, job_id=job_id)[max(0, keep) :]
    for row in old:
        session.delete(row)
    return [row.path for row in old]


def unlist_checkpoints_at(session: Session, path: str) -> list[str]:
    """Remove the checkpoints stored at blob key `path` (a deleted model's directory); their names."""
    rows = list(session.scalars(select(CheckpointRow).where(CheckpointRow.path == path)))
    for row in rows:
        session.delete(row)
    return [row.model_name for row in rows]


def model_owner(session: Session, name: str) -> str | None:
    """The organisation that owns fine-tuned model (or checkpoint) `name`; None for any other name."""
    row = _model_or_checkpoint(session, name)
    return row.owner if row is not None else None


def model_path(session: Session, name: str) -> str | None:
    """The blob key of fine-tuned model (or checkpoint) `name`, whoever owns it."""
    row = _model_or_checkpoint(session, name)
    return row.path if row is not None else None


def usable_path(session: Session, *, owner: str, name: str) -> str | None:
    """The blob key of fine-tuned model (or checkpoint) `name` if `owner` owns it or was granted it;
    None otherwise (it does not exist for them)."""
    row = _model_or_checkpoint(session, name)
    if row is None or (row.owner != owner and not is_granted(session, model_name=name, org=owner)):
        return None
    return row.path


def base_model_of(session: Session, *, owner: str, name: str) -> str:
    """The base model that `name` descends from: a fine-tuned model's base; a checkpoint's, through the
    job that wrote it; `name` itself for a base model (or a name `owner` may not use). OpenAI names a
    continued fine-tune after that base, whoever owns the parent (a granted checkpoint included)."""
    row = _model_or_checkpoint(session, name)
    if row is None or (row.owner != owner and not is_granted(session, model_name=name, org=owner)):
        return name
    if isinstance(row, ModelRow):
        return row.base_model
    job = session.get(JobRow, row.job_id)
    if job is None or job.model == name:
        return name
    return base_model_of(session, owner=job.owner, name=job.model)


def may_use(session: Session, *, owner: str, name: str) -> bool:
    """Whether `owner` may call model `name`: any name that is no fine-tuned model's (a base model), or a
    fine-tuned model or checkpoint it owns or was granted."""
    holder = model_owner(session, name)
    return holder is None or holder == owner or is_granted(session, model_name=name, org=owner)


def _model_or_checkpoint(session: Session, name: str) -> ModelRow | CheckpointRow | None:
    """A live fine-tuned model called `name`, else a checkpoint called so (names are unique across owners)."""
    row = session.get(ModelRow, name)
    if row is not None and not row.deleted:
        return row
    return session.scalars(select(CheckpointRow).where(CheckpointRow.model_name == name)).first()
