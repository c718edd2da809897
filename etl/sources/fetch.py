"""Bring a file's bytes into memory a piece at a time, decompressing zip members and gzip files.

A piece is whole lines of about `size` bytes, so that a file larger than that is never in
memory at once: at 20 M rows one DFHV monthly member inflates to 200 MB, and its rows as text
columns to several times that. DuckDB cannot read inside a zip here, and writing a member to
disk first costs more than parsing it, so members are inflated in memory. isal's zlib inflates
about 1.6x faster than the standard library's; the CRC-32 the zip records is checked, so a
truncated or corrupted member is an error, not a short file. That check, like a truncated gzip
stream, can only fail at the end of the file, after its earlier pieces were handed out.

Nothing read is trusted beyond what the run planned (`Limits`): a line longer than the limit
fails its file as soon as it is seen, before it is gathered whole; a member never inflates
past the size its zip declares, nor past the limits on size and ratio; and the bytes read must
be the bytes fingerprinted when the run planned the file, or the file changed while it was read
and fails, to be read again whole by the next run.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from isal import igzip, isal_zlib

from etl.config.spec import Limits
from etl.sources.files import FileRef, SourceError, member_fingerprint

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the zip local file header, 30 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
_BLOCK = 8 << 20  # bytes read from disk (or inflated) at a time
_RATIO_FLOOR = 1 << 20  # a member this small cannot hurt, whatever its ratio
CHANGED = "changed while being read: read again on the next run"
CORRUPT_MEMBER = "corrupt zip member: size or CRC-32 does not match the zip directory"


@dataclass(frozen=True)
class Piece:
    """Consecutive whole lines of a file. The last piece carries the file's sha256."""

    data: bytes
    sha256: str | None = None  # of the whole file, uncompressed; set on the last piece only

    @property
    def last(self) -> bool:
        return self.sha256 is not None


class LineTooLong(SourceError):
    """A line longer than `Limits.max_line_bytes`. Pieces do not carry line numbers (counting
    line ends would cost a scan of every byte), so the reader that has the pieces before this
    one says which line it is: `lines_before` lines of the failing piece precede it."""

    def __init__(self, limit: int, lines_before: int) -> None:
        super().__init__(f"a line is longer than {limit:,} bytes (limits.max_line_bytes)")
        self.limit, self.lines_before = limit, lines_before

    def at(self, first_line: int) -> SourceError:
        """The error with the file's line number, the piece starting at line `first_line`."""
        line = first_line + self.lines_before
        return SourceError(
            f"line {line} is longer than {self.limit:,} bytes (limits.max_line_bytes)"
        )


def read_pieces(
    ref: FileRef, size: int, limits: Limits | None = None, lines: bool = True
) -> Iterator[Piece]:
    """The file's content, uncompressed, in pieces of whole lines of about `size` bytes (more
    when a single line is longer). `lines`: the file is text read by lines, which the line
    length limit applies to. Raises SourceError with a one-line reason, possibly after some
    pieces were yielded; the last piece is yielded only once the content is verified."""
    limits = limits or Limits()
    max_line = limits.max_line_bytes if lines else None
    digest = hashlib.sha256()
    plain = ref.member is None and ref.container.suffix != ".gz"
    try:
        blocks = _hashed(_blocks(ref, size, limits), digest)
        for data, last in _whole_lines(blocks, size, max_line):
            if last and plain and f"sha256:{digest.hexdigest()}" != ref.fingerprint:
                raise SourceError(CHANGED)
            yield Piece(data, digest.hexdigest() if last else None)
            del data  # the caller's now: hold no reference while the next piece inflates
    except SourceError:
        raise
    except (zipfile.BadZipFile, zlib.error, isal_zlib.error, EOFError, igzip.BadGzipFile) as exc:
        raise SourceError(f"corrupt or truncated compressed data: {exc}") from None
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from None


