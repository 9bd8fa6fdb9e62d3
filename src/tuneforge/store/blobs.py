"""The blob store for uploads, results and model directories: a folder in the data dir by default, any
fsspec filesystem by URL (an S3-compatible object store through s3fs). Keys are ids we generate, never user
strings. Writes land under a temporary name and are renamed into place, so a reader never sees half a blob.

Training and inference read files and model directories from a local disk. On a local store that is the
blob itself; on a remote one `local_path` downloads the blob once into a cache in the data dir (blobs are
never rewritten under the same key, so a cached copy stays right), and a job trains in a local `workspace`
whose model directories are uploaded with `publish` before the database lists them."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import fsspec

from tuneforge.errors import InvalidRequest, MissingExtra, PayloadTooLarge
from tuneforge.settings import Settings

_CHUNK = 1 << 20
_REMOTE_BLOCK = 8 << 20  # an object store upload holds one part this big in memory (S3's minimum is 5 MiB)


def open_blob_store(settings: Settings) -> BlobStore:
    """The store `settings` name, with its credentials, cache and workspace in the data dir."""
    return BlobStore(
        settings.resolved_blob_url,
        storage_options=settings.blob_storage_options_resolved(),
        local_dir=settings.data_dir,
    )


class BlobStore:
    def __init__(
        self, url: str, *, storage_options: dict[str, Any] | None = None, local_dir: Path | None = None
    ) -> None:
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except ImportError as exc:  # fsspec knows the protocol; its filesystem package is not installed
            if url.startswith(("s3://", "s3a://")):
                raise MissingExtra("An S3 blob store (TUNEFORGE_BLOB_URL=s3://…)", "s3") from exc
            raise
        self.root = root.rstrip("/")
        self.is_local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        if not self.is_local and local_dir is None:
            raise ValueError(f"a remote blob store ({url}) needs a local directory for its cache")
        local = local_dir or Path(self.root)
        self.cache_dir = local / "blob-cache"  # read copies of remote blobs
        self.work_dir = Path(self.root) if self.is_local else local / "work"  # where jobs write
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)
            os.chmod(self.root, 0o700)  # every organisation's uploads and models: this user's only
        elif not self.fs.exists(self.root.split("/", 1)[0]):  # a bucket is the operator's to create
            raise InvalidRequest(
                f"The blob store {url} cannot be used: its bucket does not exist or these credentials "
                "cannot see it",
                param="TUNEFORGE_BLOB_URL",
            )

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
        if not self.is_local:
            return self._put_remote(self._path(key), stream, max_bytes)
        target = self._path(key)
        staging = f"{target}.{uuid.uuid4().hex}.partial"
        self._makedirs(target.rsplit("/", 1)[0])
        try:
            with self.fs.open(staging, "wb") as out:
                os.chmod(staging, 0o600)  # before the first byte lands
                written = _copy(stream, out, max_bytes)
            self.fs.mv(staging, target)
        finally:
            if self.fs.exists(staging):
                self.fs.rm(staging)
        return written

    def _put_remote(self, target: str, stream: BinaryIO, max_bytes: int | None) -> tuple[int, str]:
        """An object store shows an object only once its upload completes, so no staging name (a rename
        there is a copy): parts go up as they fill, and a failure aborts the upload."""
        out = self.fs.open(target, "wb", block_size=_REMOTE_BLOCK, autocommit=False)
        try:
            written = _copy(stream, out, max_bytes)
            out.close()
            out.commit()
        except BaseException:
            out.discard()
            raise
        return written

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
        """A local path holding `key` (a file, or a model directory's files): the blob itself on a local
        store, else a copy downloaded once into the cache."""
        if self.is_local:
            return Path(self._path(key))
        cached = self.cache_dir / quote(key, safe="")  # one flat name: a key's sub-keys are other blobs
        if not cached.exists():
            self._download(self._path(key), cached)
        return cached

    def _download(self, remote: str, target: Path) -> None:
        """Into a staging name, then renamed: a concurrent reader sees no copy or a whole one."""
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            if self.fs.isdir(remote):  # a model directory is flat: save_pretrained writes side by side
                staging.mkdir(mode=0o700)
                for path in self.fs.find(remote, maxdepth=1):
                    self.fs.get_file(path, str(staging / path.rsplit("/", 1)[-1]))
            else:
                self.fs.get_file(remote, str(staging))
            os.rename(staging, target)
        except OSError:
            if not target.exists():  # not another reader that got there first
                raise
        finally:
            _remove(staging)

    def workspace(self, key: str) -> Path:
        """A local directory a job writes under `key`: the blob's own place on a local store; on a remote
        one a folder in the data dir, whose model directories `publish` uploads."""
        path = self.work_dir / key
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def key_of(self, path: Path) -> str:
        """The blob key of a path inside a workspace."""
        return os.path.relpath(path.resolve(), self.work_dir.resolve())

    def publish(self, directory: Path, *, last: Sequence[str] = ()) -> str:
        """Make the files directly in `directory` (a model directory, in a workspace) the blob of its
        key, the files named in `last` after the others (the markers that say it is whole), and return the
        key; on a local store they already are."""
        key = self.key_of(directory)
        if not self.is_local:
            files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
            for path in sorted(files, key=lambda p: p.name in last):
                with path.open("rb") as stream:
                    self.put_stream(f"{key}/{path.name}", stream)
        return key

    def fetch(self, key: str, target: Path) -> None:
        """Download the blob `key` (a file, or a directory's files) to `target`, whole or not at all."""
        self._download(self._path(key), target)

    def listing(self, key: str) -> dict[str, set[str]]:
        """The directories directly under `key`, each with the names of its files."""
        found: dict[str, set[str]] = {}
        prefix = self._path(key) + "/"
        if not self.fs.exists(self._path(key)):
            return found
        for path in self.fs.find(self._path(key)):
            folder, _, name = path.removeprefix(prefix).rpartition("/")
            if folder and "/" not in folder:
                found.setdefault(folder, set()).add(name)
        return found

    def release(self, key: str) -> None:
        """Drop the local workspace of `key` once what it made is published; a local store keeps it."""
        if not self.is_local:
            shutil.rmtree(self.work_dir / key, ignore_errors=True)

    def delete(self, key: str, *, keep_workspace: bool = False) -> None:
        """Remove the blob and every local copy of it (cache, and the workspace unless kept)."""
        path = self._path(key)
        if self.is_local and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif self.fs.exists(path):
            self.fs.rm(path, recursive=True)
        if not self.is_local:
            _remove(self.cache_dir / quote(key, safe=""))
            if not keep_workspace:
                shutil.rmtree(self.work_dir / key, ignore_errors=True)


def _copy(stream: BinaryIO, out: BinaryIO, max_bytes: int | None) -> tuple[int, str]:
    """A chunk at a time; returns (size, sha256)."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise PayloadTooLarge(f"File exceeds the {max_bytes}-byte upload limit", param="file")
        digest.update(chunk)
        out.write(chunk)
    return size, digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink(missing_ok=True)


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
