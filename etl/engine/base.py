"""The engine seam: what the run's stages ask of a warehouse (docs/architecture.md).

The stages in :mod:`etl.run` hold an :class:`Engine` and issue no SQL of their own; an engine
implements these calls in its own dialect and with its own means (a writer thread, a memory
cap, a transaction). :class:`etl.engine.duckdb.DuckDBEngine` is the default implementation.

The values passed across the seam are plain: frames, strings, and the small records below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple, Protocol

import polars as pl

from etl.config.spec import Config

# Told the name of each step of a publish or withdrawal as it is reached (the crash points).
Checkpoint = Callable[[str], None]


class ManifestEntry(NamedTuple):
    """A file the warehouse holds the current version of (`quality.manifest`)."""

    path: str
    size_bytes: int | None
    mtime_ns: int | None
    fingerprint: str | None


@dataclass(frozen=True)
class FileRecord:
    """One row of the run ledger's `quality.files`: what a run did with one file."""

    source: str
    path: str
    status: str  # loaded, failed, audit_failed
    reason: str | None = None
    layout: str | None = None
    size_bytes: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    fingerprint: str | None = None
    rows_read: int = 0
    rows_staged: int = 0
    rows_flagged: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    control_total: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """The run ledger's final word on a run (`quality.runs`) and the files it did not publish."""

    run_id: str
    status: str
    exit_code: int
    message: str
    files_seen: int
    files_loaded: int
    files_skipped: int
    files_failed: int
    rows_read: int
    rows_staged: int
    rows_flagged: int
    rows_quarantined: int
    unpublished: tuple[FileRecord, ...]


@dataclass(frozen=True)
class KeyLookup:
    """A batch's record keys, to find those another file of its source already holds."""

    source: str
    batch_keys: pl.DataFrame  # `_pos`, `_file` and the key fields of the batch's rows
    in_flight: pl.DataFrame  # `_file` and the keys of the batch written before, if of `source`
    reloaded: Sequence[str]  # the files this run loads again: their staged versions give way
    run_id: str
    full_refresh: bool
    scope: str  # a regex whose first group of a file's path scopes its keys; '()': the source


@dataclass(frozen=True)
class Publication:
    """What a publish writes, in one transaction: the run is published exactly when it commits.
    Without `rebuild`, the incremental models are updated for the files loaded only."""

    run_id: str
    config: Config
    loaded: tuple[FileRecord, ...]
    boundaries: dict[str, pl.DataFrame]  # new boundary rows by source, replacing the old
    full_refresh: bool
    rebuild: bool  # every model, not only for the files loaded
    record: RunRecord
    # The calendar's days from a first to a last date, both inclusive (etl.reference.calendar).
    calendar: Callable[[date, date], pl.DataFrame]


@dataclass(frozen=True)
class Published:
    """A publish that committed; `matches` is None when nothing was built."""

    matches: int | None


@dataclass(frozen=True)
class NotReconciled:
    """A publish rolled back: the control totals did not add up (`totals` to record)."""

    message: str
    totals: pl.DataFrame


class FileStaging(Protocol):
    """Stages one file, or one span of whole lines of a large file, in a task of the engine's
    (picklable). Built by etl.run.load, which owns staging."""

    def units(self, file: Any, size: int) -> list[Any]:
        """What a file is staged as: itself, or its spans if larger than `size` bytes."""

    def __call__(
        self, unit: Any, marks: pl.DataFrame | None = None
    ) -> tuple[pl.DataFrame, pl.DataFrame, Any, pl.DataFrame]:
        """The unit's staged rows, quarantined rows, outcome (a FileRecord with its rows per
        reason and flag, `reasons`) and every row's `_file`, `_line`, key fields and `_held`
        (staged). `marks` (`_line`, `duplicate_of`): rows whose key another file, or an
        earlier unit of the file, holds."""

    def assemble(self, parts: list[Any]) -> Any:
        """A file's outcome from its units' outcomes, in order."""


