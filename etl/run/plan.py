"""Planning a run: how each source's rows are checked, and which files to load.

Everything a config can get wrong is found here, before any file is read: a row spec or a
suite that does not parse is a config error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import shapely

from etl.config.load import ConfigError
from etl.config.spec import Config, Source
from etl.engine.base import Engine
from etl.quality.batch import load_suite
from etl.quality.rowspec import RowSpecError, load_row_spec
from etl.readers.geojson import prepared_boundary
from etl.run.crashpoints import crash_point
from etl.run.ledger import FileOutcome
from etl.sources.files import Broken, FileRef, Known, discover
from etl.stage.batch import RowChecker, empty_staging_frame, reject_unparseable


@dataclass(frozen=True)
class Plan:
    """The files to load (boundaries first), those that could not be listed, and how many
    were skipped as already loaded."""

    to_load: tuple[tuple[FileRef, Source], ...]
    broken: tuple[FileOutcome, ...]
    skipped: int


def row_checkers(config: Config, config_dir: Path) -> dict[str, RowChecker]:
    """Each source's row checks, loaded before anything runs: a bad spec is a config error."""
    checkers: dict[str, RowChecker] = {}
    for name, source in config.sources.items():
        if source.row_checks is None:
            checkers[name] = reject_unparseable
            continue
        try:
            spec = load_row_spec(config_dir / source.row_checks)
        except (RowSpecError, OSError) as exc:
            raise ConfigError(f"sources.{name}.row_checks: {exc}") from None

        def checker(frame, spec=spec):
            from etl.quality.rows import check_rows  # pandera: imported only when rows come

            result = check_rows(frame, spec)
            return result.staged, result.rejected

        checkers[name] = checker
    return checkers


def check_suites(config: Config, config_dir: Path) -> None:
    """Each source's suite parsed before anything runs, not after loading: a config error."""
    for name, source in config.sources.items():
        if source.suite is not None:
            try:
                load_suite(config_dir / source.suite)
            except ValueError as exc:
                raise ConfigError(f"sources.{name}.suite: {exc}") from None


def prepare_staging(engine: Engine, config: Config) -> None:
    """Every trip source has its staging table, even before it has files: its generated
    intermediate view reads it."""
    for name, source in config.sources.items():
        if source.entity == "trip":
            # A text key is unique: stored as it is (see `-- uncompressed:` in the models).
            columns = source.columns_for(None)
            text_keys = [k for k in source.key if k in columns and columns[k].type == "string"]
            engine.create_staging(name, empty_staging_frame(source), text_keys)


def stored_boundary(engine: Engine, config: Config) -> shapely.Geometry | None:
    """The boundary the last published run stored, that trips are tested against."""
    for name, source in config.sources.items():
        if source.entity == "boundary":
            return prepared_boundary(engine.stored_boundary(name))
    return None


def plan(engine: Engine, config: Config, data_root: Path, full_refresh: bool) -> Plan:
    """The files to load this run: new or changed ones (all, on a full refresh).

    Boundaries come first: the trips of this run are tested against the newest one.
    """
    known = {entry.path: Known(*entry[1:]) for entry in engine.manifest()}
    todo, broken, touched, skipped = [], [], [], 0
    for name, source in config.sources.items():
        for found in discover(name, source, data_root, known, config.limits):
            if isinstance(found, Broken):
                broken.append(FileOutcome(name, found.path, "failed", found.reason))
                continue
            previous = known.get(found.path)
            if full_refresh or previous is None or previous.fingerprint != found.fingerprint:
                todo.append((found, source))
                continue
            skipped += 1
            if found.mtime_ns != previous.mtime_ns:
                touched.append((found.path, found.mtime_ns))
    if touched:
        # The same content under a new mtime (or one never recorded): remember it, or the
        # file would be hashed again on every run.
        schema = {"path": pl.Utf8, "mtime_ns": pl.Int64}
        engine.touch_files(pl.DataFrame(touched, schema=schema, orient="row"))
    todo.sort(key=lambda item: item[1].entity != "boundary")
    crash_point("planned")
    return Plan(tuple(todo), tuple(broken), skipped)
