"""Write-audit-publish, after loading: audit this run's rows, then publish them or withdraw them.

If no `error` check failed, then in one transaction the engine retires the rows of replaced
files, stores a new boundary, records the manifest, matches the silos, rebuilds the curated
layer and records the run as published. If an audit fails (or the control totals do not
reconcile), this run's rows leave staging again, its files are recorded as `audit_failed` and
the published tables stay as they were.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import polars as pl

from etl.config.spec import Config
from etl.engine.base import Engine, NotReconciled, Publication
from etl.quality.audit import SuiteAudit
from etl.reference.calendar import build_dim_date
from etl.run.crashpoints import crash_point
from etl.run.ledger import RunResult, RunSoFar, conclude
from etl.run.reporter import Reporter


def audit(
    engine: Engine, run: RunSoFar, config: Config, config_dir: Path, reporter: Reporter
) -> RunSoFar:
    """Each source's batch suite on the rows this run loaded; the results recorded."""
    files_per_source = Counter(o.source for o in run.outcomes if o.status == "loaded")
    reporter.stage("batch checks")
    checks = engine.run_suites(SuiteAudit(config, config_dir, run.run_id, files_per_source))
    crash_point("audited")
    return replace(run, checks=tuple(checks))


def publish(
    engine: Engine,
    run: RunSoFar,
    config: Config,
    boundaries: dict[str, pl.DataFrame],
    full_refresh: bool,
    reporter: Reporter,
) -> RunResult:
    """Publish the run, unless an error check failed or the control totals do not reconcile."""
    blocking = sum(check.blocks_publish for check in run.checks)
    if blocking:
        return withdraw(engine, run, config, f"{blocking} error check(s) failed", reporter)
    result, record = conclude(run)
    publication = Publication(
        run.run_id,
        config,
        loaded=tuple(o for o in run.outcomes if o.status == "loaded"),
        boundaries=boundaries,
        full_refresh=full_refresh,
        rebuild=full_refresh or engine.models_changed(),
        record=record,
        calendar=build_dim_date,
    )
    published = engine.publish(publication, crash_point, reporter.stage)
    if isinstance(published, NotReconciled):
        return withdraw(engine, run, config, published.message, reporter, published.totals)
    if published.matches is not None:
        reporter.log(f"matched {published.matches} trip(s) across silos")
    crash_point("published")
    return result


def withdraw(
    engine: Engine,
    run: RunSoFar,
    config: Config,
    why: str,
    reporter: Reporter,
    totals: pl.DataFrame | None = None,
) -> RunResult:
    """This run's rows leave staging and the run is recorded with its files (and `totals`), in
    one transaction: nothing published changes."""
    failed = "the run failed its audit"
    outcomes = tuple(
        replace(o, status="audit_failed", reason=failed) if o.status == "loaded" else o
        for o in run.outcomes
    )
    for check in run.checks:
        if check.blocks_publish:
            reporter.log(
                f"{check.source}: FAILED {check.result.expectation} "
                f"(observed {check.result.observed_value})"
            )
    result, record = conclude(replace(run, outcomes=outcomes), f"{why}: nothing published")
    engine.withdraw(record, list(config.sources), totals, crash_point)
    return result
