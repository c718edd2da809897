"""Build the curated layer, in the publish transaction: models, calendar, matches, totals.

SQL models do what SQL does well; the steps SQL cannot do here are Python in between:

1. the intermediate models (views over staging, one shape for every source);
2. the calendar with DC holidays (the holidays library) as `intermediate.calendar`;
3. cross-silo matching (`etl.engine.duckdb.match`) as `intermediate.trip_matches`, and the pairs
   into `quality.matches`;
4. the curated models;
5. the control totals, which must reconcile or the publish fails.

curated.trips itself is a view over that table and staging: etl/engine/duckdb/trips_view.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

from etl.config.spec import Config, Match
from etl.engine.duckdb import sql_models
from etl.engine.duckdb.match import MatchTolerance, match_trips
from etl.engine.duckdb.trips_view import STORED
from etl.engine.duckdb.warehouse import append
from etl.errors import ReconciliationError
from etl.paths import WAREHOUSE_DIR

UNEXPLAINED = (
    "unexplained_read",
    "unexplained_staging",
    "unexplained_quarantine",
    "unexplained_rows",
)


@dataclass(frozen=True)
class BuildSummary:
    matches: int
    control_totals: pl.DataFrame


def build_curated(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    run_id: str,
    models: list[sql_models.Model],
    calendar: Callable[[date, date], pl.DataFrame],
    loaded: list[tuple[str, str]] | None = None,
    stage: Callable[[str], None] = lambda name: None,
) -> BuildSummary:
    """Rebuild everything downstream of staging. Raises ReconciliationError.

    With `loaded` (the source and path of each file this run loaded), incremental models are
    updated for those files only, and for every row of a matched source that loaded any;
    without it, they are rebuilt. `calendar` gives the days from a first to a last date, both
    inclusive (etl.reference.calendar); `stage` is told as each step begins (for progress).
    """
    stage("matching")
    # The stored part of curated.trips (etl.engine.duckdb.trips_view) reads the matches.
    first = [m for m in models if m.name.startswith("intermediate.") and m.name != STORED]
    sql_models.build(con, first)
    _write_calendar(con, calendar)
    matches = _write_matches(con, config, run_id)
    changes = None
    if loaded is not None:
        # A new file on either side of a match can change which records of both sides stay.
        rematch = rematched_sources(config, {source for source, _ in loaded})
        changes = sql_models.Changes(
            files=tuple(sorted(path for _, path in loaded)), sources=tuple(sorted(rematch))
        )
    stage("publish")
    sql_models.build(con, [m for m in models if m not in first], changes)
    totals = control_totals(con, run_id)
    return BuildSummary(matches, totals)


def rematched_sources(config: Config, touched: set[str]) -> set[str]:
    """The sources whose matches a new file of `touched` can change: those paired with one,
    and with those, and so on (a record dropped by one pair changes what a later pair sees)."""
    pairs = [{m.left, m.right} for m in config.integrate.matches]
    rematch: set[str] = set()
    while True:
        grown = set().union(*(pair for pair in pairs if pair & (touched | rematch)))
        if grown <= rematch:
            return rematch
        rematch |= grown


def control_totals(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """Compute and verify the control totals of this run; record them when they reconcile."""
    sql = (WAREHOUSE_DIR / "audit" / "control_totals.sql").read_text()
    totals = pl.from_arrow(con.sql(sql).to_arrow_table()).select(
        pl.lit(run_id).alias("run_id"), pl.all()
    )
    reconcile(totals)
    append(con, "quality.control_totals", totals)
    return totals


def reconcile(totals: pl.DataFrame) -> None:
    """Raise ReconciliationError unless every unexplained difference of the totals is 0 (the
    fares to the cent); any engine's totals, as warehouse/audit/control_totals.sql gives them."""
    bad = totals.filter(
        pl.any_horizontal(pl.col(c) != 0 for c in UNEXPLAINED)
        | (pl.col("unexplained_fare_usd").abs() > 0.01)
    )
    if bad.height:
        raise ReconciliationError(
            "control totals do not reconcile for "
            + ", ".join(
                f"{row['source']} (read {row['rows_read']}, staged {row['rows_staged']}, "
                f"quarantined {row['rows_quarantined']} "
                f"({row['unexplained_quarantine']} unlike quality.quarantine), "
                f"curated {row['rows_curated']}, "
                f"excluded {row['rows_excluded']}, merged {row['rows_merged']})"
                for row in bad.iter_rows(named=True)
            ),
            totals,
        )


