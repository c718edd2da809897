"""The Spark engine's staging on one machine: DC taxi files as Spark tasks, beside DuckDB.

    python bench/spark_bench.py [--scale 50] [--seed 7] [--rounds 2]     # the benchmark
    python bench/spark_bench.py --case spark --master local[2] --data-root DIR --out DIR

The benchmark runs `etl run` on the DFHV files of `bench/data/scale50-seed7` (5 M rows in 24
monthly files) four ways, each in its own process, interleaved over rounds, and stops each
run when its load stage ends (read, map, row-check, write the staged rows): the DuckDB engine,
and the Spark engine in `local[1]`, in `local[1]` pinned to one core, and in `local[2]` (files
as tasks, each running the toolkit's reader, mapping and pandera row checks inside
`mapInArrow`). Per case: the load stage's wall
time and CPU time (every process of the case: the driver, the JVM, the Python workers), for
Spark of which the tasks step (the Spark job that stages the files: the part that runs in
parallel), and the fixed start-up before the first file (for Spark: the session and its
catalog). Results go
to bench/results/<date>-<sha>-spark.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CONFIG = ROOT / "sources.yaml"
TAXI = ("dc_taxi", "dc_boundary")


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


class Staged(Exception):
    """The load stage is over: the benchmark stops the run there."""


class StageClock:
    """An `etl run` reporter that clocks the run's start-up (to the first file) and its load
    stage (to the next stage), wall and CPU of the whole process tree, then stops the run."""

    def __init__(self) -> None:
        self.marks = [(time.perf_counter(), tree_cpu_s())]

    def start(self, total: int) -> None:
        self.marks.append((time.perf_counter(), tree_cpu_s()))

    def stage(self, name: str) -> None:
        self.marks.append((time.perf_counter(), tree_cpu_s()))
        raise Staged

    def advance(self, path: str) -> None: ...

    def log(self, message: str) -> None: ...

    def figures(self) -> dict[str, float]:
        (wall0, cpu0), (wall1, cpu1), (wall2, cpu2) = self.marks
        return {"startup_s": wall1 - wall0, "startup_cpu_s": cpu1 - cpu0,
                "stage_s": wall2 - wall1, "stage_cpu_s": cpu2 - cpu1}  # fmt: skip


# The load stage's steps on Spark, clocked with --profile: (module, function or Class.method).
# A step's figures include the steps it calls (a table's append includes its Spark job).
STEPS = (
    ("etl.engine.spark.engine", "SparkEngine.stage_files"),
    ("etl.engine.spark.staging", "_run"),
    ("etl.engine.spark.staging", "_records"),
    ("etl.engine.spark.staging", "_marks"),
    ("etl.engine.spark.catalog", "Catalog.append"),
    ("etl.engine.spark.catalog", "Catalog.replace"),
    ("etl.engine.spark.catalog", "list_tables"),
)
# The step every Spark case clocks: the tasks (read, map, row-check, write), the part of the
# load stage that runs in parallel, so that its own speed-up from one core to two shows.
TASKS = STEPS[1]


def clock_steps(steps: dict[str, list[float]], which: tuple[tuple[str, str], ...]) -> None:
    """Wrap each of `which` (of STEPS) to add its calls, wall and tree CPU seconds to `steps`
    (by name, and by the table it writes for a catalog method)."""
    for module_name, qualified in which:
        module = importlib.import_module(module_name)
        owner_name, _, name = qualified.rpartition(".")
        owner = getattr(module, owner_name) if owner_name else module
        setattr(owner, name, _clocked(qualified, getattr(owner, name), steps))


def _clocked(step: str, function, steps: dict[str, list[float]]):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        named = [a for a in args[:3] if isinstance(a, str) and "." in a]
        key = f"{step} {named[0]}" if "Catalog" in step and named else step
        wall, cpu = time.perf_counter(), tree_cpu_s()
        try:
            return function(*args, **kwargs)
        finally:
            entry = steps.setdefault(key, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - wall
            entry[2] += tree_cpu_s() - cpu

    return wrapper


def stage(engine: str, master: str | None, data_root: Path, out: Path) -> dict:
    """`etl run` on `data_root` with the engine asked for, up to the end of its load stage:
    its figures, and the rows read, staged and quarantined (from the engine's own counts)."""
    from etl.run.pipeline import EngineChoice, run

    clock = StageClock()
    choice = EngineChoice(engine, master)
    try:
        run(CONFIG, data_root, out / "warehouse.duckdb", reporter=clock, engine_choice=choice)
    except Staged:
        pass
    else:
        raise RuntimeError("the run ended before its load stage did")
    return clock.figures()


# --------------------------------------------------------------------------- the benchmark

# name: (master, the cores the case's processes may run on; None: all). local[1] runs one task
# at a time, but its JVM's writer, collector and compiler threads run beside the task on a
# second core; pinned to one core, it is the staging on one core, which the speed-up to two
# cores is measured from as well.
CASES = {
    "duckdb": (None, None),
    "spark local[1]": ("local[1]", None),
    "spark local[1], one core": ("local[1]", {0}),
    "spark local[2]": ("local[2]", None),
}


def run_case(name: str, data_root: Path, work: Path) -> dict:
    """One case in a process of its own (a Spark driver is one per process)."""
    out = work / name.replace(" ", "_").replace("[", "").replace("]", "")
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    master, cores = CASES[name]
    case = ["--case", "duckdb"] if master is None else ["--case", "spark", "--master", master]
    command = [sys.executable, __file__, *case, "--data-root", str(data_root), "--out", str(out)]
    pin = None if cores is None else functools.partial(os.sched_setaffinity, 0, cores)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, preexec_fn=pin)
    return json.loads((out / "figures.json").read_text())


