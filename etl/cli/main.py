"""The `etl` command line. Each command parses options and calls a library function.

Exit codes: 0 success, 1 the data failed an `error` audit (nothing published), 2 bad usage,
bad config, unreadable input or a fault of the machine (a full disk), 3 an internal error (a bug:
one line, the traceback in a log file; see etl/cli/errors.py). An error meant for the user is an
`etl.errors.EtlError`: the commands let it rise, and `_Commands` turns it into its one line and
its exit code, in one place. Heavy libraries are imported inside the commands that need them, so
that `etl --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup, TyperOption

from etl.errors import EtlError
from etl.paths import DEFAULT_CONFIG, DEFAULT_DATA_ROOT, DEFAULT_WAREHOUSE

_option_type = TyperOption.display_type_rich


def _flag_takes_no_value(option: TyperOption, ctx: typer.Context) -> str | None:
    """Typer 0.29's help shows a flag as `--json <bool>`, as if it took a value (it refuses
    one): a flag shows no type."""
    return None if option.is_flag else _option_type(option, ctx)


TyperOption.display_type_rich = _flag_takes_no_value


class _Commands(TyperGroup):
    """The commands, and the one place an error meant for the user becomes a line and a code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EtlError as exc:
            raise fail(str(exc), exc.exit_code) from None


app = typer.Typer(
    cls=_Commands,
    help="Trip-data ETL for Washington, DC: load, check, integrate and publish trip data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

WarehouseOption = Annotated[
    Path,
    typer.Option(
        "--warehouse",
        envvar="ETL_WAREHOUSE",
        help="DuckDB warehouse file.",
        show_default=True,
    ),
]
DataRootOption = Annotated[
    Path, typer.Option("--data-root", envvar="ETL_DATA_ROOT", help="Root of the source files.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.callback()
def project(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            envvar="ETL_PROJECT_DIR",
            help="The project folder (sources.yaml, schemas/, warehouse/); default: this one.",
        ),
    ] = None,
) -> None:
    """Trip-data ETL for Washington, DC: load, check, integrate and publish trip data."""
    if project_dir is None or ctx.invoked_subcommand is None:
        return
    if not project_dir.is_dir() and ctx.invoked_subcommand != "init":
        raise fail(f"{project_dir}: no such project folder (`etl init {project_dir}` writes one)")
    ctx.default_map = {ctx.invoked_subcommand: _in_project(ctx, project_dir)}


def _in_project(ctx: typer.Context, project_dir: Path) -> dict[str, str]:
    """The subcommand's relative path defaults (data, warehouse/..., sources.yaml), in the project.

    Set as click's default map: a path given on the command line or by its environment
    variable still wins, and stays relative to the working directory.
    """
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand)
    params = command.params if command else []
    return {
        p.name: str(project_dir / p.default)
        for p in params
        if isinstance(p.default, Path) and not p.default.is_absolute()
    }


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Folder of the new project.")] = Path("."),
) -> None:
    """Write a new project to edit: sources.yaml, its schemas/ and warehouse/models/."""
    from etl.project import init_project

    written = init_project(folder)
    typer.echo(f"wrote a new project to {folder}: {len(written)} files")
    for name in written:
        typer.echo(f"  {name}")
    where = "" if folder == Path(".") else f"cd {folder}; "
    typer.echo(f"next: {where}etl sample --out data; etl run; etl status; etl report")


@app.command()
def sample(
    out: Annotated[Path, typer.Option("--out", help="Data root to write.")] = DEFAULT_DATA_ROOT,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 0,
    scale: Annotated[float, typer.Option(help="1 is about 100,000 taxi rows.", min=0.001)] = 1.0,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Write only this source (repeatable): dc_taxi, ..."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write realistic sample files for every source into a data root."""
    from etl.sample import SOURCES, write_sample

    try:
        summary = write_sample(out, seed=seed, scale=scale, sources=tuple(only or SOURCES))
    except ValueError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{out}: cannot write the sample: {exc.strerror or exc}") from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(f"wrote sample data to {out}: " + _describe_sample(summary))


def _describe_sample(summary: dict) -> str:
    rows = summary.get("rows", {})
    return ", ".join(f"{name} {count:,} rows" for name, count in rows.items()) or "done"


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", help="The sources file.")] = DEFAULT_CONFIG,
    data_root: DataRootOption = DEFAULT_DATA_ROOT,
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Reload every file and rebuild everything.")
    ] = False,
    as_json: JsonOption = False,
    engine: Annotated[
        str, typer.Option("--engine", help="duckdb (one machine) or spark (a cluster).")
    ] = "duckdb",
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master URL (default local[*]).")
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option("--spark-conf", help="A Spark setting KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """The nightly load: read every source, check, integrate and publish."""
    from etl.cli.output import print_run, reporting
    from etl.run.pipeline import EngineChoice
    from etl.run.pipeline import run as run_pipeline

    choice = EngineChoice(engine, master, _settings(spark_conf or []))

    if not config.exists():
        raise fail(
            f"{config.absolute()}: no such config file: not an etl project folder. "
            "`etl init [DIR]` writes a new project; --project-dir DIR or ETL_PROJECT_DIR "
            "chooses one, --config FILE a sources file"
        )
    with reporting(quiet=as_json) as reporter:
        result = run_pipeline(
            config, data_root, warehouse, full_refresh, reporter=reporter, engine_choice=choice
        )
    print_run(result, as_json=as_json, data_root=data_root)
    raise typer.Exit(result.exit_code)


def _settings(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` options as a mapping; one without `=` is bad usage."""
    for pair in pairs:
        if "=" not in pair or not pair.split("=", 1)[0].strip():
            raise fail(f"--spark-conf {pair!r}: give KEY=VALUE")
    return {key.strip(): value for key, value in (pair.split("=", 1) for pair in pairs)}


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run on the warehouse (read-only).")],
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    data_root: DataRootOption = DEFAULT_DATA_ROOT,
) -> None:
    """Run one SELECT on the warehouse, read-only; it may read files under the data root."""
    from etl.cli.output import print_query
    from etl.report.query import run_query

    if output not in ("table", "csv", "json"):
        raise fail(f"--format must be table, csv or json, not {output!r}")
    columns, rows = run_query(warehouse, query, readable=(data_root,))
    print_query(columns, rows, output)