def calendar_years(first: date | None, last: date | None) -> tuple[date, date]:
    """Whole years around the trips' first and last dates (this year without trips), so that
    a day without trips is still a day."""
    today = date.today()
    return date((first or today).year, 1, 1), date((last or today).year, 12, 31)


def _write_calendar(
    con: duckdb.DuckDBPyConnection, build_dim_date: Callable[[date, date], pl.DataFrame]
) -> None:
    first, last = con.execute(
        "SELECT min(pickup_at)::DATE, max(pickup_at)::DATE FROM intermediate.all_trips"
    ).fetchall()[0]
    calendar = build_dim_date(*calendar_years(first, last))
    con.execute("DROP TABLE IF EXISTS intermediate.calendar")
    append(con, "intermediate.calendar", calendar)


def _write_matches(con: duckdb.DuckDBPyConnection, config: Config, run_id: str) -> int:
    """Match each configured pair of sources, in order; one table of kept and dropped records.

    A record is dropped at most once: a pair does not see the records an earlier pair dropped.
    A record one pair kept and a later pair dropped passes what it kept on to its own keeper,
    so that no kept record is a dropped one and curated.trips keeps each physical trip once,
    seen by every silo that logged it, however many silos there are.
    """
    con.execute(
        """
        CREATE OR REPLACE TABLE intermediate.trip_matches (
            kept_source VARCHAR, kept_id VARCHAR, dropped_source VARCHAR, dropped_id VARCHAR,
            time_gap_s DOUBLE, distance_gap_m DOUBLE, score DOUBLE
        )
        """
    )
    total = 0
    for match in config.integrate.matches:
        total += _match_pair(con, match, run_id, after_others=total > 0)
    for _ in config.integrate.matches:  # a chain of keepers is at most as long as the pairs
        repointed = con.execute(
            """
            UPDATE intermediate.trip_matches AS m
            SET kept_source = d.kept_source, kept_id = d.kept_id
            FROM intermediate.trip_matches AS d
            WHERE d.dropped_source = m.kept_source AND d.dropped_id = m.kept_id
            """
        ).fetchall()[0][0]
        if not repointed:
            break
    return total


def _match_pair(
    con: duckdb.DuckDBPyConnection, match: Match, run_id: str, after_others: bool = False
) -> int:
    # Records an earlier pair dropped are out; the anti-join is skipped when there are none.
    not_dropped = (
        " AND NOT EXISTS (SELECT 1 FROM intermediate.trip_matches AS m "
        "WHERE m.dropped_source = t.source AND m.dropped_id = t.source_record_id)"
    )
    for side, source in (("left", match.left), ("right", match.right)):
        # A view cannot take a parameter; the source name is a checked identifier.
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW _match_{side} AS SELECT * FROM intermediate.all_trips "
            f"AS t WHERE source = '{source}' AND excluded_by IS NULL"
            + (not_dropped if after_others else "")
        )
    tolerance = MatchTolerance(match.max_time_gap_s, match.max_distance_m)
    pairs = match_trips(con, "_match_left", "_match_right", tolerance)
    kept, dropped = ("left", "right") if match.keep == "left" else ("right", "left")
    con.execute(
        f"""
        INSERT INTO intermediate.trip_matches
        SELECT $kept_source, {kept}_id, $dropped_source, {dropped}_id,
               time_gap_s, distance_gap_m, score
        FROM {pairs}
        """,
        {
            "kept_source": getattr(match, kept),
            "dropped_source": getattr(match, dropped),
        },
    )
    con.execute(
        f"""
        INSERT INTO quality.matches
        SELECT $run_id, $left, left_id, $right, right_id, time_gap_s, distance_gap_m, score
        FROM {pairs}
        """,
        {"run_id": run_id, "left": match.left, "right": match.right},
    )
    count = con.execute(f"SELECT count(*) FROM {pairs}").fetchall()[0][0]
    con.execute(f"DROP TABLE {pairs}")
    con.execute("DROP VIEW _match_left")
    con.execute("DROP VIEW _match_right")
    return count
