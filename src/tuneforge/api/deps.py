"""Request dependencies: the database, blob store and caller's organisation, taken from app state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from tuneforge.api.auth import OwnerDep
from tuneforge.settings import Settings
from tuneforge.store.blobs import BlobStore
from tuneforge.store.db import Database


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


def get_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with database.session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
# "function": the session commits before the response is sent. FastAPI's default ("request") commits after
# it, so a client could be told of a job that is not there yet (a cancel right after the create got 404
# under load), or of a write whose commit then failed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PageLimit = Annotated[int, Query(ge=1, le=100)]  # a list page's `limit`, as OpenAI bounds it

__all__ = ["BlobsDep", "DatabaseDep", "OwnerDep", "PageLimit", "SessionDep", "SettingsDep"]