def report(figures: dict[str, list[dict]], rows: int, load: list[str], sha: str) -> str:
    """The results as markdown: medians over the rounds, each round's figures after."""

    def median(name: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[name])

    one, two = median("spark local[1]", "stage_s"), median("spark local[2]", "stage_s")
    one_core = median("spark local[1], one core", "stage_s")
    tasks = [median(name, "tasks_s") for name in ("spark local[1], one core", "spark local[2]")]
    lines = [
        f"# Spark engine staging, {rows:,} DC taxi rows (24 files), commit {sha}",
        "",
        f"Machine: {os.cpu_count()} cores, shared; load average (uptime) before each round: "
        + "; ".join(load),
        "",
        "| case | load stage wall s | load stage CPU s | of which tasks wall s | tasks CPU s"
        " | start-up wall s | start-up CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = ("stage_s", "stage_cpu_s", "tasks_s", "tasks_cpu_s", "startup_s", "startup_cpu_s")
    for name in CASES:
        cells = [f"{median(name, k):.1f}" if k in figures[name][0] else "-" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Spark staging speed-up from local[1] to local[2]: **{one / two:.2f}x**; from one core"
        f" (local[1] pinned to it) to two (local[2]): **{one_core / two:.2f}x** (target >= 1.7x);"
        f" of the tasks step alone, one core to two: {tasks[0] / tasks[1]:.2f}x.",
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
    from run import ROWS_PER_SCALE, WORK, sample_data, taxi_only_root

    data_root = taxi_only_root(sample_data(scale, seed), "spark_taxi_root")
    figures: dict[str, list[dict]] = {name: [] for name in CASES}
    load = []
    for round_ in range(rounds):
        load.append(os.getloadavg().__str__())
        for name in CASES:
            figures[name].append(run_case(name, data_root, WORK / "spark"))
            print(round_, name, figures[name][-1], flush=True)
    rows = int(ROWS_PER_SCALE * scale)
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    path = BENCH / "results" / f"{datetime.now(UTC):%Y-%m-%d}-{sha}-spark.md"
    path.write_text(report(figures, rows, load, sha))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("spark", "duckdb"))
    parser.add_argument("--master", default="local[2]", help="with --case spark")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--scale", type=float, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="with --case spark: per step")
    args = parser.parse_args()
    if args.case is None:
        print(bench(args.scale, args.seed, args.rounds))
        return
    master = args.master if args.case == "spark" else None
    steps: dict[str, list[float]] = {}
    if args.case == "spark":
        clock_steps(steps, STEPS if args.profile else (TASKS,))
    figures = stage(args.case, master, args.data_root, args.out)
    for name, (calls, wall, cpu) in steps.items():
        print(f"{name}: {calls} calls, {wall:.1f} s, {cpu:.1f} CPU s", flush=True)
    if TASKS[1] in steps:
        figures |= {"tasks_s": steps[TASKS[1]][1], "tasks_cpu_s": steps[TASKS[1]][2]}
    (args.out / "figures.json").write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
