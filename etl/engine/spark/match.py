"""Cross-silo matching on Spark: the rounds of etl/engine/duckdb/match.py (one-to-one,
best-first; its docstring says why the rounds equal sequential greedy), from the Spark twin of
its SQL, warehouse/spark/integrate/match_trips.sql.

Spark has no temp table to delete from: each round's accepted pairs and the candidates left are
SELECTs, checkpointed (computed once, the plan cut) so that round n does not recompute rounds
1 to n-1. The rows left and accepted are counted by the job that checkpoints them (`checkpoint`):
a count of its own would be one or two more jobs a round.
"""

from __future__ import annotations

import logging
from functools import cache, reduce
from typing import TYPE_CHECKING

from etl.engine.duckdb.match import DEFAULT_MAX_ROUNDS, RESULT_COLUMNS, MatchTolerance
from etl.engine.duckdb.warehouse import named_statements
from etl.engine.spark.sql import SPARK_DIR

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@cache
def statements() -> dict[str, str]:
    """The named statements of the Spark twin of match_trips.sql."""
    return named_statements(SPARK_DIR / "integrate" / "match_trips.sql")


def match_trips(
    spark: SparkSession,
    left: str,
    right: str,
    tol: MatchTolerance = MatchTolerance(),
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> tuple[DataFrame, int]:
    """The one-to-one matching of the trips of table (or view) `left` to those of `right`:
    a DataFrame of RESULT_COLUMNS (etl.engine.duckdb.match), one row per matched pair, and
    the number of pairs."""
    from pyspark.sql import DataFrame as SparkFrame

    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    args = {
        "left_table": left,
        "right_table": right,
        "max_time_gap_s": float(tol.max_time_gap_s),
        "max_distance_m": float(tol.max_distance_m),
    }
    candidates, remaining = checkpoint(spark.sql(statements()["candidates"], args=args))
    log.info("match %s x %s: %d candidate pairs", left, right, remaining)
    accepted = [candidates.selectExpr(*RESULT_COLUMNS[:-1], "CAST(0 AS INT) AS round").limit(0)]
    rounds = pairs = 0
    # A loop over rounds, never over rows: each is two set-based statements, usually 1 to 4.
    while remaining and rounds < max_rounds:
        rounds += 1
        candidates.createOrReplaceTempView("_match_candidates")
        this_round, found = checkpoint(
            spark.sql(statements()["accept_round"], args={"round": rounds})
        )
        this_round.createOrReplaceTempView("_match_accepted")
        candidates, remaining = checkpoint(spark.sql(statements()["prune_round"]))
        accepted.append(this_round)
        pairs += found
    if remaining:
        log.warning(
            "match %s x %s: %d candidate pairs still unresolved after %d rounds; the trips "
            "they involve are left unmatched (the accepted pairs are still one-to-one)",
            left, right, remaining, rounds,
        )  # fmt: skip
    for view in ("_match_candidates", "_match_accepted"):
        spark.catalog.dropTempView(view)
    # One union of the rounds at the end: a union grown round by round, checkpointed, lost
    # track of its columns in Spark 4.1 (NoSuchElementException: key not found).
    return reduce(SparkFrame.unionByName, accepted).select(*RESULT_COLUMNS), pairs


def checkpoint(frame: DataFrame, counting: str = "true") -> tuple[DataFrame, int]:
    """`frame` computed once (a local checkpoint: its plan cut) and the number of its rows for
    which the SQL condition `counting` holds, observed by the same job."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    observation = Observation()
    counted = F.count_if(F.expr(counting)).alias("rows")
    kept = frame.observe(observation, counted).localCheckpoint()
    return kept, int(observation.get["rows"])
