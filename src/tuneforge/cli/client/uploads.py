"""Turn a `-t`/`-v` argument into a file id: a local file is uploaded, unless an identical one (same name,
size and bytes) is already on the server, in which case that one is reused."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tuneforge.cli.client.http import ApiClient
from tuneforge.errors import InvalidRequest

PURPOSE = "fine-tune"


def file_id_for(client: ApiClient, arg: str, param: str, *, say: bool = True) -> str:
    """`arg` is a local path (uploaded or reused) or an existing file id (`file-…`)."""
    path = Path(arg).expanduser()
    if path.is_file():
        return upload_or_reuse(client, path, say=say)
    if arg.startswith("file-"):
        return arg  # the server checks that it exists and names `param` if not
    raise InvalidRequest(f"{param} '{arg}' is neither a local file nor a file id (file-…)", param=param)


def upload_or_reuse(client: ApiClient, path: Path, *, say: bool = True) -> str:
    data = path.read_bytes()
    existing = find_identical(client, path.name, data)
    if existing is not None:
        if say:
            print(f"Found an identical file already uploaded: {existing} ({path.name}); reusing it.")
        return existing
    uploaded = client.upload("files", path.name, data, PURPOSE)
    if say:
        print(f"Uploaded file from {path}: {uploaded['id']}")
    return str(uploaded["id"])


def find_identical(client: ApiClient, filename: str, data: bytes) -> str | None:
    """Compare bytes, not just names: a file edited since its upload is uploaded again."""
    digest = hashlib.sha256(data).digest()
    listing = client.get("files", purpose=PURPOSE)["data"]
    for item in listing:
        if item.get("filename") != filename or item.get("bytes") != len(data):
            continue
        if hashlib.sha256(client.content(f"files/{item['id']}/content")).digest() == digest:
            return str(item["id"])
    return None
