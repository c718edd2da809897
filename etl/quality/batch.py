"""Batch checks (design step 6): Great Expectations suites run inside DuckDB, with severities.

A suite file (``schemas/suites/<entity>.json``) is GX 1.x suite JSON with two extensions::

    {
      "name": "trip",
      "derived_columns": {"implied_speed_mph": "distance_miles * 3600 / NULLIF(duration_s, 0)"},
      "expectations": [
        {"type": "expect_table_row_count_to_be_between",
         "kwargs": {"min_value": {"$param": "min_rows"}, "max_value": {"$param": "max_rows"}},
         "meta": {"severity": "warn", "name": "row count within the band of earlier runs"}}
      ]
    }

- ``meta.severity`` (required): ``"error"`` blocks the publish, ``"warn"`` is only reported.
  ``meta.name`` (optional) is the readable name stored in ``quality.checks.expectation``;
  without it the name is ``type(column)``.
- ``{"$param": "NAME"}`` anywhere inside ``kwargs`` is replaced by ``params["NAME"]`` at run
  time (the pipeline computes e.g. a row-count band from earlier runs). If a referenced param is
  missing, that expectation is not run: its result is success, ``observed_value`` None,
  ``details == {"skipped": "no history"}``.
- ``derived_columns`` (optional): name -> DuckDB SQL expression over the relation's columns.
  Each is added to the checked relation unless the relation already has a column of that name
  (then the relation's own column is used). Nothing is written to the database: see
  ``etl.quality.gx_duckdb``.
- Regex expectations (``*_match_regex*``) are refused: GX has no regex support for DuckDB.

``run_suite`` needs GX and imports it on first use (5-7 s); ``load_suite`` and ``CheckResult``
do not, so importing this module is cheap.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.paths import SCHEMAS_DIR

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    from great_expectations.data_context import AbstractDataContext

log = logging.getLogger(__name__)

SEVERITIES = ("error", "warn")
SUITES_DIR = SCHEMAS_DIR / "suites"
SKIPPED_NO_HISTORY = {"skipped": "no history"}
SKIPPED_EMPTY_BATCH = {"skipped": "empty batch"}
_GX_SEVERITY = {"error": "critical", "warn": "warning"}
INDEX_KEY = "etl_index"  # meta key mapping GX results back to suite positions
_PARTIAL_LIST_MAX = 10
DEFAULT_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}


@dataclass(frozen=True)
class CheckResult:
    suite: str
    expectation: str  # readable name: meta "name", else "expect_x(column)"
    severity: str  # "error" | "warn"
    success: bool
    observed_value: str | None  # JSON text of GX's observed value
    details: dict = field(default_factory=dict)  # kwargs used, unexpected counts, exception...


@dataclass(frozen=True)
class SuiteExpectation:
    type: str
    kwargs: dict
    severity: str
    name: str
    meta: dict


@dataclass(frozen=True)
class Suite:
    name: str
    expectations: tuple[SuiteExpectation, ...]
    derived_columns: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def params(self) -> frozenset[str]:
        """Names of every ``$param`` the suite refers to."""
        names: set[str] = set()
        for exp in self.expectations:
            _collect_params(exp.kwargs, names)
        return frozenset(names)


# --------------------------------------------------------------------------- suite files


def suite_path(entity: str) -> Path:
    """The suite file of an entity, e.g. ``suite_path("trip")``."""
    return SUITES_DIR / f"{entity}.json"


def load_suite(path: Path) -> Suite:
    """Parse and check a suite file (see the module docstring). Raises ValueError if bad."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read suite: {exc}") from exc
    return parse_suite(doc, path=path)


def parse_suite(doc: Mapping[str, Any], path: Path | None = None) -> Suite:
    where = str(path) if path else "suite"
    if not isinstance(doc, Mapping):
        raise ValueError(f"{where}: a suite is a JSON object")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: 'name' must be a non-empty string")
    derived = doc.get("derived_columns") or {}
    if not isinstance(derived, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v.strip() for k, v in derived.items()
    ):
        raise ValueError(f"{where}: 'derived_columns' maps column names to SQL expressions")
    raw = doc.get("expectations")
    if not isinstance(raw, list):
        raise ValueError(f"{where}: 'expectations' must be a list")
    out: list[SuiteExpectation] = []
    for i, item in enumerate(raw):
        at = f"{where}: expectations[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{at}: must be an object")
        etype = item.get("type")
        if not isinstance(etype, str) or not etype.startswith("expect_"):
            raise ValueError(f"{at}: 'type' must name a GX expectation (expect_...)")
        if "regex" in etype:
            raise ValueError(f"{at}: {etype}: regex expectations are unsupported on DuckDB")
        kwargs = item.get("kwargs", {})
        meta = item.get("meta", {})
        if not isinstance(kwargs, Mapping) or not isinstance(meta, Mapping):
            raise ValueError(f"{at}: 'kwargs' and 'meta' must be objects")
        severity = meta.get("severity")
        if severity not in SEVERITIES:
            raise ValueError(f"{at}: meta.severity must be one of {SEVERITIES}, not {severity!r}")
        _check_param_refs(kwargs, at)
        label = meta.get("name") or _default_name(etype, kwargs)
        out.append(SuiteExpectation(etype, dict(kwargs), severity, str(label), dict(meta)))
    return Suite(name=name, expectations=tuple(out), derived_columns=dict(derived), path=path)


