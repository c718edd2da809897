"""How the CLI shows results: rich tables on a terminal, plain lines or JSON elsewhere."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from etl.run.reporter import Reporter, SilentReporter

if TYPE_CHECKING:  # the pipeline imports pandera: not for `etl status` or `etl sql`
    from etl.run.pipeline import RunResult

# Off a terminal (cron logs, pipes) rich would assume 80 columns and squeeze the tables.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


class ProgressReporter:
    """The steps of a run on a terminal: a bar over the files, then one line per later step
    (batch checks, matching, publish), each with its elapsed time; they stay on screen."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<12}"),
            BarColumn(bar_width=30),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console or err_console,
        )
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("loading", total=total, detail=f"0/{total} files")

    def advance(self, path: str) -> None:
        task = self.progress.tasks[-1]
        detail = f"{int(task.completed) + 1}/{int(task.total or 0)} files  {path}"
        self.progress.update(self.task, advance=1, detail=detail)

    def stage(self, name: str) -> None:
        self._end_stage()
        self.task = self.progress.add_task(name, total=None, detail="")

    def log(self, message: str) -> None:
        self.progress.console.print(f"{_now()} {message}", markup=False, highlight=False)

    def close(self) -> None:
        self._end_stage()
        self.progress.stop()

    def _end_stage(self) -> None:
        """Mark the current step done: its bar fills and its clock stops."""
        if self.task is None:
            return
        task = self.progress.tasks[-1]
        detail = f"{int(task.total)} files" if task.description == "loading" else "done"
        self.progress.update(
            self.task, total=task.total or 1, completed=task.total or 1, detail=detail
        )
        self.task = None


