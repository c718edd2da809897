"""Find the same physical trip logged in two silos, one-to-one, inside DuckDB.

After the courier acquisition some vehicles logged a trip in both the dispatch system and the
courier system under different ids. Their clocks and GPS units differ, so the two records agree
only within a tolerance: pickup times within two minutes, pickup *and* drop-off points within
100 m (see ``docs/data.md``, "Where the silos overlap"). :func:`match_trips` finds those pairs
so the curated layer can keep each physical trip once and record the pair in
``quality.matches``.

How it works (the heavy lifting is SQL in ``warehouse/integrate/match_trips.sql``;
Python only orchestrates):

1. **Candidates, by a band join.** Pickup times are cut into buckets as wide as the time
   tolerance. Two pickups within the tolerance are at most one bucket apart, so each left trip
   is joined to the right trips of its own bucket and the two neighbouring buckets: a hash
   equi-join that touches only temporal neighbours, never the cross product. The exact time,
   pickup-distance and drop-off-distance tests (haversine, in SQL) then keep the real candidates
   and give each a score in (0, 1].

2. **One-to-one, greedy best-first.** The wanted answer is the classic greedy matching: walk the
   candidate pairs from the best score down and keep a pair when neither of its trips is taken
   yet. Walking pairs one at a time would be a Python loop over rows, so the same matching is
   computed in rounds of set-based SQL instead (the "locally dominant pair" formulation):

   * *accept*: keep every remaining pair that is the best remaining pair of its left trip AND
     of its right trip;
   * *prune*: delete every remaining pair that touches a trip accepted in this round;
   * repeat until no candidate remains.

   Pairs are ranked by one strict total order (score, then the smaller time gap, then the
   smaller distance gap, then the ids), so every trip has exactly one best pair and two pairs
   accepted in one round can never share a trip; pruning guarantees no later round reuses a
   trip. That is why the result is one-to-one.

   Why it equals sequential greedy: the best remaining pair overall is always the best of both
   its trips, so each round makes progress. Conversely take a pair *p* accepted in some round.
   Any better pair *q* sharing a trip with *p* was no longer remaining, so it was pruned because
   one of *q*'s trips was taken by an earlier accepted pair; by induction that pair is in the
   greedy matching too, so *q* is not. Hence when sequential greedy reaches *p*, neither of its
   trips is taken by a better pair and greedy keeps *p* as well. Both procedures end with a
   maximal matching, so they are the same set of pairs.

   The number of rounds is the length of the longest chain of "my best partner prefers someone
   else" in a conflict cluster. Real clusters are a handful of trips (two cars leaving a depot
   together), so almost every pair is settled in round 1 and the rest in two or three more;
   each round only touches the small remaining candidate table. The loop is capped
   (``max_rounds``): if a pathological input hits the cap, the pairs accepted so far are still
   one-to-one and correct, the unresolved trips are left unmatched, and a warning says so.

Why greedy and not an optimal assignment (Hungarian): duplicates across silos are near-exact,
so the best-scoring pair is almost always the true one; greedy is explainable per pair ("it was
the closest for both trips"), deterministic, and fits in a few SQL passes.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from functools import cache

import duckdb

from etl.engine.duckdb.warehouse import named_statements, quote_identifier
from etl.paths import INTEGRATE_SQL_DIR

log = logging.getLogger(__name__)

#: Upper bound on resolution rounds. The benchmark's year of synthetic trips settles in 1 round
#: and a deliberately dense conflict test in 5; the cap only protects against a pathological
#: chain of conflicts turning into a long series of SQL passes.
DEFAULT_MAX_ROUNDS = 50

#: Columns of the table :func:`match_trips` creates, in order. The first seven are the contract;
#: ``time_offset_s`` (right minus left, signed, for spotting a clock skew between silos) and
#: ``round`` (the resolution round that accepted the pair) are extras for diagnosis.
RESULT_COLUMNS = (
    "left_id",
    "right_id",
    "time_gap_s",
    "pickup_gap_m",
    "dropoff_gap_m",
    "distance_gap_m",
    "score",
    "time_offset_s",
    "round",
)

_SQL_FILE = "match_trips.sql"
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


@dataclass(frozen=True)
class MatchTolerance:
    """How far apart two records of the same physical trip may be.

    Attributes:
        max_time_gap_s: largest allowed absolute difference between the two pickup times, in
            seconds (inclusive). It is also the width of the time buckets of the band join.
        max_distance_m: largest allowed great-circle distance, in metres (inclusive), between
            the two pickup points and, separately, between the two drop-off points.
    """

    max_time_gap_s: float = 120.0
    max_distance_m: float = 100.0

    def __post_init__(self) -> None:
        # Zero would divide by zero in the bucketing and the score; a negative or non-finite
        # tolerance is always a configuration mistake, so fail before any SQL runs.
        for name in ("max_time_gap_s", "max_distance_m"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(
                    f"MatchTolerance.{name} must be a finite number > 0, got {value!r}"
                )


@cache
def _statements() -> dict[str, str]:
    """Load the named statements of the matching SQL file (``-- name: x`` headers)."""
    return named_statements(INTEGRATE_SQL_DIR / _SQL_FILE)


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _run(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object]) -> None:
    """Execute one named statement, binding exactly the ``$params`` it mentions.

    DuckDB rejects a prepared statement given parameters it does not use, so each statement
    gets the subset its text (comments excluded) refers to.
    """
    sql = _statements()[name]
    wanted = set(_PARAM.findall(_strip_comments(sql)))
    missing = wanted - params.keys()
    if missing:  # a programming error between this module and the .sql file
        raise KeyError(f"statement {name!r} needs parameters {sorted(missing)}")
    started = time.perf_counter()
    if wanted:
        con.execute(sql, {key: params[key] for key in wanted})
    else:
        con.execute(sql)
    log.debug("match: %s took %.3f s", name, time.perf_counter() - started)


def match_trips(
    con: duckdb.DuckDBPyConnection,
    left: str,
    right: str,
    tol: MatchTolerance = MatchTolerance(),
    *,
    result_table: str | None = None,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> str:
    """Match trips of table ``left`` to trips of table ``right`` one-to-one.

    Both tables are canonical trip tables (``staging.dispatch``, ``staging.courier``, a view,
    ...) with at least ``source_record_id``, ``pickup_at`` (TIMESTAMPTZ), ``pickup_lat``,
    ``pickup_lon``, ``dropoff_lat`` and ``dropoff_lon``. Rows missing any of these never match.

    A pair is a candidate when the pickup times differ by at most ``tol.max_time_gap_s`` and
    both the pickup points and the drop-off points are within ``tol.max_distance_m`` of each
    other. Among candidates the greedy best-first one-to-one matching is kept (see the module
    docstring for the algorithm and why it is correct).

    Args:
        con: the DuckDB connection holding both tables. The result and the short-lived work
            tables (``_match_*``) are temporary tables of this connection.
        left: name of the left trip table, optionally schema-qualified.
        right: name of the right trip table.
        tol: the tolerances.
        result_table: name of the temporary table to create (replaced if it exists). By
            default a fresh unique name, so two calls never overwrite each other.
        max_rounds: cap on the resolution rounds (see the module docstring).

    Returns:
        The name of a temporary table with one row per matched pair and the columns
        :data:`RESULT_COLUMNS`: ``left_id``, ``right_id`` (the ``source_record_id`` values),
        ``time_gap_s`` (absolute), ``pickup_gap_m``, ``dropoff_gap_m``, ``distance_gap_m`` (the
        larger of the two), ``score`` in (0, 1] (1 = identical, 0.5 = at every tolerance
        limit), ``time_offset_s`` (right minus left) and ``round``. Each id occurs at most once
        per column. Read it with ``con.table(name)``.
    """
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    name = result_table or f"match_pairs_{uuid.uuid4().hex[:12]}"
    params: dict[str, object] = {
        "left_table": left,
        "right_table": right,
        "max_time_gap_s": float(tol.max_time_gap_s),
        "max_distance_m": float(tol.max_distance_m),
    }
    try:
        _run(con, "haversine_macro", params)
        _run(con, "candidates", params)
        _run(con, "create_accepted", params)
        rounds = _resolve(con, params, max_rounds)
        _run(con, "finalize", params)
        con.execute(f"DROP TABLE IF EXISTS temp.main.{quote_identifier(name)}")
        con.execute(f"ALTER TABLE temp.main._match_result RENAME TO {quote_identifier(name)}")
        log.info("match %s x %s: resolved in %d rounds", left, right, rounds)
    finally:
        # Work tables go even when a statement fails, so a retry starts clean.
        _run(con, "cleanup", {})
    return name


def _resolve(con: duckdb.DuckDBPyConnection, params: dict[str, object], max_rounds: int) -> int:
    """Accept and prune candidate pairs round by round until none is left (or `max_rounds`);
    the number of rounds it took."""
    left, right = params["left_table"], params["right_table"]
    remaining = _count_remaining(con)
    log.info("match %s x %s: %d candidate pairs", left, right, remaining)
    rounds = 0
    # The loop is over resolution rounds, never over rows or pairs: each iteration is two
    # set-based statements on the (shrinking) candidate table, and it usually ends after
    # 2 to 4 rounds.
    while remaining and rounds < max_rounds:
        rounds += 1
        params["round"] = rounds
        _run(con, "accept_round", params)
        _run(con, "prune_round", params)
        remaining = _count_remaining(con)
    if remaining:
        log.warning(
            "match %s x %s: %d candidate pairs still unresolved after %d rounds; the trips "
            "they involve are left unmatched (the accepted pairs are still one-to-one)",
            left,
            right,
            remaining,
            rounds,
        )
    return rounds


def _count_remaining(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(_statements()["remaining"]).fetchall()[0][0])