@dataclass(frozen=True)
class StagingWork:
    """Files an engine stages as its own tasks (`Engine.stage_files`): each unit of each file
    is given to `stage_file` in a task; `empty` is each source's staging shape; `keys`, each
    keyed source's key fields and scope (a regex, as `KeyLookup.scope`). A file this run loads
    again (`paths`; every staged file on a full refresh) holds no key against them."""

    run_id: str
    files: Sequence[Any]  # what `stage_file` is given: a file and its source
    sources: Sequence[str]  # the source of each file
    paths: Sequence[str]  # the path of each file (its record's `path`)
    stage_file: FileStaging
    empty: dict[str, pl.DataFrame]
    keys: dict[str, tuple[tuple[str, ...], str]]
    full_refresh: bool


class SuiteRun(Protocol):
    """A run's batch suites (etl.quality.audit.SuiteAudit), for an engine to run."""

    def run(self, native: Any, datasource: str) -> list[Any]:
        """The checks, validated on `native` through GX's datasource `datasource` (`duckdb`:
        a DuckDB connection; `spark`: a SparkSession)."""

    def rows(self, checks: Sequence[Any]) -> list[tuple]:
        """The checks' `quality.checks` rows, in its column order."""


class Engine(Protocol):
    """A warehouse as the run's stages use it."""

    # -- the run ledger ------------------------------------------------------------------------
    def recover(self, sources: Sequence[str]) -> None:
        """Remove what runs that died or failed left unpublished (staging rows, quarantine)."""

    def start_run(self, run_id: str, config_path: str, data_root: str) -> None: ...
    def fail_run(self, run_id: str, exit_code: int, message: str) -> None:
        """Record an error that ended a run (after its publish, if it published)."""

    def manifest(self) -> list[ManifestEntry]: ...
    def touch_files(self, mtimes: pl.DataFrame) -> None:
        """Record new mtimes (`path`, `mtime_ns`) of files whose content is unchanged."""

    def models_changed(self) -> bool:
        """Whether the engine's SQL models differ from those of the last published run."""

    # -- loading -------------------------------------------------------------------------------
    def create_staging(self, source: str, empty: pl.DataFrame, text_keys: Sequence[str]) -> None:
        """The source's staging table, of `empty`'s shape, if it has none yet."""

    def stored_boundary(self, source: str) -> list[str]:
        """The published boundary polygons of a boundary source, as WKT."""

    def loading(self) -> AbstractContextManager[None]:
        """A block of loading: staged batches are written behind it, all written at its end."""

    def stage_batch(self, source: str, staged: pl.DataFrame, quarantine: pl.DataFrame) -> None:
        """Write a batch's staged and quarantined rows (perhaps after this returns)."""

    def stage_files(self, work: StagingWork) -> list[tuple[FileRecord, dict[str, int]]] | None:
        """Stage trip files as the engine's own tasks, one per file, and write their rows; each
        file's record and rows per reason. None: the engine does not; the load stages batches
        in this process and hands them to `stage_batch`."""

    def discard_file(self, run_id: str, source: str, path: str) -> None:
        """Remove the rows this run staged and quarantined for one file."""

    def keys_elsewhere(self, lookup: KeyLookup) -> pl.DataFrame:
        """The `_pos` of each batch row whose key another file holds, and that file
        (`duplicate_of`)."""

    # -- audit, publish, withdraw --------------------------------------------------------------
    def run_suites(self, audit: SuiteRun) -> list[Any]:
        """Run the batch suites on the engine's own handle, through the Great Expectations
        datasource it speaks; record their rows in `quality.checks`; the checks."""

    def publish(
        self, publication: Publication, checkpoint: Checkpoint, progress: Callable[[str], None]
    ) -> Published | NotReconciled:
        """Retire replaced rows, store boundaries, record files, build the models, reconcile,
        and record the run as published, in one transaction. `progress` is told each step."""

    def withdraw(
        self,
        record: RunRecord,
        sources: Sequence[str],
        totals: pl.DataFrame | None,
        checkpoint: Checkpoint,
    ) -> None:
        """Remove this run's staged rows and record it, unpublished (with the control totals
        that did not reconcile, if any), in one transaction."""

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """The rows of a query that only reads."""
