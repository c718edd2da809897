"""The benchmark harness: the pipeline against its floor, on the same files, in one run.

    python bench/run.py [--scale 50] [--seed 7]

It writes the sample data with `etl sample` (cached under bench/data/ by scale and seed),
extracts the DFHV members for the floor, then times each case as a whole process and writes
bench/results/<date>-scale<S>.md and .json with the machine's cores, memory and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import zipfile
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from measure import Measurement, measure

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ETL = [sys.executable, "-m", "etl"]


def sample_data(scale: float, seed: int) -> Path:
    """The data root for this scale and seed, written once and reused."""
    root = BENCH / "data" / f"scale{scale:g}-seed{seed}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        m = measure(
            "etl sample",
            [*ETL, "sample", "--out", str(root), "--seed", str(seed), "--scale", str(scale)],
        )
        print(f"sample: {m.wall_s} s, {m.peak_rss_mb} MB peak", flush=True)
        done.write_text(json.dumps(m.as_dict()))
    return root


def extract_members(root: Path, work: Path) -> tuple[Path, int]:
    """The DFHV members as plain files, for the floor (DuckDB cannot read inside a zip)."""
    members = work / "members"
    shutil.rmtree(members, ignore_errors=True)
    members.mkdir(parents=True)
    total = 0
    for archive in sorted((root / "dc_taxi").glob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.filename.startswith("taxi_"):
                    z.extract(info, members)
                    total += info.file_size
    return members, total


def count_rows(members: Path) -> int:
    return sum(p.read_bytes().count(b"\n") - 1 for p in members.iterdir())


def machine() -> dict:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    packages = ["duckdb", "polars", "pandera", "great-expectations", "pyarrow"]
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: version(p) for p in packages},
    }


def taxi_only_root(root: Path, work: Path) -> Path:
    """A data root with only the DFHV zips and the boundary: the same files the floor reads."""
    taxi = work / "taxi_root"
    shutil.rmtree(taxi, ignore_errors=True)
    taxi.mkdir(parents=True)
    for folder in ("dc_taxi", "dc_reference"):
        (taxi / folder).symlink_to(root / folder)
    return taxi


def run_cases(root: Path, members: Path, work: Path) -> list[Measurement]:
    """Each case as a whole process, on the same files, one after the other."""
    floor_db = work / "floor.duckdb"
    floor_db.unlink(missing_ok=True)
    floor = [sys.executable, str(BENCH / "floor_duckdb.py"), str(members), str(floor_db)]
    results = [measure("floor: duckdb read_csv of the DFHV members", floor)]

    def etl_run(name: str, data_root: Path, warehouse: Path) -> Measurement:
        command = [*ETL, "run", "--data-root", str(data_root), "--warehouse", str(warehouse)]
        return measure(name, command)

    taxi_wh, full_wh = work / "taxi.duckdb", work / "full.duckdb"
    taxi_wh.unlink(missing_ok=True)
    full_wh.unlink(missing_ok=True)
    taxi = taxi_only_root(root, work)
    results.append(etl_run("etl run, dc_taxi only (load, checks, suites, publish)", taxi, taxi_wh))
    results.append(etl_run("etl run, all four sources (+ matching)", root, full_wh))
    results.append(etl_run("etl run, rerun with nothing new", root, full_wh))
    return results


def write_results(scale: float, rows: int, results: list[Measurement]) -> Path:
    floor = results[0]
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    stem = f"{datetime.now(UTC):%Y-%m-%d}-scale{scale:g}"
    info = machine()
    lines = [
        f"# Benchmark, scale {scale:g} ({rows:,} DC taxi rows)",
        "",
        f"{info['cores']} cores, {info['memory_gb']} GB, Python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "| case | wall s | CPU s | peak MB | x floor (wall) | exit |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        ratio = m.wall_s / floor.wall_s if floor.wall_s else float("nan")
        lines.append(
            f"| {m.name} | {m.wall_s} | {m.cpu_s} | {m.peak_rss_mb:,.0f} | {ratio:.2f} |"
            f" {m.exit_code} |"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    payload = {
        "scale": scale,
        "rows": rows,
        "machine": info,
        "results": [m.as_dict() for m in results],
    }
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    return out / f"{stem}.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    root = sample_data(args.scale, args.seed)
    work = BENCH / "work"
    work.mkdir(exist_ok=True)
    members, _ = extract_members(root, work)
    rows = count_rows(members)
    results = run_cases(root, members, work)
    shutil.rmtree(members)
    report = write_results(args.scale, rows, results)
    print(report.read_text())


if __name__ == "__main__":
    main()