@app.command()
def status(
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """The last runs and what each loaded, quarantined and published."""
    from etl.cli.output import print_status
    from etl.report.status import last_runs

    runs = last_runs(warehouse, limit)
    print_status(runs, as_json=as_json)


@app.command()
def report(
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "warehouse/report.html"
    ),
    models: Annotated[
        Path, typer.Option("--models", help="The models whose metrics the report shows.")
    ] = Path("warehouse/models_out"),
    as_json: JsonOption = False,
) -> None:
    """The data-quality report: one self-contained HTML file for analysts."""
    from etl.cli.output import to_json
    from etl.report.data import collect
    from etl.report.html import write_report
    from etl.report.model import model_metrics

    data = collect(warehouse)
    data["model"] = model_metrics(models)
    if as_json:
        typer.echo(json.dumps(data, default=to_json, indent=2))
        return
    try:
        write_report(data, out)
    except OSError as exc:
        raise fail(f"{out}: cannot write the report: {exc.strerror or exc}") from None
    typer.echo(f"wrote the data-quality report to {out}")


@app.command()
def train(
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the training table, models and metrics.")
    ] = Path("warehouse/models_out"),
    as_json: JsonOption = False,
) -> None:
    """Export the clean training table and train the baseline ETA and fare models."""
    from etl.cli.output import reporting
    from etl.ml.train import describe
    from etl.ml.train import train as train_models

    with reporting(quiet=as_json) as reporter:
        summary = train_models(warehouse, out, log=reporter.log)
    typer.echo(json.dumps(summary, indent=2) if as_json else describe(summary))


@app.command()
def predict(
    origin: Annotated[str | None, typer.Option("--from", help="Pickup point: LAT,LON.")] = None,
    destination: Annotated[
        str | None, typer.Option("--to", help="Drop-off point: LAT,LON.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Pickup time, ISO 8601; DC local time without an offset."),
    ] = None,
    models: Annotated[
        Path, typer.Option("--models", help="The folder `etl train` wrote the models to.")
    ] = Path("warehouse/models_out"),
    source: Annotated[
        str | None, typer.Option("--source", help="Ask as this silo (default: dispatch).")
    ] = None,
    trips_in: Annotated[
        Path | None,
        typer.Option("--in", help="A file of trips, .csv or .parquet (instead of --from/--to)."),
    ] = None,
    trips_out: Annotated[
        Path | None, typer.Option("--out", help="Where to write their estimates, .csv or .parquet.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Estimate the duration and fare of one trip, or of every trip in a file (--in/--out)."""
    from etl.cli.output import local_minute, outside_dc
    from etl.ml.predict import parse_point, parse_time
    from etl.ml.predict import predict as estimate

    if trips_in is not None or trips_out is not None:
        _predict_file(models, trips_in, trips_out, origin or destination or at or source, as_json)
        return
    if origin is None or destination is None:
        raise fail("give --from and --to (one trip), or --in and --out (a file of trips)")
    points = parse_point(origin, "--from"), parse_point(destination, "--to")
    result = estimate(models, *points, parse_time(at), source)
    for warning in filter(None, map(outside_dc, points, ("--from", "--to"))):
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        typer.echo(
            f"{result['duration_min']:.1f} min, ${result['fare_usd']:.2f} "
            f"({result['straight_miles']:.2f} mi straight line, {local_minute(result['at'])}, "
            f"as {result['source']}; naive baseline {result['baseline']['duration_min']:.1f} min, "
            f"${result['baseline']['fare_usd']:.2f})"
        )


def _predict_file(
    models: Path, trips_in: Path | None, trips_out: Path | None, single: object, as_json: bool
) -> None:
    from etl.ml.batch import predict_file

    if trips_in is None or trips_out is None or single:
        raise fail("--in and --out go together, without --from, --to, --at or --source")
    summary = predict_file(models, trips_in, trips_out)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(
            f"wrote {summary['rows']:,} trips to {summary['out']}: {summary['estimated']:,}"
            f" estimated, {summary['errors']:,} with an error, {summary['warnings']:,} with a"
            f" warning (models {summary['models_version']})"
        )


@app.command()
def serve(
    models: Annotated[
        Path, typer.Option("--models", help="The folder `etl train` writes the models to.")
    ] = Path("warehouse/models_out"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the estimates over HTTP: POST /v1/estimate, GET /v1/model, GET /healthz, /docs."""
    from etl.ml.serve import run_server

    run_server(models, host, port, log=lambda line: typer.echo(line, err=True))


def main() -> None:
    """The `etl` console script: the app, with an unexpected error as one line and a log file."""
    from etl.cli.errors import run_guarded

    run_guarded(app, sys.argv[1:])