def _hashed(blocks: Iterator[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for block in blocks:
        digest.update(block)
        yield block
        del block


def _whole_lines(
    blocks: Iterator[bytes], size: int, max_line: int | None
) -> Iterator[tuple[bytes, bool]]:
    """The blocks regrouped into pieces that end at a line end, each flagged when it is last.

    A piece is cut at the first line end after `size` bytes, and only once more bytes follow
    the cut, so that the last piece is never empty unless the file is. A file that comes in
    one block and needs no cut is passed on as it is, without a copy. With `max_line`, a line
    longer fails as soon as its bytes without a line end pass the limit, and every piece is
    checked whole before it is handed out.
    """
    parts: list[bytes] = []
    held = 0
    line_start = 0  # where in the held bytes the line not yet ended starts
    for block in blocks:
        parts.append(block)
        held += len(block)
        end = block.rfind(b"\n")
        if end >= 0:
            line_start = held - len(block) + end + 1
        if max_line is not None and held - line_start > max_line:
            raise LineTooLong(max_line, sum(p.count(b"\n") for p in parts))
        del block
        while held > size:
            last = parts[-1]
            cut = last.find(b"\n", max(size - 1 - (held - len(last)), 0)) + 1
            if not 0 < cut < len(last):
                break  # no line ends after `size` in this block, or nothing follows it yet
            piece = b"".join([*parts[:-1], memoryview(last)[:cut]])
            parts = [last[cut:]]
            held = len(parts[0])
            line_start -= len(piece)
            del last
            _check_lines(piece, max_line)
            yield piece, False
            del piece
    piece = parts[0] if len(parts) == 1 else b"".join(parts)
    parts.clear()
    _check_lines(piece, max_line)
    yield piece, True


def _check_lines(data: bytes, max_line: int | None) -> None:
    """Raise LineTooLong if a line of `data` is longer than `max_line` bytes.

    From the start of a line, the last line end within `max_line` bytes is found by a
    backward search that stops a line's length short of the window's end: a 64 MB piece of
    300-byte lines takes 64 searches of 300 bytes each, not a scan of every byte.
    """
    if max_line is None:
        return
    start = 0
    while len(data) - start > max_line:
        end = data.rfind(b"\n", start, start + max_line + 1)
        if end < 0:
            raise LineTooLong(max_line, data.count(b"\n", 0, start))
        start = end + 1


def _blocks(ref: FileRef, size: int, limits: Limits) -> Iterator[bytes]:
    """The file's bytes, uncompressed, in blocks: a file of at most `size` bytes in one."""
    if ref.member is not None:
        yield from _member_blocks(ref, size, limits)
    elif ref.container.suffix == ".gz":
        yield from _gzip_blocks(ref, limits)
    else:
        with ref.container.open("rb") as handle:
            if ref.size_bytes <= size:
                # One block. A file that grew since it was planned fails its hash below.
                yield handle.read(ref.size_bytes + 1)
                return
            while block := handle.read(_BLOCK):
                yield block


def _gzip_blocks(ref: FileRef, limits: Limits) -> Iterator[bytes]:
    """A gzip file inflated, within the limits; its own bytes, as read, must be those the
    fingerprint was taken of."""
    with ref.container.open("rb") as handle:
        raw = _HashingReader(handle)
        with igzip.IGzipFile(fileobj=raw, mode="rb") as gzip:
            inflated = 0
            while block := gzip.read(_BLOCK):
                inflated += len(block)
                _check_inflation(inflated, ref.size_bytes, limits)
                yield block
        while raw.read(_BLOCK):  # what follows the gzip stream is part of the file too
            pass
    if f"sha256:{raw.digest.hexdigest()}" != ref.fingerprint:
        raise SourceError(CHANGED)


class _HashingReader:
    """A binary file that hashes the bytes read through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self.handle.readinto(buffer)
        self.digest.update(memoryview(buffer)[:count])
        return count


def _check_inflation(inflated: int, compressed: int, limits: Limits) -> None:
    if inflated > limits.max_inflated_bytes:
        raise SourceError(
            f"inflates past {limits.max_inflated_bytes:,} bytes (limits.max_inflated_bytes)"
        )
    if inflated > _RATIO_FLOOR and inflated > limits.max_inflation_ratio * max(compressed, 1):
        raise SourceError(
            f"inflates more than {limits.max_inflation_ratio:g} times its compressed size "
            "(limits.max_inflation_ratio)"
        )


def _member_blocks(ref: FileRef, size: int, limits: Limits) -> Iterator[bytes]:
    with zipfile.ZipFile(ref.container) as archive:
        info = archive.getinfo(ref.member)
        if member_fingerprint(info) != ref.fingerprint:
            raise SourceError(CHANGED)
        if info.flag_bits & 0x1:
            raise SourceError("encrypted zip member: cannot be read without its password")
        # The declared sizes are checked first; the inflating below never passes them.
        _check_inflation(info.file_size, info.compress_size, limits)
        if info.compress_type != zipfile.ZIP_DEFLATED:
            # Stored and other methods: the standard library knows them, and stops at the
            # declared size.
            try:
                member = archive.open(info)
            except NotImplementedError as exc:
                raise SourceError(f"zip member: {exc}") from None
            with member:
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
        yield from _inflate(handle, info, whole=info.file_size <= size)


def _inflate(handle: BinaryIO, info: zipfile.ZipInfo, whole: bool) -> Iterator[bytes]:
    """A deflated member, never more than the size the zip declares for it: in one block of
    exactly its size when `whole` (no copy, no regrowing), else in blocks."""
    inflate = isal_zlib.decompressobj(wbits=-15)
    out_size = info.file_size + 1 if whole else _BLOCK  # one byte more shows a lying size
    read_size = info.compress_size if whole else _BLOCK
    crc, inflated, remaining, compressed = 0, 0, info.compress_size, b""
    while not inflate.eof:
        if not compressed:
            if not remaining:
                break
            compressed = handle.read(min(read_size, remaining))
            if not compressed:
                raise SourceError("truncated zip member")
            remaining -= len(compressed)
        block = inflate.decompress(compressed, out_size)
        compressed = inflate.unconsumed_tail
        crc, inflated = isal_zlib.crc32(block, crc), inflated + len(block)
        if inflated > info.file_size:  # a member lying about its size is stopped there
            raise SourceError(CORRUPT_MEMBER)
        if block:
            yield block
        del block
    _check_member(info, inflated, crc, complete=inflate.eof)


def _check_member(info: zipfile.ZipInfo, size: int, crc: int, complete: bool) -> None:
    if not complete or size != info.file_size or crc != info.CRC:
        raise SourceError(CORRUPT_MEMBER)


@dataclass(frozen=True)
class Span:
    """Whole lines of a plain file, bytes `start` to `end`, for a task of its own to read
    (`read_span`): a piece of `read_pieces`, located in the file."""

    index: int  # the file's spans are numbered from 0
    start: int
    end: int
    first_line: int  # the file's line number of its first line
    sha256: str  # of its bytes: a task reads exactly what was planned
    file_sha256: str | None  # of the whole file, on its last span only (as on a Piece)
    head: bytes  # the file's first line: what a reader keeps from the first piece (a header)


def spans(ref: FileRef, size: int, limits: Limits) -> list[Span] | None:
    """A plain file of more than `size` bytes as spans of whole lines, cut where `read_pieces`
    cuts it, found in one pass (their line numbers and hashes); None for a file read whole by
    one task: a small, compressed or zipped one (a member cannot be entered at a byte offset),
    or one that cannot be split as planned (its task reads it and says why)."""
    if ref.member is not None or ref.container.suffix == ".gz" or ref.size_bytes <= size:
        return None
    digest = hashlib.sha256()
    found: list[Span] = []
    start, line = 0, 1
    try:
        for data, last in _whole_lines(_hashed(_blocks(ref, size, limits), digest), size, None):
            if not found:
                head = data[: data.find(b"\n") + 1]
            whole = digest.hexdigest() if last else None
            sha = hashlib.sha256(data).hexdigest()
            found.append(Span(len(found), start, start + len(data), line, sha, whole, b""))
            start, line = start + len(data), line + data.count(b"\n")
            del data
    except OSError:
        return None
    changed = f"sha256:{digest.hexdigest()}" != ref.fingerprint
    if changed or len(found) < 2 or not 0 < len(head) <= limits.max_line_bytes:
        return None
    return [replace(span, head=head) for span in found]


def read_span(ref: FileRef, span: Span, limits: Limits) -> Piece:
    """A span's bytes as a piece (the last one carries the file's sha256), exactly as
    planned, every line within the limit. Raises SourceError (LineTooLong: lines before it
    counted from the span's start)."""
    try:
        with ref.container.open("rb") as handle:
            handle.seek(span.start)
            data = handle.read(span.end - span.start)
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != span.sha256:
        raise SourceError(CHANGED)
    _check_lines(data, limits.max_line_bytes)
    return Piece(data, span.file_sha256)
