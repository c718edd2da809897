"""Download remote files (http or https) into the landing cache under the data root.

A file is fetched to `<data root>/_landing/<source>/<name>` and verified: the bytes received
must match the length the server announced (a cut connection is an error, not a short file),
and their sha256 and size are kept beside it (`<name>.meta.json`) with the server's ETag and
Last-Modified. The next run asks the server whether the file changed (If-None-Match /
If-Modified-Since); on 304 the cached copy is used and nothing is downloaded. The landed file
then goes through the same discovery as a local one, so the manifest skips it when unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from etl.sources.files import SourceError

LANDING = "_landing"
TIMEOUT = httpx.Timeout(30.0, read=300.0)


def is_remote(pattern: str) -> bool:
    return pattern.startswith(("http://", "https://"))


def land(url: str, source: str, data_root: Path, client: httpx.Client | None = None) -> Path:
    """The landed copy of `url`, downloaded if it is new or changed. Raises SourceError."""
    name = Path(unquote(urlparse(url).path)).name
    if not name:
        raise SourceError(f"{url}: the URL names no file")
    target = data_root / LANDING / source / name
    meta_path = target.with_name(target.name + ".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and target.exists() else {}
    headers = {}
    if meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = meta["last_modified"]
    own_client = client is None
    client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True)
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and meta:
                return target
            if response.status_code != 200:
                raise SourceError(f"{url}: HTTP {response.status_code}")
            meta = _download(response, target)
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: download failed: {exc}") from None
    finally:
        if own_client:
            client.close()
    meta_path.write_text(json.dumps(meta, indent=1))
    return target


def _download(response: httpx.Response, target: Path) -> dict:
    """Stream the body to a temporary file, check its length, then move it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except BaseException:
        partial.unlink(missing_ok=True)  # a cut connection leaves nothing behind
        raise
    announced = response.headers.get("Content-Length")
    if announced is not None and int(announced) != size:
        partial.unlink()
        raise SourceError(f"{response.url}: truncated download: {size} of {announced} bytes")
    os.replace(partial, target)
    return {
        "url": str(response.url),
        "size_bytes": size,
        "sha256": digest.hexdigest(),
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
    }
