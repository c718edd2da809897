"""Great Expectations suites validated from one DuckDB aggregate pass over the batch.

GX's SQL execution engine asks DuckDB one query per metric or group of metrics, each over the
batch view with its derived columns computed again: at 5 M rows the trip suite took 6.6 CPU s,
half of it the uniqueness window (every row joined to its value's count), a sixth the median
(an ORDER BY of the column), a fifth three percentile queries.

Here each expectation still is GX's: GX lists the metrics it needs
(``get_validation_dependencies``) and judges them (``metrics_validate``: success, ``mostly``,
observed value, result format), but the metric values come from one SELECT whose columns are the
SQL parts of ``warehouse/audit/gx_metrics.sql`` (one per metric GX names), duplicates computed
once. An expectation that needs a metric not in that file, a domain option it does not know
(``row_condition``, ...), example values (``partial_unexpected_count`` > 0), a column the batch
does not have, or whose values GX cannot judge, is returned to the caller to run through GX
itself (``etl.quality.gx_duckdb``), so a user's own suite keeps working as it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from numbers import Real
from typing import TYPE_CHECKING, Any

import duckdb

from etl.engine.duckdb.warehouse import named_statements, quote_identifier
from etl.paths import WAREHOUSE_DIR
from etl.quality.gx_duckdb import batch_select_sql

if TYPE_CHECKING:  # pragma: no cover
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.validator.metric_configuration import MetricConfiguration

log = logging.getLogger(__name__)

METRICS_SQL = WAREHOUSE_DIR / "audit" / "gx_metrics.sql"
BATCH = "_etl_gx_batch"
# Domain kwargs every metric carries; other keys (or these with values) are not compiled.
_PLAIN_DOMAIN = frozenset({"batch_id", "table", "row_condition", "condition_parser"})
_COLUMN_KEYS = ("column", "column_A", "column_B")
_VALUE_KEYS = {"quantiles", "allow_relative_error", "or_equal", "result_format"}


@cache
def _parts() -> dict[str, str]:
    """The named SQL parts, their comment lines left out (they are embedded in one SELECT)."""
    return {
        name: "\n".join(ln for ln in body.splitlines() if not ln.lstrip().startswith("--"))
        for name, body in named_statements(METRICS_SQL).items()
    }


@dataclass(frozen=True)
class CompiledMetric:
    sql: str | None  # the aggregate expression; None: the value needs no query
    finish: Callable[[Any], Any]  # the query's value -> GX's metric value


def _same(value: Any) -> Any:
    return value


def _no_examples(_: Any) -> list:
    return []


def _proportion(v: Mapping[str, int]) -> float | int:
    return v["nonnull"] / v["total"] if v["total"] > 0 else 0


def _median(v: Mapping[str, Any]) -> Any:
    if not v["n"]:
        return None
    low, high = v["middle"]
    return float(low + high) / 2.0 if v["n"] % 2 == 0 else low


def _quantiles(count: int) -> Callable[[list | None], list]:
    return lambda values: [None] * count if values is None else list(values)


_FINISH: dict[str, Callable[[Any], Any]] = {
    "column.non_null_proportion": _proportion,
    "column.median": _median,
}


def compile_metric(metric: MetricConfiguration, columns: set[str]) -> CompiledMetric | None:
    """The SQL of one GX metric on the batch, or None when GX must compute it itself."""
    domain = dict(metric.metric_domain_kwargs)
    values = dict(metric.metric_value_kwargs or {})
    names = {k: domain.pop(k) for k in _COLUMN_KEYS if k in domain}
    ignore_row_if = domain.pop("ignore_row_if", None)
    if ignore_row_if is not None and not metric.metric_name.startswith("column_pair_values."):
        return None
    if any(v is not None for v in domain.values()) or not set(domain) <= _PLAIN_DOMAIN:
        return None
    if not set(values) <= _VALUE_KEYS or not all(
        isinstance(n, str) and n in columns for n in names.values()
    ):
        return None
    name = metric.metric_name
    if name.endswith(".unexpected_values"):
        return _examples(values)
    sql = _parts().get(name.replace(".", "__"))
    if sql is None:
        return None
    fill = {k: quote_identifier(v) for k, v in names.items()}
    fill["batch"] = BATCH
    finish = _FINISH.get(name, _same)
    if name == "column.quantile_values":
        quantiles = values.get("quantiles")
        if not isinstance(quantiles, list) or not all(_is_number(q) for q in quantiles):
            return None
        fill["quantiles"] = "[" + ", ".join(repr(float(q)) for q in quantiles) + "]::DOUBLE[]"
        finish = _quantiles(len(quantiles))
    if name.startswith("column_pair_values."):
        pair = _pair_parts(name, values, ignore_row_if)
        if pair is None:
            return None
        fill.update({k: v.format(**fill) for k, v in pair.items()})
    return CompiledMetric(sql.format(**fill), finish)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _examples(values: Mapping[str, Any]) -> CompiledMetric | None:
    """Example values are only compiled when none are asked for (the default result format)."""
    fmt = values.get("result_format")
    if isinstance(fmt, Mapping) and fmt.get("partial_unexpected_count") == 0:
        return CompiledMetric(None, _no_examples)
    return None


def _pair_parts(name: str, values: Mapping[str, Any], ignore_row_if: Any) -> dict[str, str] | None:
    """The condition and the domain of a column pair metric, by GX's kwargs."""
    parts = _parts()
    condition = f"condition__{name.split('.')[1]}" + (
        "__or_equal" if values.get("or_equal") else ""
    )
    domain = f"pair_domain__{ignore_row_if}"
    if condition not in parts or domain not in parts:
        return None
    return {"condition": parts[condition], "pair_domain": parts[domain]}


