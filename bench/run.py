"""The benchmark harness: the pipeline against its floor and its peers, on the same files.

    python bench/run.py [--scale 50] [--seed 7] [--groups load,peers,startup]
    python bench/run.py --groups scaling,incremental      # 1, 5 and 20 M rows: slow
    python bench/run.py --repeat 3                         # medians of 3 interleaved rounds
    python bench/run.py --groups analyst --against ../main/bench/work/full.duckdb

Each case runs as a whole process (wall time, CPU time and peak RSS from wait4), one after the
other on the same files, so ratios measured in one run compare like with like on a shared,
noisy machine. Data comes from `etl sample`, cached under bench/data/ by scale and seed.
Results go to bench/results/<date>-<commit>-<groups>.md and .json with the machine's cores,
memory and library versions.

Groups:
- load: the floor (DuckDB's bare read_csv of the extracted DFHV members into typed columns),
  `etl run` on the DFHV files with and without row checks and suites, `etl run` on all four
  sources (with matching), and a rerun with nothing new;
- peers: the same checks by hand in pandas + Great Expectations' pandas datasource, and a dlt
  load of the same members without checks (`pip install -e '.[bench]'`);
- startup: `etl --help`, `etl sql 'select 1'`, `etl status`;
- scaling: `etl run` on the DFHV files at 1, 5 and 20 M rows;
- incremental: one new month into a warehouse of 20 M rows against the same month alone, and
  one changed file replaced;
- analyst: queries on curated.trips of the four-source warehouse (`bench/analyst_queries.sql`:
  a point lookup by trip_id, a daily aggregate), and on each `--against` warehouse (another
  branch's, loaded from the same files) interleaved with it, in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb
import yaml
from measure import Measurement, measure, measure_queries

from etl.engine.duckdb.warehouse import named_statements

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
ETL = [sys.executable, "-m", "etl"]
ROWS_PER_SCALE = 100_000  # DFHV rows `etl sample` writes at scale 1
TAXI_ONLY = ("dc_taxi", "dc_boundary")  # the scaling runs need no company silos


def sample_data(scale: float, seed: int, only: tuple[str, ...] = ()) -> Path:
    """The data root for this scale and seed (and sources), written once and reused."""
    suffix = "-" + "-".join(only) if only else ""
    root = BENCH / "data" / f"scale{scale:g}-seed{seed}{suffix}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        command = [*ETL, "sample", "--out", str(root), "--seed", str(seed), "--scale", str(scale)]
        m = measure("etl sample", command + [arg for name in only for arg in ("--only", name)])
        print(f"sample scale {scale:g}: {m.wall_s} s, {m.peak_rss_mb} MB peak", flush=True)
        done.write_text(json.dumps(m.as_dict()))
    return root


def extract_members(root: Path) -> Path:
    """The DFHV members as plain files, for the floor and peers (they cannot read zips)."""
    members = WORK / "members"
    shutil.rmtree(members, ignore_errors=True)
    members.mkdir(parents=True)
    for archive in sorted((root / "dc_taxi").glob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.filename.startswith("taxi_"):
                    z.extract(info, members)
    return members


def taxi_only_root(root: Path, name: str = "taxi_root") -> Path:
    """A data root with only the DFHV zips and the boundary: the files the floor reads."""
    taxi = WORK / name
    shutil.rmtree(taxi, ignore_errors=True)
    taxi.mkdir(parents=True)
    for folder in ("dc_taxi", "dc_reference"):
        (taxi / folder).symlink_to(root / folder)
    return taxi


def config_variant(name: str, change) -> Path:
    """A copy of sources.yaml changed by `change(dict)`, written under bench/work/."""
    config = yaml.safe_load((ROOT / "sources.yaml").read_text())
    change(config)
    path = WORK / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    # Row-check and suite paths are relative to the config's folder.
    for folder in ("schemas",):
        link = WORK / folder
        if not link.exists():
            link.symlink_to(ROOT / folder)
    return path


# The floors, and which case each compares with: the four-source run with the floor of the
# same files, every other case with the DFHV floor.
FLOOR = "floor: duckdb read_csv of the DFHV members"
FLOOR_ALL = "floor: duckdb read of the DFHV members and both company silos"
ALL_SOURCES = "etl run, all four sources (+ matching)"


def without_checks(config: dict) -> None:
    for source in config["sources"].values():
        source.pop("row_checks", None)
        source.pop("suite", None)


def fresh(name: str) -> Path:
    path = WORK / name
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    return path


def etl_run(name: str, data_root: Path, warehouse: Path, config: Path | None = None) -> Measurement:
    command = [*ETL, "run", "--data-root", str(data_root), "--warehouse", str(warehouse)]
    if config:
        command += ["--config", str(config)]
    return measure(name, command)


def group_load(root: Path, members: Path) -> list[Measurement]:
    floor = [
        sys.executable,
        str(BENCH / "floor_duckdb.py"),
        str(members),
        str(fresh("floor.duckdb")),
    ]
    taxi = taxi_only_root(root)
    plain = config_variant("sources_without_checks", without_checks)
    full = fresh("full.duckdb")
    floor_all = [*floor[:3], str(fresh("floor_all.duckdb")), str(root)]
    return [
        measure(FLOOR, floor),
        measure(FLOOR_ALL, floor_all),
        etl_run("etl run, DFHV only, no row checks or suites", taxi, fresh("plain.duckdb"), plain),
        etl_run("etl run, DFHV only (load, checks, suites, publish)", taxi, fresh("taxi.duckdb")),
        etl_run(ALL_SOURCES, root, full),
        etl_run("etl run, rerun with nothing new", root, full),
    ]


def group_peers(root: Path, members: Path) -> list[Measurement]:
    boundary = root / "dc_reference" / "dc_boundary.geojson"
    out = WORK / "pandas_out"
    shutil.rmtree(out, ignore_errors=True)
    return [
        measure(
            "peer: pandas + GX pandas datasource, same checks",
            [
                sys.executable,
                str(BENCH / "peers" / "pandas_gx.py"),
                str(members),
                str(out),
                "--boundary",
                str(boundary),
            ],
        ),
        measure(
            "peer: dlt load into DuckDB, no checks",
            [
                sys.executable,
                str(BENCH / "peers" / "dlt_load.py"),
                str(members),
                str(fresh("dlt.duckdb")),
            ],
        ),
    ]


def group_startup(root: Path, members: Path) -> list[Measurement]:
    warehouse = WORK / "full.duckdb"
    if not warehouse.exists():
        etl_run("setup", root, warehouse)
    return [
        measure("etl --help", [*ETL, "--help"]),
        measure("etl sql 'select 1'", [*ETL, "sql", "select 1", "--warehouse", str(warehouse)]),
        measure("etl status", [*ETL, "status", "--warehouse", str(warehouse)]),
    ]


def group_scaling(seed: int) -> list[Measurement]:
    results = []
    for millions in (1, 5, 20):
        root = sample_data(millions * 1_000_000 / ROWS_PER_SCALE, seed, TAXI_ONLY)
        taxi = taxi_only_root(root, f"taxi_root_{millions}m")
        name = f"etl run, DFHV {millions} M rows"
        results.append(etl_run(name, taxi, fresh(f"scale{millions}.duckdb")))
    return results


def group_incremental(seed: int) -> list[Measurement]:
    """One new month into 20 M rows, against that month loaded alone; one file replaced."""
    root = sample_data(200, seed, TAXI_ONLY)
    taxi = taxi_only_root(root, "taxi_root_20m")
    last = "taxi_202312.csv"

    def all_but_last(config: dict) -> None:
        config["sources"]["dc_taxi"]["members"] = ["taxi_2016_*.txt", "taxi_20230*.csv",
                                                   "taxi_20231[01].csv"]  # fmt: skip

    def only_last(config: dict) -> None:
        config["sources"]["dc_taxi"]["members"] = [last]

    big = fresh("incremental.duckdb")
    etl_run("setup: 23 months", taxi, big, config_variant("all_but_last", all_but_last))
    results = [
        etl_run("etl run, one new month into 19 M rows", taxi, big),
        etl_run("etl run, the same month loaded alone", taxi, fresh("month.duckdb"),
                config_variant("only_last", only_last)),
    ]  # fmt: skip
    replaced = WORK / "taxi_root_20m_changed"
    shutil.rmtree(replaced, ignore_errors=True)
    (replaced / "dc_taxi").mkdir(parents=True)
    (replaced / "dc_reference").symlink_to(root / "dc_reference")
    (replaced / "dc_taxi" / "taxi_2016.zip").symlink_to(root / "dc_taxi" / "taxi_2016.zip")
    _rewrite_without_one_row(root / "dc_taxi" / "taxi_2023.zip", replaced / "dc_taxi", last)
    results.append(etl_run("etl run, one changed file replaced", replaced, big))
    return results


def _rewrite_without_one_row(archive: Path, folder: Path, member: str) -> None:
    """A copy of the zip whose `member` lost its last row (the others copied unchanged)."""
    with (
        zipfile.ZipFile(archive) as src,
        zipfile.ZipFile(folder / archive.name, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename == member:
                data = data[: data.rstrip(b"\n").rfind(b"\n") + 1]
            dst.writestr(info, data, compresslevel=1)


def group_analyst(root: Path, against: list[Path]) -> list[Measurement]:
    """The analyst's queries on this branch's four-source warehouse and on `against`: the same
    trip looked up in each (picked from this one), every query interleaved across them."""
    warehouse = WORK / "full.duckdb"
    if not warehouse.exists():
        etl_run("setup", root, warehouse)
    statements = named_statements(BENCH / "analyst_queries.sql")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        trip_id = con.execute(statements.pop("pick_trip")).fetchone()[0]
    warehouses = {"this branch": warehouse} | {str(path): path for path in against}
    return measure_queries(warehouses, statements, {"trip_id": trip_id})


GROUPS = {"load", "peers", "startup", "scaling", "incremental", "analyst"}


def machine() -> dict:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    versions = {}
    for package in (
        "duckdb",
        "polars",
        "pandera",
        "great-expectations",
        "pyarrow",
        "pandas",
        "dlt",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "commit": commit(),
        "versions": versions,
    }


def commit() -> str:
    """The checked-out commit, short, with `+` when the tree has changes (or `unknown`)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=BENCH, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(label: str, rows: int, results: list[Measurement], rounds: int = 1) -> Path:
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    info = machine()
    stem = f"{datetime.now(UTC):%Y-%m-%d}-{info['commit']}-{label}"
    floors = {m.name: m for m in results if m.name in (FLOOR, FLOOR_ALL)}
    lines = [
        f"# Benchmark: {label} ({rows:,} DC taxi rows where one scale applies), "
        f"at commit {info['commit']}",
        "",
        f"Each figure: the median of {rounds} interleaved round(s); peak memory the highest."
        if rounds > 1
        else "Each figure: one round.",
        "",
        f"{info['cores']} cores, {info['memory_gb']} GB, Python {info['python']}, load average "
        f"at the end {', '.join(f'{x:.1f}' for x in info['load_average'])}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "| case | wall s | CPU s | peak MB | x its floor (wall) | exit |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        floor = floors.get(FLOOR_ALL if m.name in (ALL_SOURCES, FLOOR_ALL) else FLOOR)
        ratio = f"{m.wall_s / floor.wall_s:.2f}" if floor and floor.wall_s else ""
        lines.append(
            f"| {m.name} | {m.wall_s} | {m.cpu_s} | {m.peak_rss_mb:,.0f} | {ratio} "
            f"| {m.exit_code} |"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    payload = {
        "label": label,
        "rows": rows,
        "rounds": rounds,
        "machine": info,
        "results": [m.as_dict() for m in results],
    }
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    return out / f"{stem}.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--groups", default="load,peers,startup")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="run the groups this many times over and report each case's median",
    )  # fmt: skip
    parser.add_argument(
        "--against", type=Path, action="append", default=[],
        help="analyst: also time the queries on this warehouse (main's bench/work/full.duckdb)",
    )  # fmt: skip
    args = parser.parse_args()
    groups = [g for g in re.split(r"[,\s]+", args.groups) if g]
    unknown = set(groups) - GROUPS
    if unknown:
        parser.error(f"unknown group(s) {sorted(unknown)}; choose from {sorted(GROUPS)}")
    WORK.mkdir(exist_ok=True)
    rounds = [
        run_groups(groups, args.scale, args.seed, args.against) for _ in range(max(args.repeat, 1))
    ]
    label = f"scale{args.scale:g}-{'-'.join(groups)}"
    rows = int(args.scale * ROWS_PER_SCALE)
    report = write_results(label, rows, median_of(rounds), len(rounds))
    print(report.read_text())


