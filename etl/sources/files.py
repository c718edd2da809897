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
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from etl.config.spec import Limits, Source
from etl.errors import SourceError


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
    name: str,
    source: Source,
    data_root: Path,
    known: Mapping[str, Known] | None = None,
    limits: Limits | None = None,
) -> list[FileRef | Broken]:
    """Every file of a source under the data root, in a stable order.

    Remote files (http or https URLs) are landed under the data root first; a URL that cannot
    be fetched is a Broken entry, so the other files still load, and so is a file or zip that
    cannot be listed or read. `known` holds the files already loaded, by path: a plain file
    whose size and mtime did not move keeps its fingerprint without being read again.
    """
    from etl.sources.remote import is_remote, land  # httpx: only for sources that need it

    found: list[FileRef | Broken] = []
    containers = _expand([p for p in source.files if not is_remote(p)], data_root)
    for url in (p for p in source.files if is_remote(p)):
        try:
            containers.append(land(url, name, data_root, limits=limits))
        except SourceError as exc:
            found.append(Broken(name, url, data_root, str(exc).removeprefix(f"{url}: ")))
    for container in containers:
        relative = container.relative_to(data_root).as_posix()
        try:
            found.extend(_container_files(name, source, container, relative, known or {}))
        except OSError as exc:  # unreadable (permissions), or gone since it was listed
            found.append(Broken(name, relative, container, f"cannot read: {exc.strerror or exc}"))
    return found


def _container_files(
    name: str, source: Source, container: Path, relative: str, known: Mapping[str, Known]
) -> list[FileRef | Broken]:
    with container.open("rb"):  # an unreadable file says so, not "not a valid zip archive"
        pass
    if zipfile.is_zipfile(container):
        return _zip_members(name, source, container, relative)
    if container.suffix.lower() == ".zip":
        return [Broken(name, relative, container, "not a valid zip archive")]
    return [_plain_file(name, container, relative, known.get(relative))]


def _expand(patterns: list[str], data_root: Path) -> list[Path]:
    paths: set[Path] = set()
    for pattern in patterns:
        paths.update(p for p in data_root.glob(pattern) if p.is_file())
    return sorted(paths)


def _zip_members(
    name: str, source: Source, container: Path, relative: str
) -> list[FileRef | Broken]:
    """The zip's members that the source reads. Two members of one name are one path that
    names two contents: neither is read (which one was meant cannot be known), the others are."""
    try:
        with zipfile.ZipFile(container) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        return [Broken(name, relative, container, f"not a valid zip archive: {exc}")]
    infos = [i for i in infos if any(fnmatch(i.filename, p) for p in source.members)]
    names = Counter(info.filename for info in infos)
    ambiguous = "the zip holds {} members named {!r}: which one to read is ambiguous"
    found: list[FileRef | Broken] = [
        Broken(name, f"{relative}!{member}", container, ambiguous.format(count, member))
        for member, count in names.items()
        if count > 1
    ]
    found += [
        FileRef(
            source=name,
            path=f"{relative}!{info.filename}",
            container=container,
            member=info.filename,
            size_bytes=info.file_size,
            fingerprint=member_fingerprint(info),
        )
        for info in infos
        if names[info.filename] == 1
    ]
    return found


def member_fingerprint(info: zipfile.ZipInfo) -> str:
    """A zip member's fingerprint: what the zip's central directory records of its content."""
    return f"crc32:{info.CRC:08x}:{info.file_size}"


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
