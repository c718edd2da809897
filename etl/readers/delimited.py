"""Parse delimited text (pipe or comma) into a frame of raw text columns.

Every column stays text here: staging casts, so that a value that does not parse becomes a null
plus a reason, and the quarantine can keep the value exactly as the file had it. polars parses
the whole buffer at once on all cores.
"""

from __future__ import annotations

import dataclasses
import re

import polars as pl

from etl.config.spec import Layout, Source
from etl.errors import SourceError
from etl.names import LINE
from etl.readers.base import RawBatch, Reader

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_DUPLICATED = re.compile(r"(.*)_duplicated_\d+")  # polars' name for a repeated header name


class _DelimitedFile:
    """One file's pieces: the header line is the first piece's, put before each later one."""

    def __init__(self, source: Source, layout: Layout | None) -> None:
        self.delimiter = (layout.delimiter if layout else None) or source.delimiter
        self.encoding = source.encoding
        self.trailer = source.trailer
        self.header = b""

    def parse(self, data: bytes, last: bool, first_line: int) -> RawBatch:
        first = first_line == 1
        if first:
            reject_utf16(data, self.encoding)
            self.header = data[: data.find(b"\n") + 1]
        raw = parse_delimited(
            data if first else self.header + data,
            self.delimiter,
            encoding=self.encoding,
            trailer=self.trailer if last else None,
            first_line=first_line + first,  # the header is line 1
        )
        return dataclasses.replace(raw, header_lines=int(first))


def parse_delimited(
    data: bytes,
    delimiter: str,
    encoding: str = "utf-8",
    trailer: str | None = None,
    first_line: int = 2,
) -> RawBatch:
    """Parse delimited text: a whole file, or a piece of one under the file's header line,
    whose first row is line `first_line` of the file. Raises SourceError with a one-line
    reason."""
    if not data or data.isspace():  # isspace stops at the first other byte: no copy
        raise SourceError("empty file")
    if encoding != "utf-8":
        try:
            data = data.decode(encoding).encode("utf-8")
        except UnicodeDecodeError as err:
            line = _line_of(data, err.start, first_line)
            raise SourceError(
                f"not valid {encoding}: byte 0x{data[err.start]:02x} on line {line}"
            ) from None

    control_total, trailer_found = None, False
    if trailer is not None:
        data, control_total, trailer_found = _split_trailer(data, trailer)

    # Without a quote in the text there is nothing to unquote, and no value can span lines;
    # the parser runs ~10% faster told so (DFHV files hold no quotes, the courier's do).
    quoted = b'"' in data
    try:
        frame = pl.read_csv(
            data,
            separator=delimiter,
            has_header=True,
            infer_schema=False,
            quote_char='"' if quoted else None,
        )
    except pl.exceptions.ComputeError as exc:
        raise SourceError(_parse_failure(exc, data, first_line)) from None
    except pl.exceptions.NoDataError:
        raise SourceError("empty file") from None

    header = tuple(frame.columns)
    repeated = [m[1] for c in header if (m := _DUPLICATED.fullmatch(c)) and m[1] in header]
    if repeated:
        raise SourceError(f"the header names column {repeated[0]!r} more than once")
    if len(header) == 1 and delimiter not in header[0] and _other_delimiter(header[0], delimiter):
        raise SourceError(f"header is not delimited by {delimiter!r}: {header[0][:60]!r}")
    if quoted:
        _check_line_count(data, frame.height)

    frame = frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))
    # polars keeps an empty line as a row of nulls; it is not a row of the file's data.
    blank = pl.all_horizontal(pl.col(c).is_null() for c in header)
    blank_lines = int(frame.select(blank.sum()).item())
    if blank_lines:
        frame = frame.filter(~blank)
    return RawBatch(frame, header, blank_lines, control_total, trailer_found)


def reject_utf16(data: bytes, encoding: str) -> None:
    """A text file's start in UTF-16 (a byte order mark, or a NUL byte beside every
    character) fails its file with that said: the encodings a source may declare hold no
    NUL bytes, and parsed anyway it would only show as missing columns."""
    head = data[:4096]
    if head.startswith(_UTF16_BOMS) or (
        b"\x00" in head and max(head[0::2].count(0), head[1::2].count(0)) * 4 >= len(head)
    ):
        expected = "UTF-8" if encoding == "utf-8" else encoding
        raise SourceError(f"UTF-16 encoded, expected {expected}")


def _split_trailer(data: bytes, pattern: str) -> tuple[bytes, int | None, bool]:
    """Cut a control-total last line (`TOTAL ROWS: 1234`) off the data, returning its count."""
    body = data.rstrip(b"\r\n")
    cut = body.rfind(b"\n")
    last = body[cut + 1 :].decode("utf-8", errors="replace").strip()
    match = re.fullmatch(pattern, last)
    if match is None:
        return data, None, False
    return body[: cut + 1], int(match.group(1)), True


def _check_line_count(data: bytes, rows: int) -> None:
    """Lineage says a row's line; that holds only when every row is one physical line."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines != rows + 1:
        raise SourceError(
            f"{lines} lines but {rows} rows and a header: a quoted value spans lines, "
            "so line numbers could not be kept"
        )


def _other_delimiter(header: str, delimiter: str) -> bool:
    return any(d in header for d in "|,;\t" if d != delimiter)


def _line_of(data: bytes, offset: int, first_line: int) -> int:
    """The file's line number of a byte of `data`, whose first line is the header."""
    return data.count(b"\n", 0, offset) + first_line - 1 if offset > data.find(b"\n") else 1


def _parse_failure(exc: Exception, data: bytes, first_line: int) -> str:
    message = str(exc).splitlines()[0]
    if "utf-8" in message.lower():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = _line_of(data, err.start, first_line)
            return (
                f"not valid UTF-8: byte 0x{data[err.start]:02x} on line {line} "
                "(declare the source's encoding in sources.yaml)"
            )
    if "more fields" in message:
        return "a row has more fields than the header"
    return f"cannot parse: {message}"


READER = Reader("delimited", "trip", by_lines=True, typed=False, open=_DelimitedFile)