def _default_name(etype: str, kwargs: Mapping[str, Any]) -> str:
    if "column" in kwargs:
        return f"{etype}({kwargs['column']})"
    if "column_A" in kwargs and "column_B" in kwargs:
        return f"{etype}({kwargs['column_A']}, {kwargs['column_B']})"
    if "column_list" in kwargs:
        return f"{etype}({', '.join(map(str, kwargs['column_list']))})"
    return etype


def _is_param_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"$param"}


def _check_param_refs(value: Any, at: str) -> None:
    if isinstance(value, Mapping):
        if "$param" in value and not (_is_param_ref(value) and isinstance(value["$param"], str)):
            raise ValueError(f'{at}: a parameter is written {{"$param": "name"}}, got {value!r}')
        for v in value.values():
            _check_param_refs(v, at)
    elif isinstance(value, list):
        for v in value:
            _check_param_refs(v, at)


def _collect_params(value: Any, names: set[str]) -> None:
    if _is_param_ref(value):
        names.add(value["$param"])
    elif isinstance(value, Mapping):
        for v in value.values():
            _collect_params(v, names)
    elif isinstance(value, list):
        for v in value:
            _collect_params(v, names)


def substitute_params(value: Any, params: Mapping[str, Any], missing: set[str]) -> Any:
    """``value`` with every ``{"$param": name}`` replaced; absent names are added to missing."""
    if _is_param_ref(value):
        name = value["$param"]
        if name in params and params[name] is not None:
            return params[name]
        missing.add(name)
        return None
    if isinstance(value, Mapping):
        return {k: substitute_params(v, params, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_params(v, params, missing) for v in value]
    return value


# --------------------------------------------------------------------------- running

_CONTEXT: AbstractDataContext | None = None


def gx_context() -> AbstractDataContext:
    """The process's shared ephemeral GX context (created, and GX imported, on first use)."""
    global _CONTEXT
    if _CONTEXT is None:
        from etl.quality.gx_duckdb import new_context

        _CONTEXT = new_context()
    return _CONTEXT


def run_suite(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    suite: Suite,
    params: Mapping[str, float],
    *,
    context: AbstractDataContext | None = None,
    result_format: str | dict = DEFAULT_RESULT_FORMAT,
    one_pass: bool = True,
) -> list[CheckResult]:
    """Run ``suite`` on ``relation``, a regular table or view of the database ``con`` has open.

    The checks read through ``con.cursor()`` (see ``etl.quality.gx_duckdb``): they see what is
    committed, not a TEMP view of ``con`` nor rows of a transaction still open on ``con``
    (ValueError if the relation is not visible), and they never roll back or write to ``con``.

    Every expectation is judged by Great Expectations. With ``one_pass`` (the default) the
    metrics of those whose metrics ``etl.quality.gx_sql`` compiles come from one aggregate
    query over the batch, and GX's SQL engine computes the rest; ``one_pass=False`` has GX's
    SQL engine compute all of them (the reference the one-pass results are tested against).

    ``result_format`` is GX's; the default computes counts but no example values. Pass
    ``"BASIC"`` to get up to 20 examples per check (GX's SQL engine then computes them all).

    Returns one CheckResult per expectation, in suite order. A suite that GX cannot build
    (unknown expectation type, bad kwargs) raises ValueError before anything runs; an
    expectation that fails to compute (e.g. a missing column) is a failed result whose
    ``details["exception"]`` says why.
    """
    results, to_run = skip_without_params(suite, params)
    if not to_run:
        return results  # type: ignore[return-value]

    from etl.quality import gx_duckdb, gx_sql

    gx_suite = build_gx_suite(suite, to_run)  # checks every configuration before anything runs
    present = set(gx_duckdb.relation_columns(con, relation))
    derived = {k: v for k, v in suite.derived_columns.items() if k not in present}
    fmt = dict(result_format) if isinstance(result_format, Mapping) else result_format
    by_index: dict[int, Any] = {}
    if one_pass:
        expectations = list(gx_suite.expectations)
        done = gx_sql.validate_in_one_pass(
            con, relation, derived, present | derived.keys(), expectations, fmt
        )
        by_index = {int(expectations[k].meta[INDEX_KEY]): res for k, res in done.items()}
    left = [item for item in to_run if item[0] not in by_index]
    if left:
        by_index.update(_validate_with_gx(con, relation, derived, suite, left, fmt, context))
    return place_results(results, to_run, suite, by_index)


def place_results(
    results: list[CheckResult | None], to_run: list, suite: Suite, by_index: dict[int, Any]
) -> list[CheckResult]:
    """GX's results (by the expectation's index in the suite) put in their suite positions, as
    CheckResults; one GX did not return is a failed check, never a passed one. Every engine's
    suites end here."""
    for i, exp, kwargs in to_run:
        res = by_index.get(i)
        if res is None:  # GX dropped it: never report a check as passed that did not run
            results[i] = CheckResult(
                suite.name, exp.name, exp.severity, False, None,
                {"kwargs": _jsonable(kwargs), "exception": "no result from Great Expectations"},
            )  # fmt: skip
        else:
            results[i] = _to_check_result(suite.name, exp, kwargs, res)
    return results  # type: ignore[return-value]


def _validate_with_gx(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    derived: Mapping[str, str],
    suite: Suite,
    to_run: list[tuple[int, SuiteExpectation, dict]],
    result_format: str | dict,
    context: AbstractDataContext | None,
) -> dict[int, Any]:
    """GX's results of the expectations ``to_run``, computed by its SQL engine, by index."""
    from etl.quality import gx_duckdb

    ctx = context if context is not None else gx_context()
    with gx_duckdb.duckdb_batch(ctx, con, relation, derived) as batch:
        validation = batch.validate(build_gx_suite(suite, to_run), result_format=result_format)
    return results_by_index(validation.results)


def results_by_index(validated: list[Any]) -> dict[int, Any]:
    """GX's validation results by the index in the suite of the expectation each is of."""
    return {int(res.expectation_config.meta[INDEX_KEY]): res for res in validated}


def skip_without_params(
    suite: Suite, params: Mapping[str, float]
) -> tuple[list[CheckResult | None], list[tuple[int, SuiteExpectation, dict]]]:
    """The results so far (a skipped check for each expectation a parameter it names has no
    value for yet) and the expectations to run, by index, with their parameters filled in."""
    results: list[CheckResult | None] = [None] * len(suite.expectations)
    to_run: list[tuple[int, SuiteExpectation, dict]] = []
    for i, exp in enumerate(suite.expectations):
        missing: set[str] = set()
        kwargs = substitute_params(exp.kwargs, params, missing)
        if missing:
            log.info("suite %s: %s skipped, no value for %s", suite.name, exp.name, sorted(missing))
            results[i] = CheckResult(
                suite.name, exp.name, exp.severity, True, None, dict(SKIPPED_NO_HISTORY)
            )
        else:
            to_run.append((i, exp, kwargs))
    return results, to_run


def build_gx_suite(suite: Suite, to_run: list[tuple[int, SuiteExpectation, dict]]) -> Any:
    """The GX suite of the expectations `to_run`, each tagged with its index in `suite`.
    Raises ValueError for a configuration GX refuses."""
    from etl.quality.gx_import import import_great_expectations

    gx = import_great_expectations()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = []
    for i, exp, kwargs in to_run:
        try:
            config = ExpectationConfiguration(
                type=exp.type,
                kwargs=kwargs,
                meta={**exp.meta, INDEX_KEY: i},
                severity=_GX_SEVERITY[exp.severity],
            )
            expectations.append(config.to_domain_obj())
        except Exception as exc:  # GX raises many types for a bad configuration
            raise ValueError(f"suite {suite.name}: {exp.name}: {exc}") from exc
    return gx.ExpectationSuite(name=suite.name, expectations=expectations)


def _to_check_result(suite: str, exp: SuiteExpectation, kwargs: dict, res: Any) -> CheckResult:
    result = dict(res.result or {})
    details: dict[str, Any] = {"kwargs": _jsonable(kwargs)}
    if "observed_value" in result:
        observed = result.pop("observed_value")
    else:
        # Column map expectations (not_be_null, be_unique, ...) have no observed value in GX:
        # their measurement is the share of unexpected rows, a fraction like the proportions
        # other expectations observe (GX gives it in percent).
        percent = result.get("unexpected_percent")
        observed = None if percent is None else percent / 100
    for key in ("partial_unexpected_list", "partial_unexpected_counts"):
        if key in result:
            result[key] = result[key][:_PARTIAL_LIST_MAX]
    if isinstance(result.get("details"), Mapping):  # e.g. quantiles: {"success_details": [...]}
        result.update(result.pop("details"))
    details.update(_jsonable(result))
    exc_info = res.exception_info or {}
    messages = _exception_messages(exc_info)
    if messages:
        details["exception"] = "; ".join(messages)
    observed = _jsonable(observed)
    return CheckResult(
        suite=suite,
        expectation=exp.name,
        severity=exp.severity,
        success=bool(res.success) and not messages,
        observed_value=None if observed is None else json.dumps(observed),
        details=details,
    )


def _exception_messages(exc_info: Mapping[str, Any]) -> list[str]:
    # GX gives either {"raised_exception": ..., "exception_message": ...} or a dict of those
    # keyed by metric id.
    if "raised_exception" in exc_info:
        exc_info = {"": exc_info}
    return sorted(
        {
            str(v.get("exception_message") or "exception")
            for v in exc_info.values()
            if isinstance(v, Mapping) and v.get("raised_exception")
        }
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf -> None, times -> ISO text."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return _jsonable(float(value))
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)