class LineReporter:
    """Plain timestamped lines on stderr, for cron and CI: each step, when it ends and how long
    it took."""

    def __init__(self) -> None:
        self.step: tuple[str, float] | None = None

    def start(self, total: int) -> None:
        self._begin("loading", f"loading {total} file(s)")

    def advance(self, path: str) -> None: ...

    def stage(self, name: str) -> None:
        self._begin(name, f"{name} ...")

    def _begin(self, name: str, line: str) -> None:
        self._end_stage()
        self.step = (name, time.monotonic())
        self.log(line)

    def log(self, message: str) -> None:
        print(f"{_now()} {message}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._end_stage()

    def _end_stage(self) -> None:
        if self.step is not None:
            name, began = self.step
            self.log(f"{name} done in {time.monotonic() - began:.1f} s")
            self.step = None


def _now() -> str:
    """A log line's timestamp: local time to the second."""
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def reporting(quiet: bool) -> Iterator[Reporter]:
    """Where a long command tells its steps: nowhere with --json, else a progress bar on a
    terminal or plain lines; the display ends before an error or the result is printed."""
    if quiet:
        yield SilentReporter()
        return
    reporter = ProgressReporter() if err_console.is_terminal else LineReporter()
    try:
        yield reporter
    finally:
        reporter.close()


def to_json(value: Any) -> Any:
    """JSON-safe values for the warehouse's types."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def run_warnings(result: RunResult, data_root: Path) -> list[str]:
    """What a run that succeeded should still tell: a data root where no source found a file
    is usually the wrong folder, not a quiet night."""
    if result.files or result.files_skipped:
        return []
    return [
        f"no source found a file under {data_root}: is that the data root? "
        f"(--data-root or ETL_DATA_ROOT; `etl sample --out {data_root}` writes sample data)"
    ]


def print_run(result: RunResult, as_json: bool, data_root: Path | None = None) -> None:
    files = [vars(f) for f in result.files]
    warnings = run_warnings(result, data_root) if data_root is not None else []
    if as_json:
        payload = {
            "run_id": result.run_id,
            "status": result.status,
            "exit_code": result.exit_code,
            "published": result.published,
            "message": result.message,
            "files_skipped": result.files_skipped,
            "files": files,
            "reasons": dict(result.reason_counts.most_common()),
            "warnings": warnings,
        }
        console.print_json(json.dumps(payload, default=to_json))
        return
    for warning in warnings:
        err_console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    loaded = [f for f in result.files if f.status == "loaded"]
    failed = [f for f in result.files if f.status != "loaded"]
    console.print(
        f"run {result.run_id}: [bold]{result.status}[/] — {len(loaded)} file(s) loaded, "
        f"{result.files_skipped} unchanged, {len(failed)} failed"
    )
    console.print(
        f"rows: {result.total('rows_read'):,} read, {result.total('rows_staged'):,} staged "
        f"({result.total('rows_flagged'):,} flagged), "
        f"{result.total('rows_quarantined'):,} quarantined"
    )
    if result.reason_counts:
        top = ", ".join(f"{name} {count:,}" for name, count in result.reason_counts.most_common(5))
        console.print(f"top reasons: {top}")
    for f in failed:
        console.print(f"[red]{f.status}[/] {f.path}: {f.reason}")
    if result.message != "ok":
        console.print(result.message)


def print_query(columns: list[str], rows: list[tuple], output: str) -> None:
    if output == "json":
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        sys.stdout.write(json.dumps(records, default=to_json, indent=2) + "\n")
    elif output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else cell(v) for v in row] for row in rows])
    else:
        cells = [[cell(v) for v in row] for row in rows]
        if _table_width(columns, cells) > console.width:
            _print_records(columns, cells)
            return
        table = Table(*columns, show_lines=False)
        for row in cells:
            table.add_row(*row)
        console.print(table)


def cell(value: Any) -> str:
    """A value as text the way SQL shows it: NULL, true/false, lists and structs as JSON."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=to_json, ensure_ascii=False)
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _table_width(columns: list[str], cells: list[list[str]]) -> int:
    """The width a table needs to show every value on one line (3 columns of border each)."""
    widths = [len(name) for name in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    return sum(widths) + 3 * len(columns) + 1


def _print_records(columns: list[str], cells: list[list[str]]) -> None:
    """Rows too wide for the screen, one `column | value` line each (as psql's \\x does),
    instead of a table that squeezes every column to a letter."""
    pad = max(len(name) for name in columns)
    for number, row in enumerate(cells, start=1):
        console.print(f"-[ row {number} ]-", style="bold", highlight=False)
        for name, value in zip(columns, row, strict=True):
            console.print(f"{name:<{pad}} | {value}", markup=False, highlight=False)


def print_status(runs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(runs, default=to_json, indent=2) + "\n")
        return
    if not runs:
        console.print("no runs yet")
        return
    table = Table(
        "run", "status", "files new/same/failed", "read", "staged", "flagged", "quarantined",
        "failed checks", "published",
    )  # fmt: skip
    table.columns[0].no_wrap = True
    for r in runs:
        table.add_row(
            r["run_id"],
            r["status"],
            f"{r['files_loaded'] or 0}/{r['files_skipped'] or 0}/{r['files_failed'] or 0}",
            f"{r['rows_read'] or 0:,}",
            f"{r['rows_staged'] or 0:,}",
            f"{r['rows_flagged'] or 0:,}",
            f"{r['rows_quarantined'] or 0:,}",
            "\n".join(r["failed_checks"]) or "-",
            "yes" if r["published"] else "no",
        )
    console.print(table)


# A trip the models learned starts and ends in DC, near its edges, or at one of its airports.
NEAR_DC_MILES = 3.0
METRES_PER_MILE = 1609.344


def outside_dc(point: tuple[float, float], option: str) -> str | None:
    """A warning for `etl predict` when a point is far from DC and from its airports (the
    region check lets Baltimore through: the models would answer it as a short DC trip)."""
    import shapely
    from shapely.ops import nearest_points

    from etl.sample.geo import AIRPORTS, dc_polygon, haversine_m

    lat, lon = point
    edge = nearest_points(dc_polygon(), shapely.Point(lon, lat))[0]  # the point itself inside
    miles = float(haversine_m(lat, lon, edge.y, edge.x)) / METRES_PER_MILE
    airport = min(float(haversine_m(lat, lon, a.lat, a.lon)) for a in AIRPORTS)
    if miles <= NEAR_DC_MILES or airport / METRES_PER_MILE <= NEAR_DC_MILES:
        return None
    return (
        f"{option} {lat},{lon} is {miles:.0f} miles outside DC and at none of its airports "
        f"({', '.join(a.code for a in AIRPORTS)}): the models learned trips in DC, so this "
        "estimate is a guess"
    )


def local_minute(iso: str) -> str:
    """A pickup time as a reader wants it: `2024-05-14 08:30 EDT`, no seconds or microseconds."""
    when = datetime.fromisoformat(iso).astimezone(ZoneInfo("America/New_York"))
    return when.strftime("%Y-%m-%d %H:%M %Z")
