"""The writer thread: staged batches are written while the next batch is read and staged."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress

import duckdb
import polars as pl

from etl.engine.duckdb import warehouse


class BatchWriter:
    """Writes staged batches in a thread while the next batch is read and staged.

    DuckDB releases the GIL while it inserts, so writing overlaps with parsing on the second
    core. At most one batch is in flight (memory stays bounded), in order, and an error in a
    write is raised in the main thread at the next submit or at close.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.cursor = con.cursor()
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None

    def submit(self, writes: list[tuple[str, pl.DataFrame]]) -> None:
        self.flush()
        self.pending = self.pool.submit(self._write, writes)

    def close(self) -> None:
        self.flush()
        self.pool.shutdown()
        self.cursor.close()

    def abandon(self) -> None:
        """Stop after an error elsewhere: wait for the write in flight, whatever its outcome
        (the error that stopped the load is the one to tell)."""
        with suppress(Exception):
            self.flush()
        self.pool.shutdown()
        self.cursor.close()

    def flush(self) -> None:
        """Wait for the batch in flight to be written."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def _write(self, writes: list[tuple[str, pl.DataFrame]]) -> None:
        for table, frame in writes:
            warehouse.append(self.cursor, table, frame)
