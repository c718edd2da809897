"""The run ledger: what a run did with each file and how it ended (`quality.runs`/`files`).

The ledger cannot say what did not happen: a run's `published` flag, its final status and its
files are written in the transaction that publishes it (or withdraws it), so a run is
published exactly when that transaction committed. Recovery touches only runs that never
published.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from etl.engine.base import Engine, FileRecord, RunRecord
from etl.errors import EXIT_BAD_INPUT, EXIT_FAILED_AUDIT, EXIT_OK
from etl.quality.audit import SourceCheck
from etl.run.crashpoints import crash_point


@dataclass(frozen=True)
class FileOutcome(FileRecord):
    """What a run did with one file, and its rows per reason and flag."""

    reasons: Counter = field(default_factory=Counter)


@dataclass
class RunResult:
    """The outcome of one run, as the CLI prints it and `quality.runs` records it."""

    run_id: str
    status: str
    exit_code: int
    files: list[FileOutcome]
    files_skipped: int
    published: bool
    message: str
    reason_counts: Counter = field(default_factory=Counter)
    checks: list[SourceCheck] = field(default_factory=list)

    def total(self, attribute: str) -> int:
        return sum(getattr(f, attribute) for f in self.files)


@dataclass(frozen=True)
class RunSoFar:
    """A run once its files are loaded and audited: what the ledger will record of it."""

    run_id: str
    outcomes: tuple[FileOutcome, ...]
    skipped: int
    checks: tuple[SourceCheck, ...] = ()


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def recover(engine: Engine, sources: list[str]) -> None:
    """Undo what a run that died left behind: its rows in staging were never published."""
    engine.recover(sources)
    crash_point("recovered")


def start(engine: Engine, run_id: str, config_path: Path, data_root: Path) -> None:
    engine.start_run(run_id, str(config_path), str(data_root))
    crash_point("started")


def record_error(engine: Engine, run_id: str, exc: Exception, exit_code: int) -> None:
    """An error ended the run: recorded for `etl status`, with the exit code it ends with."""
    engine.fail_run(run_id, exit_code, f"{type(exc).__name__}: {exc}")


def conclude(run: RunSoFar, not_published: str | None = None) -> tuple[RunResult, RunRecord]:
    """How the run ended, for the CLI and for the ledger: published (perhaps with files that
    could not be read), or not published, saying why."""
    outcomes = list(run.outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    if not_published is not None:
        exit_code, status, message = EXIT_FAILED_AUDIT, "audit_failed", not_published
    elif failed:
        exit_code, status = EXIT_BAD_INPUT, "partial"
        message = f"{len(failed)} file(s) could not be read"
    else:
        exit_code, status, message = EXIT_OK, "published", "ok"
    result = RunResult(
        run.run_id, status, exit_code, outcomes, run.skipped, not_published is None, message,
        sum((o.reasons for o in outcomes), Counter()), list(run.checks),
    )  # fmt: skip
    record = RunRecord(
        run.run_id, status, exit_code, message,
        files_seen=len(outcomes) + run.skipped,
        files_loaded=sum(o.status == "loaded" for o in outcomes),
        files_skipped=run.skipped, files_failed=len(failed),
        rows_read=result.total("rows_read"), rows_staged=result.total("rows_staged"),
        rows_flagged=result.total("rows_flagged"),
        rows_quarantined=result.total("rows_quarantined"),
        unpublished=tuple(o for o in outcomes if o.status != "loaded"),
    )  # fmt: skip
    return result, record
