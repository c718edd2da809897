"""`etl sample`: a deterministic, realistic data root for every source.

    write_sample(out, seed=0, scale=1.0) -> summary dict

writes, under `out`:

- dc_taxi/taxi_2016.zip and dc_taxi/taxi_2023.zip: DFHV taxi trips in the two published layouts
  (taxi.py), ~100,000 rows at scale 1;
- dc_reference/dc_boundary.geojson (boundary.py);
- company/dispatch/*.jsonl[.gz] and company/courier/*.csv: the company's silos for 2023 with a
  planted cross-silo overlap (company.py), ~20,000 jobs and ~10,000 trips at scale 1;
- _sample_truth.json: every planted fact (defect counts per file, matches, near misses) that
  tests score the pipeline against.

Same seed and scale => byte-identical files. Rows grow linearly with scale; taxi rows are
generated and written in chunks, so memory stays flat.
"""

from __future__ import annotations

import json
from pathlib import Path

from etl.sample import boundary, company, taxi

TAXI_ROWS_PER_SCALE = 100_000
TRUTH_FILE = "_sample_truth.json"

__all__ = ["TRUTH_FILE", "write_sample"]


SOURCES = ("dc_taxi", "dc_boundary", "dispatch", "courier")


def write_sample(
    out: Path, seed: int = 0, scale: float = 1.0, sources: tuple[str, ...] = SOURCES
) -> dict:
    """Write the sample data root under `out`: every source, or those named in `sources`
    (the company silos come together: they share their overlap).

    Returns a summary: files and bytes written, and rows per source (dispatch rows are lines,
    broken and superseded ones included; courier rows are data rows, duplicates included).
    """
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if not scale > 0:
        raise ValueError("scale must be positive")
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}; choose from {list(SOURCES)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    taxi_rows = round(TAXI_ROWS_PER_SCALE * scale)
    taxi_truth: dict[str, dict] = {}
    written: dict[str, list[str]] = {}
    if "dc_taxi" in sources:
        written["dc_taxi"] = []
        # The older release gets the odd row.
        for release, rows in zip(
            taxi.RELEASES, (taxi_rows - taxi_rows // 2, taxi_rows // 2), strict=True
        ):
            taxi_truth.update(taxi.write_release(out, release, seed, rows))
            written["dc_taxi"].append(f"dc_taxi/{release.zip_name}")
    if "dc_boundary" in sources:
        written["dc_boundary"] = [boundary.write_boundary(out)]
    company_truth: dict = {}
    if {"dispatch", "courier"} & set(sources):
        company_files, company_truth = company.write_company(out, seed, scale)
        for source in ("dispatch", "courier"):
            written[source] = [f for f in company_files if f.startswith(f"company/{source}/")]

    truth = {
        "seed": seed,
        "scale": scale,
        "dc_taxi": taxi_truth,
        "dc_taxi_thresholds": {
            "fare_min": taxi.FARE_MIN,
            "fare_max": taxi.FARE_MAX,
            "mileage_outlier_miles": taxi.MILEAGE_OUTLIER_MILES,
            "duration_unit": "seconds",
        },
        **company_truth,
    }
    (out / TRUTH_FILE).write_text(json.dumps(truth, indent=1) + "\n")
    written["truth"] = [TRUTH_FILE]
    return {
        "out": str(out),
        "seed": seed,
        "scale": scale,
        "files": {source: len(paths) for source, paths in written.items()},
        "bytes": sum((out / p).stat().st_size for paths in written.values() for p in paths),
        "rows": {
            name: count
            for name, count in (
                ("dc_taxi", sum(m["rows"] for m in taxi_truth.values())),
                ("dc_boundary", 1),
                ("dispatch", company_truth.get("dispatch", {}).get("lines", 0)),
                ("courier", sum(f["rows"] for f in company_truth.get("courier", {}).values())),
            )
            if name in written
        },
        "truth_file": TRUTH_FILE,
    }
