"""Bring a file's bytes into memory a piece at a time, decompressing zip members and gzip files.

A piece is whole lines of about `size` bytes, so that a file larger than that is never in
memory at once: at 20 M rows one DFHV monthly member inflates to 200 MB, and its rows as text
columns to several times that. DuckDB cannot read inside a zip here, and writing a member to
disk first costs more than parsing it, so members are inflated in memory. isal's zlib inflates
about 1.6x faster than the standard library's; the CRC-32 the zip records is checked, so a
truncated or corrupted member is an error, not a short file. That check, like a truncated gzip
stream, can only fail at the end of the file, after its earlier pieces were handed out.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from isal import igzip, isal_zlib

from etl.sources.files import FileRef, SourceError

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the zip local file header, 30 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
_BLOCK = 8 << 20  # bytes read from disk at a time


@dataclass(frozen=True)
class Piece:
    """Consecutive whole lines of a file. The last piece carries the file's sha256."""

    data: bytes
    sha256: str | None = None  # of the whole file, uncompressed; set on the last piece only

    @property
    def last(self) -> bool:
        return self.sha256 is not None


def read_pieces(ref: FileRef, size: int) -> Iterator[Piece]:
    """The file's content, uncompressed, in pieces of whole lines of about `size` bytes (more
    when a single line is longer). Raises SourceError with a one-line reason, possibly after
    some pieces were yielded."""
    digest = hashlib.sha256()
    try:
        for data, last in _whole_lines(_blocks(ref, size), size):
            digest.update(data)
            yield Piece(data, digest.hexdigest() if last else None)
            del data  # the caller's now: hold no reference while the next piece inflates
    except SourceError:
        raise
    except (zipfile.BadZipFile, zlib.error, isal_zlib.error, EOFError, igzip.BadGzipFile) as exc:
        raise SourceError(f"corrupt or truncated compressed data: {exc}") from None
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from None


def _whole_lines(blocks: Iterator[bytes], size: int) -> Iterator[tuple[bytes, bool]]:
    """The blocks regrouped into pieces that end at a line end, each flagged when it is last.

    A piece is cut at the first line end after `size` bytes, and only once more bytes follow
    the cut, so that the last piece is never empty unless the file is. A file that comes in
    one block and needs no cut is passed on as it is, without a copy.
    """
    parts: list[bytes] = []
    held = 0
    for block in blocks:
        parts.append(block)
        held += len(block)
        del block
        while held > size:
            last = parts[-1]
            cut = last.find(b"\n", max(size - 1 - (held - len(last)), 0)) + 1
            if not 0 < cut < len(last):
                break  # no line ends after `size` in this block, or nothing follows it yet
            piece = b"".join([*parts[:-1], memoryview(last)[:cut]])
            parts = [last[cut:]]
            held = len(parts[0])
            del last
            yield piece, False
            del piece
    piece = parts[0] if len(parts) == 1 else b"".join(parts)
    parts.clear()
    yield piece, True


def _blocks(ref: FileRef, size: int) -> Iterator[bytes]:
    """The file's bytes, uncompressed, in blocks: a file of at most `size` bytes in one."""
    if ref.member is not None:
        yield from _member_blocks(ref, size)
    elif ref.container.suffix == ".gz":
        with igzip.open(ref.container, "rb") as handle:
            while block := handle.read(_BLOCK):
                yield block
    elif ref.container.stat().st_size <= size:
        yield ref.container.read_bytes()
    else:
        with ref.container.open("rb") as handle:
            while block := handle.read(_BLOCK):
                yield block


def _member_blocks(ref: FileRef, size: int) -> Iterator[bytes]:
    with zipfile.ZipFile(ref.container) as archive:
        info = archive.getinfo(ref.member)
        if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 0x1:
            # Stored, other methods or encryption: the standard library knows them all.
            with archive.open(info) as member:
                while block := member.read(_BLOCK):
                    yield block
            return
    with ref.container.open("rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
            raise SourceError("corrupt zip: bad local header")
        name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
        handle.seek(name_length + extra_length, 1)
        if info.file_size <= size:
            yield _inflate_whole(handle, info)
        else:
            yield from _inflate_blocks(handle, info)


def _inflate_whole(handle: BinaryIO, info: zipfile.ZipInfo) -> bytes:
    """A member in one go, into a buffer of its size: no copy, no regrowing."""
    compressed = handle.read(info.compress_size)
    if len(compressed) < info.compress_size:
        raise SourceError("truncated zip member")
    data = isal_zlib.decompress(compressed, wbits=-15, bufsize=info.file_size or 1)
    _check_member(info, len(data), isal_zlib.crc32(data), complete=True)
    return data


def _inflate_blocks(handle: BinaryIO, info: zipfile.ZipInfo) -> Iterator[bytes]:
    inflate = isal_zlib.decompressobj(wbits=-15)
    crc, inflated, remaining = 0, 0, info.compress_size
    while remaining:
        compressed = handle.read(min(_BLOCK, remaining))
        if not compressed:
            raise SourceError("truncated zip member")
        remaining -= len(compressed)
        block = inflate.decompress(compressed)
        crc, inflated = isal_zlib.crc32(block, crc), inflated + len(block)
        yield block
        del block
    _check_member(info, inflated, crc, complete=inflate.eof)


def _check_member(info: zipfile.ZipInfo, size: int, crc: int, complete: bool) -> None:
    if not complete or size != info.file_size or crc != info.CRC:
        raise SourceError("corrupt zip member: size or CRC-32 does not match the zip directory")
