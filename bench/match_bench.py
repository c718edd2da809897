"""Benchmark cross-silo matching on a year of synthetic DC trips.

Generates two canonical trip tables in DuckDB (``staging.dispatch`` and ``staging.courier``,
about 1,000,000 rows each by default, about 3 % of each silo being the same physical trip as a
record of the other), runs :func:`etl.engine.duckdb.match.match_trips` on them, and prints the
wall time, the peak resident memory of the process during matching, and the precision and
recall of the matches against the generator's ground truth.

The data is built to be realistic where it matters for matching:

* pickup times over one year (2019), with morning and evening peaks (so the time buckets are
  unevenly loaded, as in life);
* pickups clustered around a dozen DC hotspots, 5 % of them at four depots (GPS jitter of a few
  metres), so many trips start at almost the same point;
* "convoys": about 1 % of trips leave right after another trip from the same point, half of
  them going to the same destination too; when only one of the two is in both silos this is
  exactly the depot case the one-to-one rule must get right;
* the second silo's copy of a shared trip has a clock skew (+8 s, sd 20 s, clipped to
  +-100 s) and GPS noise (sd 10 m, clipped to 35 m per axis) on both ends.

Usage::

    /work/.venv/bin/python bench/match_bench.py [--rows 1000000] [--dup-frac 0.03] [--days 365]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import tempfile
import threading
import time

import duckdb

from etl.engine.duckdb.match import MatchTolerance, match_trips

_PAGE = os.sysconf("SC_PAGE_SIZE")

GENERATE_SQL = """
CREATE SCHEMA IF NOT EXISTS staging;

CREATE OR REPLACE TEMP MACRO gauss(a, b) AS sqrt(-2 * ln(1 - a)) * cos(2 * pi() * b);

CREATE OR REPLACE TABLE physical AS
WITH hotspots(h, lat, lon) AS (VALUES
    (0, 38.9019, -77.0390), (1, 38.8973, -77.0063), (2, 38.9055, -77.0631),
    (3, 38.9097, -77.0434), (4, 38.8867, -76.9996), (5, 38.8764, -77.0030),
    (6, 38.9296, -77.0325), (7, 38.9169, -77.0286), (8, 38.8623, -76.9953),
    (9, 38.9478, -77.0795), (10, 38.9070, -77.0030), (11, 38.9330, -76.9940)
),
depots(h, lat, lon) AS (VALUES
    (0, 38.9230, -76.9800), (1, 38.8700, -77.0080), (2, 38.9510, -77.0280), (3, 38.8830, -76.9790)
),
draws AS (
    SELECT
        i AS trip,
        random() AS u_day, random() AS u_peak, random() AS u_tod1, random() AS u_tod2,
        random() AS u_place, random() AS u_h, random() AS u_a, random() AS u_b,
        random() AS u_c, random() AS u_d, random() AS u_dir, random() AS u_len1,
        random() AS u_len2, random() AS u_speed, random() AS u_silo
    FROM range($n_physical) AS r(i)
),
timed AS (
    SELECT *,
        -- Hour of day: 40 % around the 8:30 peak, 40 % around the 18:00 peak, 20 % uniform.
        CASE
            WHEN u_peak < 0.4 THEN 8.5 + 1.5 * gauss(u_tod1, u_tod2)
            WHEN u_peak < 0.8 THEN 18.0 + 2.0 * gauss(u_tod1, u_tod2)
            ELSE 24 * u_tod1
        END AS hour_raw
    FROM draws
),
placed AS (
    SELECT
        t.trip, t.u_silo, t.u_dir, t.u_len1, t.u_len2, t.u_speed,
        -- Midnight Eastern (standard) time is 05:00 UTC.
        TIMESTAMPTZ '2019-01-01 05:00:00+00'
            + to_days(floor(t.u_day * $days)::INTEGER)
            + to_seconds(floor((((t.hour_raw % 24) + 24) % 24) * 3600)::BIGINT) AS pickup_at,
        CASE WHEN t.u_place < 0.05
            THEN d.lat + 0.00005 * gauss(t.u_a, t.u_b)
            ELSE h.lat + 0.012 * gauss(t.u_a, t.u_b) END AS pickup_lat,
        CASE WHEN t.u_place < 0.05
            THEN d.lon + 0.00006 * gauss(t.u_c, t.u_d)
            ELSE h.lon + 0.015 * gauss(t.u_c, t.u_d) END AS pickup_lon
    FROM timed AS t
    JOIN hotspots AS h ON h.h = floor(t.u_h * 12)
    JOIN depots AS d ON d.h = floor(t.u_h * 4)
),
routed AS (
    SELECT *,
        -- Trip length: log-normal, median 3 km, capped at 20 km.
        least(20.0, exp(ln(3.0) + 0.6 * gauss(u_len1, u_len2))) AS km
    FROM placed
),
ended AS (
    SELECT *,
        pickup_lat + km / 111.2 * sin(2 * pi() * u_dir) AS dropoff_lat,
        pickup_lon + km / (111.2 * cos(radians(38.9))) * cos(2 * pi() * u_dir) AS dropoff_lon,
        (km / (15 + 20 * u_speed) * 3600)::INTEGER AS duration_s
    FROM routed
),
-- Convoys: every 97th trip leaves 10-60 s after the previous one from the same point; half
-- of them also share its destination (within ~30 m).
convoyed AS (
    SELECT
        trip, u_silo, km, trip % 97 = 1 AS is_convoy, lag(u_silo) OVER w AS u_silo_leader,
        CASE WHEN trip % 97 = 1
            THEN lag(pickup_at) OVER w + to_seconds((10 + (trip * 7919) % 51)::BIGINT)
            ELSE pickup_at END AS pickup_at,
        CASE WHEN trip % 97 = 1 THEN lag(pickup_lat) OVER w + 0.00004 ELSE pickup_lat END
            AS pickup_lat,
        CASE WHEN trip % 97 = 1 THEN lag(pickup_lon) OVER w - 0.00003 ELSE pickup_lon END
            AS pickup_lon,
        CASE WHEN trip % 97 = 1 AND trip % 2 = 0 THEN lag(dropoff_lat) OVER w + 0.0002
            ELSE dropoff_lat END AS dropoff_lat,
        CASE WHEN trip % 97 = 1 AND trip % 2 = 0 THEN lag(dropoff_lon) OVER w - 0.0002
            ELSE dropoff_lon END AS dropoff_lon,
        duration_s
    FROM ended
    WINDOW w AS (ORDER BY trip)
)
SELECT
    * EXCLUDE (is_convoy, u_silo_leader),
    -- Silo membership: a share p_both of physical trips is logged by both systems. A convoy
    -- belongs to one company's depot: the follower is logged only by the silo of the leader
    -- (the dispatch silo when the leader is shared), which makes the depot case: two
    -- look-alike dispatch trips, one courier record of the leader.
    CASE WHEN is_convoy THEN
            CASE WHEN u_silo_leader < $p_both + (1 - $p_both) / 2 THEN 'left' ELSE 'right' END
         WHEN u_silo < $p_both THEN 'both'
         WHEN u_silo < $p_both + (1 - $p_both) / 2 THEN 'left'
         ELSE 'right' END AS silo
