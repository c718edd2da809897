"""Time the trip suite on a generated batch: ``python bench/batch_suites_bench.py --rows 5000000``.

Builds ``pending.dc_taxi`` (plausible DC trips from ``range()`` and ``random()``; with
``--audit-view`` ``staging.dc_taxi``) in a DuckDB file in a temporary directory, then runs
``schemas/suites/trip.json`` on it with ``run_suite`` and prints wall and CPU seconds (all
threads) per run as JSON. ``--audit-view`` checks the batch as ``etl run`` does: through the
audit view over a staging table (its run filter and record key).

Only ``run_suite``'s long-standing arguments are used, so this script times older checkouts
too: run it with another checkout's interpreter to compare (its ``etl`` is then imported).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from etl.quality.audit import _batch_view
from etl.quality.batch import DEFAULT_RESULT_FORMAT, gx_context, load_suite, run_suite, suite_path

TRIPS_SQL = """
CREATE OR REPLACE TABLE {table} AS
WITH b AS (SELECT range AS i, random() r1, random() r2, random() r3, random() r4 FROM range({n})),
t AS (SELECT *, 0.3 - ln(1 - r1) * 2.0 AS miles, 120 - ln(1 - r2) * 700 AS secs FROM b)
SELECT 'dc-' || i AS source_record_id,
       TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds(i % 2678400) AS pickup_at,
       TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds(i % 2678400 + secs::BIGINT) AS dropoff_at,
       CASE WHEN r3 < 0.15 THEN NULL ELSE 38.85 + r1 * 0.1 END AS pickup_lat,
       CASE WHEN r3 < 0.15 THEN NULL ELSE -77.08 + r2 * 0.1 END AS pickup_lon,
       38.85 + r2 * 0.1 AS dropoff_lat, -77.08 + r1 * 0.1 AS dropoff_lon,
       miles AS distance_miles, secs AS duration_s,
       CASE WHEN r4 < 0.05 THEN NULL ELSE round(3.25 + miles * 2.16 + secs / 60 * 0.35, 2) END
           AS fare_usd,
       'bench' AS _run_id, 'dc_taxi/bench.zip!bench.txt' AS _file, i + 2 AS _line,
       CASE WHEN i % 1000 = 7 THEN ['not_a_trip'] ELSE []::VARCHAR[] END AS _flags
FROM t
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--examples", action="store_true", help='result_format "BASIC" (examples)')
    ap.add_argument("--audit-view", action="store_true", help="check through the audit view")
    args = ap.parse_args(argv)

    out: dict = {"rows": args.rows}
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        schema = "staging" if args.audit_view else "pending"
        con.execute(f"CREATE SCHEMA {schema}")
        t0 = time.perf_counter()
        con.execute(TRIPS_SQL.format(n=args.rows, table=f"{schema}.dc_taxi"))
        relation = f"{schema}.dc_taxi"
        if args.audit_view:  # the pipeline's own view: run filter, flags, record key
            relation = _batch_view(con, "dc_taxi", ("source_record_id",), "bench")
        out["generate_s"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        gx_context()
        out["gx_import_and_context_s"] = round(time.perf_counter() - t0, 2)

        suite = load_suite(suite_path("trip"))
        params = {"min_rows": args.rows * 0.5, "max_rows": args.rows * 2.0}
        fmt = "BASIC" if args.examples else DEFAULT_RESULT_FORMAT
        walls, cpus = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            results = run_suite(con, relation, suite, params, result_format=fmt)
            walls.append(round(time.perf_counter() - t0, 2))
            cpus.append(round(time.process_time() - c0, 2))
        out["run_suite_s"] = walls
        out["run_suite_cpu_s"] = cpus
        out["failed"] = [r.expectation for r in results if not r.success]
        con.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
