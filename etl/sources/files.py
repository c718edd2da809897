"""Find the files a source declares and say what each one is.

A "file" is what holds rows: a plain file, or one member of a zip, named relative to the data
root (`dc_taxi/taxi_2016.zip!taxi_2016_01.txt`). Each carries a cheap fingerprint that tells an
unchanged file from a changed one without reading it: for a plain file its sha256 (hashed again
only when its size or mtime moved since it was loaded), for a zip member the size and CRC-32
that the zip's central directory already records.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from etl.config.models import Source


class SourceError(Exception):
    """A file or container that cannot be read; the message is one line for the user."""


@dataclass(frozen=True)
class FileRef:
    """One file of a source, as found on disk."""

    source: str
    path: str  # relative to the data root; `ZIP!MEMBER` for a zip member
    container: Path  # the file on disk (the zip for a member)
    member: str | None
    size_bytes: int  # of the file itself (the member uncompressed)
    fingerprint: str  # changes when the content changes
    mtime_ns: int | None = None  # of a plain file: with its size, tells it needs no new hash

    @property
    def name(self) -> str:
        """The file name that layouts match against (the member name inside a zip)."""
        return self.member or self.container.name


@dataclass(frozen=True)
class Known:
    """A file as the manifest last loaded it."""

    size_bytes: int
    mtime_ns: int | None
    fingerprint: str


@dataclass(frozen=True)
class Broken:
    """A container that could not even be listed (a corrupt zip): recorded as a failed file."""

    source: str
    path: str
    container: Path
    reason: str


def discover(
    name: str, source: Source, data_root: Path, known: Mapping[str, Known] | None = None
) -> list[FileRef | Broken]:
    """Every file of a source under the data root, in a stable order.

    Remote files (http or https URLs) are landed under the data root first; a URL that cannot
    be fetched is a Broken entry, so the other files still load. `known` holds the files already
    loaded, by path: a plain file whose size and mtime did not move keeps its fingerprint
    without being read again.
    """
    from etl.sources.remote import is_remote, land  # httpx: only for sources that need it

    found: list[FileRef | Broken] = []
    containers = _expand([p for p in source.files if not is_remote(p)], data_root)
    for url in (p for p in source.files if is_remote(p)):
        try:
            containers.append(land(url, name, data_root))
        except SourceError as exc:
            found.append(Broken(name, url, data_root, str(exc).removeprefix(f"{url}: ")))
    for container in containers:
        relative = container.relative_to(data_root).as_posix()
        if zipfile.is_zipfile(container):
            found.extend(_zip_members(name, source, container, relative))
        elif container.suffix.lower() == ".zip":
            found.append(Broken(name, relative, container, "not a valid zip archive"))
        else:
            found.append(_plain_file(name, container, relative, (known or {}).get(relative)))
    return found


def _expand(patterns: list[str], data_root: Path) -> list[Path]:
    paths: set[Path] = set()
    for pattern in patterns:
        paths.update(p for p in data_root.glob(pattern) if p.is_file())
    return sorted(paths)


def _zip_members(
    name: str, source: Source, container: Path, relative: str
) -> list[FileRef | Broken]:
    try:
        with zipfile.ZipFile(container) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        return [Broken(name, relative, container, f"not a valid zip archive: {exc}")]
    return [
        FileRef(
            source=name,
            path=f"{relative}!{info.filename}",
            container=container,
            member=info.filename,
            size_bytes=info.file_size,
            fingerprint=f"crc32:{info.CRC:08x}:{info.file_size}",
        )
        for info in infos
        if any(fnmatch(info.filename, pattern) for pattern in source.members)
    ]


def _plain_file(name: str, container: Path, relative: str, known: Known | None) -> FileRef:
    stat = container.stat()
    if known and (known.size_bytes, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        fingerprint = known.fingerprint  # as git and rsync do: same size and mtime, same file
    else:
        fingerprint = _plain_fingerprint(container)
    return FileRef(name, relative, container, None, stat.st_size, fingerprint, stat.st_mtime_ns)


def _plain_fingerprint(path: Path) -> str:
    """sha256 of a plain file, streamed so that memory stays flat."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
