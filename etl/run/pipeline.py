"""The nightly load, `etl run`: plan, load, audit, publish (docs/architecture.md).

1. **plan** (:mod:`etl.run.plan`): discover each source's files and skip those the manifest
   already holds;
2. **load** (:mod:`etl.run.load`): read, stage and row-check each new or changed file into
   `staging.<source>` tagged with this run's id, its rejected rows into `quality.quarantine`;
3. **audit** and **publish** (:mod:`etl.run.publish`): run each source's batch suite on this
   run's rows; if no `error` check failed, publish them in one transaction, else withdraw them.

The run ledger (:mod:`etl.run.ledger`) records the run and its files; if the process dies
midway, the next run finds the rows of a run that never published and removes them. Every
step that touches the warehouse is a call on the engine (:mod:`etl.engine.base`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from etl.config.load import load_config
from etl.config.spec import Config
from etl.engine.base import Engine
from etl.engine.duckdb.engine import DuckDBEngine
from etl.errors import EXIT_INTERNAL, ConfigError, EtlError, SourceError
from etl.paths import project_models
from etl.quality.preload import preload_checks
from etl.readers import formats
from etl.run import ledger, plan
from etl.run.ledger import FileOutcome, RunResult, RunSoFar
from etl.run.load import LoadJob, LoadSizes, load
from etl.run.publish import audit, publish
from etl.run.reporter import Reporter, SilentReporter

__all__ = [
    "EngineChoice", "FileOutcome", "LoadSizes", "Reporter", "RunResult", "SilentReporter", "run",
]  # fmt: skip
ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class EngineChoice:
    """The engine a run loads with: DuckDB (the default), or Spark on `master` with `conf`."""

    name: str = "duckdb"
    master: str | None = None
    conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ConfigError(f"--engine {self.name}: choose one of {', '.join(ENGINES)}")
        if self.name != "spark" and (self.master or self.conf):
            raise ConfigError("--master and --spark-conf are for --engine spark")


def run(
    config_path: Path,
    data_root: Path,
    warehouse_path: Path,
    full_refresh: bool = False,
    reporter: Reporter | None = None,
    sizes: LoadSizes = LoadSizes(),
    engine_choice: EngineChoice = EngineChoice(),
) -> RunResult:
    """Load every source, audit and publish. Raises ConfigError/SourceError for bad usage."""
    config = load_config(config_path, formats())
    checkers = plan.row_checkers(config, config_path.parent)
    plan.check_suites(config, config_path.parent)
    if not data_root.is_dir():
        raise SourceError(f"{data_root}: data root is not a directory")
    models_dir = project_models(config_path.parent)
    engine = _open_engine(engine_choice, warehouse_path, models_dir, config)
    run_id = ledger.new_run_id()
    try:
        ledger.recover(engine, list(config.sources))
        plan.prepare_staging(engine, config)
        boundary = plan.stored_boundary(engine, config)
        ledger.start(engine, run_id, config_path, data_root)
        job = LoadJob(run_id, config, checkers, boundary, full_refresh, sizes)
        return _plan_load_publish(engine, job, config_path, data_root, reporter or SilentReporter())
    except Exception as exc:
        # Recorded for `etl status`; the next run removes what this one left in staging,
        # unless it published (then the error came after its commit, and it stays so).
        code = exc.exit_code if isinstance(exc, EtlError) else EXIT_INTERNAL
        ledger.record_error(engine, run_id, exc, code)
        raise
    finally:
        engine.close()


def _open_engine(
    choice: EngineChoice, warehouse_path: Path, models_dir: Path, config: Config
) -> Engine:
    """The engine asked for; Spark's is imported only when chosen (it needs the `spark` extra).
    Raises WarehouseError, ConfigError."""
    if choice.name == "spark":
        from etl.engine.spark.engine import open_spark_engine

        return open_spark_engine(warehouse_path, models_dir, config, choice.master, choice.conf)
    return DuckDBEngine(warehouse_path, models_dir, config)


def _plan_load_publish(
    engine: Engine, job: LoadJob, config_path: Path, data_root: Path, reporter: Reporter
) -> RunResult:
    """The data flow: the files to load, loaded, audited, and published or withdrawn."""
    planned = plan.plan(engine, job.config, data_root, job.full_refresh)
    for broken in planned.broken:
        reporter.log(f"{broken.path}: FAILED: {broken.reason}")
    if planned.to_load:
        preload_checks(job.config, rows_here=isinstance(engine, DuckDBEngine))
    reporter.start(len(planned.to_load))
    loaded = load(engine, planned.to_load, job, reporter)
    so_far = RunSoFar(job.run_id, planned.broken + loaded.outcomes, planned.skipped)
    audited = audit(engine, so_far, job.config, config_path.parent, reporter)
    return publish(engine, audited, job.config, loaded.boundaries, job.full_refresh, reporter)
