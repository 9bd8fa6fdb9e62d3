"""API keys: created once and shown once; only a sha256 of each is stored (keys are random and long,
so a fast hash is enough). A key acts for one organisation; revoking it takes effect at once."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge import ids
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.store.tables import ApiKeyRow

KEY_PREFIX = "tf-"
_ORG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, org: str, name: str = "") -> tuple[ApiKeyRow, str]:
    """A new key for `org`: the row, and the secret (the only time it exists outside the caller)."""
    if not _ORG_RE.match(org):
        raise InvalidRequest("org must be 1-64 letters, digits, '-' or '_'", param="org")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKeyRow(
        id=ids.new_id("key"),
        owner=org,
        name=name,
        secret_hash=hash_secret(secret),
        hint=secret[-4:],
        created_at=ids.now(),
        revoked_at=None,
    )
    session.add(row)
    return row, secret


def authenticate(session: Session, secret: str) -> ApiKeyRow | None:
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.secret_hash == hash_secret(secret))).first()
    return row if row is not None and row.revoked_at is None else None


def is_active(session: Session, key_id: str) -> bool:
    row = session.get(ApiKeyRow, key_id)
    return row is not None and row.revoked_at is None


def list_keys(session: Session) -> list[ApiKeyRow]:
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)))


def revoke(session: Session, key_id: str) -> ApiKeyRow:
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFound(f"No API key with id '{key_id}'", param="key_id")
    row.revoked_at = row.revoked_at or ids.now()
    return row


def has_keys(session: Session) -> bool:
    return session.scalars(select(ApiKeyRow.id).limit(1)).first() is not None


def write_local_key(path: Path, secret: str) -> None:
    """Store the local CLI's key readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = path.with_suffix(".partial")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.replace(staging, path)