def run_groups(
    groups: list[str], scale: float, seed: int, against: list[Path] = ()
) -> list[Measurement]:
    """One round: every case of the groups, one after the other."""
    results: list[Measurement] = []
    if {"load", "peers", "startup"} & set(groups):
        root = sample_data(scale, seed)
        members = extract_members(root)
        for name in ("load", "peers", "startup"):
            if name in groups:
                results += globals()[f"group_{name}"](root, members)
        shutil.rmtree(members)
    if "analyst" in groups:
        results += group_analyst(sample_data(scale, seed), against)
    if "scaling" in groups:
        results += group_scaling(seed)
    if "incremental" in groups:
        results += group_incremental(seed)
    return results


def median_of(rounds: list[list[Measurement]]) -> list[Measurement]:
    """Each case's median wall and CPU time over the rounds, and its highest peak and exit code.

    Rounds interleave the cases, so a slow minute on a shared machine slows one round of every
    case rather than every round of one case: the medians compare like with like.
    """
    return [
        Measurement(
            name=runs[0].name,
            wall_s=round(statistics.median(m.wall_s for m in runs), 3),
            cpu_s=round(statistics.median(m.cpu_s for m in runs), 3),
            peak_rss_mb=max(m.peak_rss_mb for m in runs),
            exit_code=max(m.exit_code for m in runs),
        )
        for runs in zip(*rounds, strict=True)
    ]


if __name__ == "__main__":
    main()
