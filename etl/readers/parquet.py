"""Parquet files: typed columns, kept as they are typed; the mapping casts and converts units.

A Parquet file is not text: it has no lines, so it is not split at line ends but gathered whole
and read with polars. A row's `_line` is its 1-based ordinal in the file (row groups in order).
"""

from __future__ import annotations

import io

import polars as pl

from etl.config.spec import Layout, Source
from etl.errors import SourceError
from etl.names import LINE
from etl.readers.base import RawBatch, Reader


class _ParquetFile:
    def __init__(self, source: Source, layout: Layout | None) -> None:
        self.parts: list[bytes] = []

    def parse(self, data: bytes, last: bool, first_line: int) -> RawBatch | None:
        self.parts.append(data)
        if not last:
            return None
        data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        self.parts = []
        if not data:
            raise SourceError("empty file")
        try:
            frame = pl.read_parquet(io.BytesIO(data))
        except (pl.exceptions.PolarsError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"not a readable Parquet file: {first}") from None
        header = tuple(frame.columns)
        frame = frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
        return RawBatch(frame, header, 0, control_total=None, trailer_found=False)


READER = Reader("parquet", "trip", by_lines=False, typed=True, open=_ParquetFile)