def validate_in_one_pass(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    derived: Mapping[str, str],
    columns: Iterable[str],
    expectations: Sequence[Expectation],
    result_format: str | dict,
) -> dict[int, ExpectationValidationResult]:
    """GX's results of the expectations whose metrics one query over ``relation`` (plus the
    ``derived`` columns; ``columns`` are the batch's) computes, by position in
    ``expectations``. The others are left out: the caller has GX's SQL engine run them."""
    runtime = {"result_format": result_format}
    plans: dict[int, dict[Any, CompiledMetric]] = {}
    known = set(columns)
    for i, exp in enumerate(expectations):
        deps = exp.get_validation_dependencies(runtime_configuration=dict(runtime))
        compiled = {m.id: compile_metric(m, known) for m in deps.get_metric_configurations()}
        if all(c is not None for c in compiled.values()):
            plans[i] = compiled  # type: ignore[assignment]
    values = _run_query(con, relation, derived, plans) if plans else None
    if values is None:  # nothing to compute, or the query failed: GX says what is wrong
        return {}
    results = {i: _judge(expectations[i], plan, values, runtime) for i, plan in plans.items()}
    return {i: res for i, res in results.items() if res is not None}


def _run_query(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    derived: Mapping[str, str],
    plans: Mapping[int, Mapping[Any, CompiledMetric]],
) -> dict[str, Any] | None:
    """Every distinct metric expression, computed in one SELECT: expression -> value."""
    exprs = sorted({c.sql for plan in plans.values() for c in plan.values() if c.sql})
    if not exprs:
        return {}
    select = ",\n  ".join(f"{e} AS m{n}" for n, e in enumerate(exprs))
    sql = f"WITH {BATCH} AS NOT MATERIALIZED ({batch_select_sql(relation, derived)})\n"
    sql += f"SELECT {select}\nFROM {BATCH}"
    cur = con.cursor()  # committed data, as GX's connections see it; con's transaction untouched
    try:
        row = cur.execute(sql).fetchone()
    except duckdb.Error as exc:
        log.info("one-pass metrics failed, Great Expectations runs them: %s", exc)
        return None
    finally:
        cur.close()
    return dict(zip(exprs, row, strict=True))


def _judge(
    exp: Expectation,
    plan: Mapping[Any, CompiledMetric],
    values: Mapping[str, Any],
    runtime: Mapping[str, Any],
) -> ExpectationValidationResult | None:
    """GX's own verdict on the metric values; None if GX cannot judge them (it runs them)."""
    try:
        metrics = {mid: c.finish(values.get(c.sql)) for mid, c in plan.items()}
        return exp.metrics_validate(metrics, runtime_configuration=dict(runtime))
    except Exception as exc:  # e.g. a median of timestamps: GX reports the exception itself
        log.info("%s: left to Great Expectations (%s)", type(exp).__name__, exc)
        return None
