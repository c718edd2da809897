"""The Spark engine's staging on one machine: DC taxi files as Spark tasks, beside DuckDB.

    python bench/spark_bench.py [--scale 50] [--seed 7] [--rounds 2]     # the benchmark
    python bench/spark_bench.py --case spark --master local[2] --data-root DIR --out DIR

The benchmark stages the DFHV files of `bench/data/scale50-seed7` (5 M rows in 24 monthly
files) three ways, each in its own process, interleaved over rounds: the DuckDB engine (`etl
run`, its load stage: read, map, row-check and write), and Spark in `local[1]` and `local[2]`,
one task per file running the toolkit's own reader, mapping and pandera row checks inside
`mapInArrow`, the staged rows written as Parquet. Per case: the staging stage's wall time and
CPU time (every process of the case: the driver, the JVM, the Python workers), and for Spark
the session's fixed start-up. Results go to bench/results/<date>-<sha>-spark.md.

`--case spark` is one such staging job on any master (the standalone cluster test runs it):
it writes `counts.json`, the rows read, staged and quarantined per file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CONFIG = ROOT / "sources.yaml"
TAXI = ("dc_taxi", "dc_boundary")
COUNTS = "_counts"  # the column of a task's one row of per-file counts


# --------------------------------------------------------------------------- one process


def tree_cpu_s() -> float:
    """CPU seconds of this process and every process below it, alive or reaped by one that
    is (utime + stime + cutime + cstime from /proc): the JVM and Python workers included."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            stats[int(entry.name)] = (int(fields[1]), sum(map(int, fields[11:15])))
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent]
        mine.update(children)
        frontier.extend(children)
    return sum(stats[pid][1] for pid in mine if pid in stats) / os.sysconf("SC_CLK_TCK")


def _spark_schema(source):  # type: ignore[no-untyped-def]
    """The staged rows' Arrow schema as Spark takes it (plain strings and lists), plus the
    counts column."""
    import pyarrow as pa

    from etl.stage.batch import empty_staging_frame

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_list(t) or pa.types.is_list_view(t):
            return pa.list_(plain(t.value_type))
        return t

    staged = empty_staging_frame(source).to_arrow().schema
    return pa.schema([pa.field(f.name, plain(f.type)) for f in staged] + [(COUNTS, pa.string())])


def stage_file(ref, source, run_id, checker, boundary, limits, schema) -> Iterator:  # type: ignore[no-untyped-def]
    """One task: the file read a piece at a time, staged and row-checked as `etl run` does;
    its staged rows, then one row of its counts (read = staged + quarantined)."""
    import pyarrow as pa

    from etl.readers import READERS
    from etl.sources.fetch import read_pieces
    from etl.stage.batch import FileReader, stage_files

    reader = FileReader(ref, source)
    pieces = read_pieces(ref, 64 << 20, limits, READERS[source.format].by_lines)
    reads = [r for p in pieces if (r := reader.read(p.data, p.last)) is not None]
    batch = stage_files(reads, source, run_id, checker, boundary)
    staged = batch.staged.to_arrow()
    present = staged.column_names
    columns = [
        staged.column(f.name).cast(f.type) if f.name in present else pa.nulls(len(staged), f.type)
        for f in schema
        if f.name != COUNTS
    ]
    yield from pa.Table.from_arrays(
        [*columns, pa.nulls(len(staged), pa.string())], schema=schema
    ).to_batches()
    counts = {path: vars(c) for path, c in batch.counts.items()}
    row = [pa.nulls(1, f.type) for f in schema if f.name != COUNTS] + [
        pa.array([json.dumps(counts)])
    ]
    yield from pa.Table.from_arrays(row, schema=schema).to_batches()


def stage_on_spark(master: str, data_root: Path, out: Path, only: list[str] | None) -> dict:
    """Stage the trip sources (`only` those, if given) of `data_root` on `master`, one task
    per file; the figures."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from etl.config.load import load_config
    from etl.engine.spark.session import spark_session
    from etl.readers import formats
    from etl.readers.geojson import read_boundary
    from etl.run.plan import row_checkers
    from etl.sources.files import FileRef, discover

    started, cpu = time.perf_counter(), tree_cpu_s()
    spark = spark_session(out / "warehouse", master=master)
    spark.range(2).count()  # the executors are up: the rest is the stage
    figures = {"startup_s": time.perf_counter() - started, "startup_cpu_s": tree_cpu_s() - cpu}
    started, cpu = time.perf_counter(), tree_cpu_s()
    config = load_config(CONFIG, formats())
    checkers = row_checkers(config, CONFIG.parent)
    run_id, counts, boundary = uuid.uuid4().hex, {}, None
    for name, source in config.sources.items():
        if only and name not in only and source.entity != "boundary":
            continue
        files = [f for f in discover(name, source, data_root) if isinstance(f, FileRef)]
        if source.entity == "boundary" and files:
            boundary, _ = read_boundary(files[0], run_id)
            continue
        if not files:
            continue
        schema = _spark_schema(source)
        args = (source, run_id, checkers[name], boundary, config.limits, schema)

        def tasks(batches, files=files, args=args):  # type: ignore[no-untyped-def]
            for batch in batches:
                for index in batch.column(0).to_pylist():
                    yield from stage_file(files[index], *args)

        ids = spark.range(0, len(files), 1, numPartitions=len(files))
        ids.mapInArrow(tasks, from_arrow_schema(schema)).write.mode("overwrite").parquet(
            str(out / name)
        )
        rows = spark.read.parquet(str(out / name)).where(f"{COUNTS} IS NOT NULL").collect()
        for (text,) in (r[-1:] for r in rows):
            counts.update(json.loads(text))
    figures |= {"stage_s": time.perf_counter() - started, "stage_cpu_s": tree_cpu_s() - cpu}
    spark.stop()
    (out / "counts.json").write_text(json.dumps(counts, indent=1, sort_keys=True))
    return figures


class _StageClock:
    """An `etl run` reporter that times the load stage: from its start to the next stage."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def start(self, total: int) -> None:
        self.marks.append((time.perf_counter(), time.process_time()))

    def stage(self, name: str) -> None:
        if len(self.marks) == 1:
            self.marks.append((time.perf_counter(), time.process_time()))

    def advance(self, path: str) -> None: ...

    def log(self, message: str) -> None: ...