FROM convoyed;

CREATE OR REPLACE TABLE staging.dispatch AS
SELECT
    'D-' || lpad(trip::VARCHAR, 9, '0') AS source_record_id,
    pickup_at,
    pickup_at + to_seconds(duration_s) AS dropoff_at,
    pickup_lat, pickup_lon, dropoff_lat, dropoff_lon,
    km / 1.609344 AS distance_miles,
    duration_s,
    round(3.5 + 2.16 * km / 1.609344 + 0.35 * duration_s / 60, 2) AS fare_usd,
    'bench' AS _run_id,
    'company/dispatch/dispatch_bench.jsonl' AS _file,
    (row_number() OVER () + 1)::BIGINT AS _line,
    trip AS _truth
FROM physical WHERE silo IN ('both', 'left');

CREATE OR REPLACE TABLE staging.courier AS
WITH noise AS (
    SELECT *,
        greatest(-100, least(100, 8 + 20 * gauss(random(), random()))) AS skew_s,
        -- 10 m sd per axis in degrees, clipped at 35 m.
        greatest(-0.000315, least(0.000315, 0.00009 * gauss(random(), random()))) AS n1,
        greatest(-0.000405, least(0.000405, 0.000116 * gauss(random(), random()))) AS n2,
        greatest(-0.000315, least(0.000315, 0.00009 * gauss(random(), random()))) AS n3,
        greatest(-0.000405, least(0.000405, 0.000116 * gauss(random(), random()))) AS n4
    FROM physical WHERE silo IN ('both', 'right')
)
SELECT
    'C-' || lpad(trip::VARCHAR, 9, '0') AS source_record_id,
    pickup_at + to_seconds(round(skew_s)::BIGINT) AS pickup_at,
    pickup_at + to_seconds(round(skew_s)::BIGINT + duration_s) AS dropoff_at,
    pickup_lat + n1 AS pickup_lat, pickup_lon + n2 AS pickup_lon,
    dropoff_lat + n3 AS dropoff_lat, dropoff_lon + n4 AS dropoff_lon,
    round(km / 1.609344, 1) AS distance_miles,
    duration_s,
    round(3.25 + 2.0 * km / 1.609344, 2) AS fare_usd,
    'bench' AS _run_id,
    'company/courier/courier_trips_bench.csv' AS _file,
    (row_number() OVER () + 1)::BIGINT AS _line,
    trip AS _truth
