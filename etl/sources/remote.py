"""Download remote files (http or https) into the landing cache under the data root.

A file is fetched to `<data root>/_landing/<source>/<url hash>/<name>`: each URL has its own
folder (12 hex digits of the sha256 of the URL), so two URLs ending in the same file name are
two files, each with its own ETag. It is verified before it replaces an earlier copy: the body
must be complete (as long as the Content-Length the server announced, or chunked and ended by
its last chunk; a body delimited only by the connection closing is refused, since a cut one
cannot be told from a whole one), it must arrive within `limits.download_deadline_s`, and a
redirect may lead only to the same scheme, host and port. Its sha256 and size are kept beside
it (`<name>.meta.json`) with the server's ETag and Last-Modified, written only for a complete
download. The next run asks the server whether the file changed (If-None-Match /
If-Modified-Since); on 304 the cached copy is used and nothing is downloaded. A missing,
unreadable or inconsistent `.meta.json` means no cached copy: the file is downloaded again.
The landed file then goes through the same discovery as a local one, so the manifest skips it
when unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from etl.config.spec import Limits
from etl.errors import SourceError

LANDING = "_landing"
CONNECT_S, READ_S = 30.0, 300.0  # per connection attempt, per read: within the deadline
MAX_REDIRECTS = 5
_PORTS = {"http": 80, "https": 443}


def is_remote(pattern: str) -> bool:
    return pattern.startswith(("http://", "https://"))


def landing_path(url: str, source: str, data_root: Path) -> Path:
    """Where `url` lands: the file's own name in a folder of its own URL. Raises SourceError."""
    try:
        name = Path(unquote(urlparse(url).path)).name
    except ValueError as exc:  # `http://[::1/x.zip`
        raise SourceError(f"{url}: not a valid URL ({exc})") from None
    if name in ("", ".", "..") or "\x00" in name:
        raise SourceError(f"{url}: the URL names no file")
    folder = hashlib.sha256(url.encode()).hexdigest()[:12]
    return data_root / LANDING / source / folder / name


def land(
    url: str,
    source: str,
    data_root: Path,
    client: httpx.Client | None = None,
    limits: Limits | None = None,
) -> Path:
    """The landed copy of `url`, downloaded if it is new or changed. Raises SourceError."""
    limits = limits or Limits()
    target = landing_path(url, source, data_root)
    meta_path = target.with_name(target.name + ".meta.json")
    meta = _cached(target, meta_path)
    headers = {}
    if meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = meta["last_modified"]
    own_client = client is None
    client = client or httpx.Client()
    deadline = time.monotonic() + limits.download_deadline_s
    try:
        fresh = _fetch(client, url, headers, target, deadline, limits)
        if fresh is not None:
            _write_json(meta_path, fresh)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise SourceError(f"{url}: download failed: {exc}") from None
    except OSError as exc:
        raise SourceError(f"{url}: cannot land: {exc.strerror or exc}") from None
    finally:
        if own_client:
            client.close()
    if fresh is None and not meta:
        raise SourceError(f"{url}: HTTP 304 for a file never downloaded")
    return target


def _cached(target: Path, meta_path: Path) -> dict:
    """What the last complete download recorded, if it still describes the landed file."""
    try:
        meta = json.loads(meta_path.read_text())
        if meta["size_bytes"] == target.stat().st_size:
            return meta
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {}


def _fetch(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    target: Path,
    deadline: float,
    limits: Limits,
) -> dict | None:
    """Download `url` into `target`, following redirects within its origin; None on 304."""
    current = httpx.URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        left = max(deadline - time.monotonic(), 0.001)
        timeout = httpx.Timeout(min(CONNECT_S, left), read=min(READ_S, left))
        with client.stream(
            "GET", current, headers=headers, timeout=timeout, follow_redirects=False
        ) as response:
            if response.is_redirect and "Location" in response.headers:
                following = current.join(response.headers["Location"])
                if _origin(following) != _origin(current):
                    raise SourceError(f"{url}: redirected to another origin: {following}")
                current = following
                continue
            if response.status_code == 304:
                return None
            if response.status_code != 200:
                raise SourceError(f"{url}: HTTP {response.status_code}")
            return _download(response, url, target, deadline, limits)
    raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _PORTS.get(url.scheme)


def _download(
    response: httpx.Response, url: str, target: Path, deadline: float, limits: Limits
) -> dict:
    """Stream the body to a temporary file, check it is whole, then move it into place."""
    announced = response.headers.get("Content-Length")
    chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
    if announced is None and not chunked:
        raise SourceError(
            f"{url}: the server sent neither a length nor chunked framing: "
            "a cut download could not be told from a whole one"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            for chunk in response.iter_bytes():  # as it arrives: the deadline is checked often
                if time.monotonic() > deadline:
                    raise SourceError(
                        f"{url}: download not finished within {limits.download_deadline_s:g} s "
                        "(limits.download_deadline_s)"
                    )
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        if announced is not None and int(announced) != response.num_bytes_downloaded:
            raise SourceError(
                f"{url}: truncated download: {response.num_bytes_downloaded} of {announced} bytes"
            )
    except BaseException:
        partial.unlink(missing_ok=True)  # a cut connection leaves nothing behind
        raise
    # The old record goes first: a crash between these steps leaves a file with no record,
    # which the next run downloads again, never a record describing another file.
    target.with_name(target.name + ".meta.json").unlink(missing_ok=True)
    os.replace(partial, target)
    return {
        "url": url,
        "size_bytes": size,
        "sha256": digest.hexdigest(),
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
    }


def _write_json(path: Path, data: dict) -> None:
    """Write whole or not at all: a crash cannot leave a truncated record."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)
