"""The blob store for uploads, results and model directories: a folder in the data dir by default, any
fsspec filesystem by URL. Keys are ids we generate, never user strings. Writes land under a temporary
name and are renamed into place, so a reader never sees half a blob."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import fsspec

from tuneforge.errors import PayloadTooLarge

_CHUNK = 1 << 20


class BlobStore:
    def __init__(self, url: str) -> None:
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        self.is_local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        self.fs.makedirs(self.root, exist_ok=True)
        if self.is_local:
            os.chmod(self.root, 0o700)  # every organisation's uploads and models: this user's only

    def _makedirs(self, path: str) -> None:
        if not self.is_local:
            self.fs.makedirs(path, exist_ok=True)
            return
        here = Path(self.root)
        for part in Path(path).relative_to(here).parts:  # each level 0700, whatever the umask
            here = here / part
            here.mkdir(mode=0o700, exist_ok=True)

    def _path(self, key: str) -> str:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"bad blob key {key!r}")
        return f"{self.root}/{key}"

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        """Copy `stream` to `key`; returns (size, sha256). Over `max_bytes` nothing is kept."""
        target = self._path(key)
        staging = f"{target}.{uuid.uuid4().hex}.partial"
        self._makedirs(target.rsplit("/", 1)[0])
        digest, size = hashlib.sha256(), 0
        try:
            with self.fs.open(staging, "wb") as out:
                if self.is_local:
                    os.chmod(staging, 0o600)  # before the first byte lands
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise PayloadTooLarge(f"File exceeds the {max_bytes}-byte upload limit", param="file")
                    digest.update(chunk)
                    out.write(chunk)
            self.fs.mv(staging, target)
        finally:
            if self.fs.exists(staging):
                self.fs.rm(staging)
        return size, digest.hexdigest()

    def concatenate(self, key: str, sources: Iterable[str]) -> tuple[int, str, str]:
        """Write the blobs `sources`, in order, to `key`, a chunk at a time; returns (size, sha256, md5)."""
        chained = _Chained(self, sources)
        size, sha = self.put_stream(key, chained)  # type: ignore[arg-type]
        return size, sha, chained.md5.hexdigest()

    def put_bytes(self, key: str, data: bytes) -> None:
        import io

        self.put_stream(key, io.BytesIO(data))

    def open(self, key: str) -> BinaryIO:
        stream: BinaryIO = self.fs.open(self._path(key), "rb")
        return stream

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def local_path(self, key: str) -> Path:
        """A filesystem path for `key`; training and inference read model directories in place."""
        if not self.is_local:
            raise NotImplementedError("model directories need a local or mounted blob store")
        return Path(self._path(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.is_local and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif self.fs.exists(path):
            self.fs.rm(path, recursive=True)


class _Chained:
    """One readable stream over several blobs, hashing (md5, what clients of the Uploads API send) as it
    goes; only the current chunk is ever in memory."""

    def __init__(self, store: BlobStore, keys: Iterable[str]) -> None:
        self._store, self._keys = store, iter(keys)
        self._current: BinaryIO | None = None
        self.md5 = hashlib.md5(usedforsecurity=False)

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._current is None:
                key = next(self._keys, None)
                if key is None:
                    return b""
                self._current = self._store.open(key)
            chunk = self._current.read(size)
            if chunk:
                self.md5.update(chunk)
                return chunk
            self._current.close()
            self._current = None