FROM noise;

DROP TABLE physical;
"""


class PeakRss:
    """Samples this process's resident set size in a background thread; keeps the maximum.

    ``ru_maxrss`` would include the data generation; sampling /proc gives the peak of just the
    timed section.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def current_bytes() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.current_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.peak_bytes = self.current_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self.current_bytes())


def generate(path: str, rows: int, dup_frac: float, days: int, seed: float) -> None:
    """Write the two synthetic silos into the DuckDB file ``path`` (run in a child process)."""
    # Each silo holds `rows` trips of which dup_frac are shared: the physical trips number
    # rows * (2 - dup_frac), of which a share dup_frac / (2 - dup_frac) is in both silos.
    params = {
        "n_physical": round(rows * (2 - dup_frac)),
        "p_both": dup_frac / (2 - dup_frac),
        "days": days,
    }
    with duckdb.connect(path) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute("SELECT setseed($seed)", {"seed": seed})
        for statement in GENERATE_SQL.split(";\n"):
            if statement.strip():
                used = {k: v for k, v in params.items() if f"${k}" in statement}
                con.execute(statement, used or None)
        con.execute("CHECKPOINT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per silo (approx.)")
    parser.add_argument("--dup-frac", type=float, default=0.03, help="share of shared trips")
    parser.add_argument("--seed", type=float, default=0.42, help="DuckDB setseed() in [-1, 1]")
    parser.add_argument(
        "--days", type=int, default=365, help="days the trips span (fewer = denser)"
    )
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("etl.engine.duckdb.match").setLevel(logging.DEBUG)  # per-statement timings

    with tempfile.TemporaryDirectory(prefix="match_bench_") as tmp:
        path = os.path.join(tmp, "bench.duckdb")
        # Generate in a separate (spawned) process so that this process's memory figures
        # cover only opening the warehouse file and matching, as in the nightly run.
        t0 = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(
            target=generate, args=(path, args.rows, args.dup_frac, args.days, args.seed)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"data generation failed (exit code {child.exitcode})")
        gen_s = time.perf_counter() - t0

        con = duckdb.connect(path)
        con.execute("SET enable_progress_bar = false")
        if args.threads:
            con.execute(f"SET threads = {int(args.threads)}")
        n_left = con.execute("SELECT count(*) FROM staging.dispatch").fetchone()[0]
        n_right = con.execute("SELECT count(*) FROM staging.courier").fetchone()[0]
        print(
            f"generated {n_left:,} dispatch x {n_right:,} courier trips over {args.days} days "
            f"in {gen_s:.1f} s"
        )

        with PeakRss() as rss:
            before = rss.peak_bytes
            t0 = time.perf_counter()
            table = match_trips(con, "staging.dispatch", "staging.courier", MatchTolerance())
            match_s = time.perf_counter() - t0

        n_shared = con.execute(
            "SELECT count(*) FROM staging.dispatch JOIN staging.courier USING (_truth)"
        ).fetchone()[0]
        stats = con.execute(f"""
            SELECT count(*) AS matched,
                   count(*) FILTER (WHERE l._truth = r._truth) AS correct,
                   max(m.round) AS rounds,
                   min(m.score) AS min_score
            FROM {table} AS m
            JOIN staging.dispatch AS l ON l.source_record_id = m.left_id
            JOIN staging.courier AS r ON r.source_record_id = m.right_id
        """).fetchone()
        matched, correct, rounds, min_score = stats
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        con.close()

    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"match_trips: {match_s:.2f} s wall (threads={threads}); "
        f"peak RSS while matching {rss.peak_bytes / 2**20:,.0f} MiB "
        f"(process RSS before matching {before / 2**20:,.0f} MiB; "
        f"process lifetime max {maxrss_mib:,.0f} MiB)"
    )
    print(
        f"matched {matched:,} pairs in {rounds} rounds; {n_shared:,} truly shared trips; "
        f"correct {correct:,}; precision {correct / max(matched, 1):.4%}; "
        f"recall {correct / max(n_shared, 1):.4%}; min score {min_score or 0:.3f}"
    )


if __name__ == "__main__":
    main()
