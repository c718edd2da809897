"""What every reader is: the declaration a format module registers, and the rows it returns.

A reader declares what it reads (`Reader`): its format name (the `format:` of sources.yaml),
the entity its rows are, whether a file is split at line boundaries into pieces (text) or read
whole (a binary format: its pieces are gathered first), and whether its columns come typed
(Parquet) or as text that the mapping parses. `Reader.open` starts one file: the `FileParser`
it returns is given the file's pieces in order and keeps what a piece needs from those before
it (a header line, the bytes gathered so far).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import polars as pl

from etl.config.spec import Column, Layout, Source


@dataclass(frozen=True)
class RawBatch:
    """One piece of a file's rows as read, with what the file said about itself."""

    frame: pl.DataFrame  # one column per field read (text, unless the reader is typed), `_line`
    header: tuple[str, ...]
    blank_lines: int  # empty lines between the rows: not rows, but counted
    control_total: int | None  # the count a trailer line declared, if the source has one
    trailer_found: bool
    header_lines: int = 0  # lines of the piece that are neither rows nor blank (a header)


class FileParser(Protocol):
    def parse(self, data: bytes, last: bool, first_line: int) -> RawBatch | None:
        """The next piece's rows; `first_line` is the file's line number of its first line.
        None while a reader of whole files is still gathering pieces. Raises SourceError."""
        ...


# A batch-wide step after parsing, over the rows of several files (`_file` included), given
# the column mapping: JSON Lines extracts its fields here, in one query for a batch of files.
BatchStep = Callable[[pl.DataFrame, dict[str, Column]], pl.DataFrame]


@dataclass(frozen=True)
class Reader:
    """A file format, as sources.yaml names it, and how its files are read."""

    format: str
    entity: Literal["trip", "boundary"]  # what its rows are
    by_lines: bool  # split at line boundaries into pieces; else gathered and read whole
    typed: bool  # columns come typed; else as text, parsed (and reasoned about) by the mapping
    open: Callable[[Source, Layout | None], FileParser] | None  # None: not staged as rows
    prepare: BatchStep | None = None