def stage_on_duckdb(data_root: Path, out: Path) -> dict:
    """`etl run` with the DuckDB engine on `data_root`; its load stage's figures."""
    from etl.run.pipeline import run

    clock = _StageClock()
    result = run(CONFIG, data_root, out / "warehouse.duckdb", reporter=clock)
    assert result.exit_code == 0, result.message
    (wall0, cpu0), (wall1, cpu1) = clock.marks
    return {"stage_s": wall1 - wall0, "stage_cpu_s": cpu1 - cpu0}


# --------------------------------------------------------------------------- the benchmark

CASES = {"duckdb": None, "spark local[1]": "local[1]", "spark local[2]": "local[2]"}


def run_case(name: str, data_root: Path, work: Path) -> dict:
    """One case in a process of its own (a Spark driver is one per process)."""
    out = work / name.replace(" ", "_").replace("[", "").replace("]", "")
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    master = CASES[name]
    case = ["--case", "duckdb"] if master is None else ["--case", "spark", "--master", master]
    command = [sys.executable, __file__, *case, "--data-root", str(data_root), "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "figures.json").read_text())


def report(figures: dict[str, list[dict]], rows: int, load: list[str], sha: str) -> str:
    """The results as markdown: medians over the rounds, each round's figures after."""

    def median(name: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[name])

    one, two = median("spark local[1]", "stage_s"), median("spark local[2]", "stage_s")
    lines = [
        f"# Spark engine staging, {rows:,} DC taxi rows (24 files), commit {sha}",
        "",
        f"Machine: {os.cpu_count()} cores, shared; load average (uptime) before each round: "
        + "; ".join(load),
        "",
        "| case | staging wall s | staging CPU s | session start-up s |",
        "| --- | --- | --- | --- |",
    ]
    for name in CASES:
        start = "" if CASES[name] is None else f"{median(name, 'startup_s'):.1f}"
        wall, cpu = median(name, "stage_s"), median(name, "stage_cpu_s")
        lines.append(f"| {name} | {wall:.1f} | {cpu:.1f} | {start} |")
    lines += [
        "",
        f"Spark staging speed-up from 1 to 2 cores: **{one / two:.2f}x** (target >= 1.7x).",
        f"Spark local[2] against DuckDB: {two / median('duckdb', 'stage_s'):.1f}x the wall time.",
        "",
        "Medians over rounds; every round:",
        "",
        "```",
        json.dumps(figures, indent=1),
        "```",
    ]
    return "\n".join(lines) + "\n"


def bench(scale: float, seed: int, rounds: int) -> Path:
    sys.path.insert(0, str(BENCH))
    from run import WORK, sample_data, taxi_only_root

    data_root = taxi_only_root(sample_data(scale, seed), "spark_taxi_root")
    figures: dict[str, list[dict]] = {name: [] for name in CASES}
    load = []
    for round_ in range(rounds):
        load.append(os.getloadavg().__str__())
        for name in CASES:
            figures[name].append(run_case(name, data_root, WORK / "spark"))
            print(round_, name, figures[name][-1], flush=True)
    rows = sum(
        c["rows_read"]
        for c in json.loads((WORK / "spark" / "spark_local2" / "counts.json").read_text()).values()
    )
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    path = BENCH / "results" / f"{datetime.now(UTC):%Y-%m-%d}-{sha}-spark.md"
    path.write_text(report(figures, rows, load, sha))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("spark", "duckdb"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--scale", type=float, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sources", nargs="*", help="only these sources (and the boundary)")
    args = parser.parse_args()
    if args.case is None:
        print(bench(args.scale, args.seed, args.rounds))
        return
    if args.case == "spark":
        figures = stage_on_spark(args.master, args.data_root, args.out, args.sources)
    else:
        figures = stage_on_duckdb(args.data_root, args.out)
    (args.out / "figures.json").write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
