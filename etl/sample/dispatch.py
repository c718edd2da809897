"""The company's dispatch exports: one JSON Lines file per local day, some gzipped.

Format (docs/data.md, "Silo 1: dispatch"): UTC ISO times, kilometres, integer cents; a job can
re-appear with a newer `updated_at` in the same or a later file (newest wins); some lines are
broken.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from etl.sample import clock, files, geo, text, trips
from etl.sample.trips import TripSet

COMPLETED, CANCELLED, IN_PROGRESS = 0, 1, 2
STATUS_NAMES = ["completed", "cancelled", "in_progress"]
STATUS_WEIGHTS = [0.94, 0.05, 0.01]

REVISION_RATE = 0.03  # jobs that re-appear with a newer version
STATUS_CHANGE_SHARE = 0.3  # of those: first exported in progress, then completed
BROKEN_RATE = 0.005
RENDER_BATCH = 100_000
BROKEN_KINDS = ["truncated", "unknown_field", "string_number"]  # codes 1, 2, 3; 0 = intact
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
FIRST_JOB_NUMBER = 184_000
# From this day on the export job gzips its files (a change in the company's tooling).
GZIP_FROM_DAY = clock.epoch_day(trips.YEAR, 10, 1)


def job_id_text(numbers: np.ndarray) -> pl.Series:
    """Job numbers as the dispatch system prints them ("D-000184223")."""
    return text.padded_ids("D-", FIRST_JOB_NUMBER + np.asarray(numbers), 9)


def _version_rows(
    rng: np.random.Generator,
    d: TripSet,
    status: np.ndarray,
    job: np.ndarray,
    vehicle: np.ndarray,
    driver: np.ndarray,
) -> pl.DataFrame:
    """One row per exported version of each job, in file order (integer columns only: ids are
    printed at render time, which keeps a million versions small)."""
    n = len(d)
    year_start_utc, year_end_utc = clock.local_to_utc(
        np.array([clock.epoch_day(trips.YEAR), clock.epoch_day(trips.YEAR + 1)]) * clock.DAY
        - [0, 1],
        trips.YEAR,
    )
    completed = status == COMPLETED
    late_cancel_fee = (status == CANCELLED) & (rng.random(n) < 0.3)
    charge = np.where(completed, d.fare_cents, np.where(late_cancel_fee, 500, 0))
    updated = np.where(
        completed,
        d.dropoff_utc + rng.integers(30, 300, n),
        d.pickup_utc + rng.integers(-1_200, 600, n),
    )
    updated = np.clip(updated, year_start_utc, year_end_utc)  # every version in a 2023 file

    # Revisions, on completed jobs. Broken lines, on unplanted completed jobs without one.
    revised = rng.choice(
        np.flatnonzero(completed),
        size=max(1, round(REVISION_RATE * int(completed.sum()))),
        replace=False,
    )
    changed = rng.random(len(revised)) < STATUS_CHANGE_SHARE
    status_change, correction = np.sort(revised[changed]), np.sort(revised[~changed])
    is_revised = np.zeros(n, dtype=bool)
    is_revised[revised] = True
    can_break = np.flatnonzero(completed & (d.group < 0) & ~is_revised)
    k_broken = max(len(BROKEN_KINDS), int(rng.binomial(n, BROKEN_RATE)))
    broken_rows = rng.choice(can_break, size=min(len(can_break), k_broken), replace=False)
    broken = np.zeros(n, dtype=np.int8)
    # Kinds in rotation over randomly chosen jobs: every kind shows up at any scale.
    broken[broken_rows] = np.arange(len(broken_rows)) % len(BROKEN_KINDS) + 1

    # A corrected charge is exported 10 min to 3 days after the wrong one. A status change:
    # first exported while in progress, then again when completed.
    final_updated = updated.copy()
    final_updated[correction] = np.minimum(
        updated[correction] + rng.integers(600, 3 * clock.DAY, len(correction)), year_end_utc
    )
    ride_s = d.dropoff_utc[status_change] - d.pickup_utc[status_change]
    first_updated = updated.copy()
    first_updated[status_change] = d.pickup_utc[status_change] + rng.integers(
        60, np.maximum(62, ride_s)
    )
    first_charge = charge.copy()
    first_charge[correction] = np.maximum(
        0,
        charge[correction]
        + rng.choice([-1, 1], len(correction)) * rng.integers(50, 1_500, len(correction)),
    )
    first_status = np.full(n, COMPLETED, dtype=np.int8)
    first_status[status_change] = IN_PROGRESS

    base = pl.DataFrame(
        {
            "job": job,
            "vehicle": vehicle,
            "driver": driver,
            "plat": d.plat,
            "plon": d.plon,
            "pickup_utc": d.pickup_utc,
            "dlat": d.dlat,
            "dlon": d.dlon,
            "dropoff_utc": d.dropoff_utc,
            "km": d.miles * geo.METERS_PER_MILE / 1_000,
        }
    )
    final = base.with_columns(
        status=pl.Series(status.astype(np.int8)),
        charge=pl.Series(charge),
        updated_utc=pl.Series(final_updated),
        broken=pl.Series(broken),
        version=pl.lit(2, pl.Int8),
    )
    earlier_rows = np.concatenate([correction, status_change])
    earlier = base[earlier_rows].with_columns(
        status=pl.Series(first_status[earlier_rows]),
        charge=pl.Series(first_charge[earlier_rows]),
        updated_utc=pl.Series(first_updated[earlier_rows]),
        broken=pl.lit(0, pl.Int8),
        version=pl.lit(1, pl.Int8),
    )
    rows = pl.concat([final, earlier])
    local_day = clock.utc_to_local(rows["updated_utc"].to_numpy(), trips.YEAR) // clock.DAY
    return rows.with_columns(day=pl.Series(local_day)).sort(
        ["day", "updated_utc", "job", "version"]
    )


def _json_lines(rows: pl.DataFrame, rng: np.random.Generator) -> pl.Series:
    """Render rows as JSON objects (key order and spacing as the dispatch system writes)."""
    status = rows["status"].to_numpy()

    def num(column: str, decimals: int) -> pl.Series:
        return text.decimal_text(rows[column].to_numpy(), decimals)

    def iso(column: str) -> pl.Series:
        return clock.format_seconds(rows[column].to_numpy(), ISO_UTC)

    frame = pl.DataFrame(
        {
            "job_id": job_id_text(rows["job"].to_numpy()),
            "vehicle_id": text.padded_ids("V-", rows["vehicle"].to_numpy(), 4),
            "driver_id": text.padded_ids("DR-", rows["driver"].to_numpy(), 4),
            "status": pl.Series(STATUS_NAMES).gather(status),
            "plat": num("plat", 5),
            "plon": num("plon", 5),
            "pat": iso("pickup_utc"),
            "dlat": num("dlat", 5),
            "dlon": num("dlon", 5),
            "dat": iso("dropoff_utc"),
            "km": num("km", 2),
            "charge": rows["charge"].cast(pl.String),
            "upd": iso("updated_utc"),
            "has_dropoff": status == COMPLETED,
            "in_progress": status == IN_PROGRESS,
            "broken": rows["broken"],
            "cut": rng.uniform(0.3, 0.9, len(rows)),
        }
    )
    dropoff = (
        pl.when(pl.col("has_dropoff"))
        .then(
            pl.concat_str(
                [
                    pl.lit('{"lat": '),
                    pl.col("dlat"),
                    pl.lit(', "lon": '),
                    pl.col("dlon"),
                    pl.lit(', "at": "'),
                    pl.col("dat"),
                    pl.lit('"}'),
                ]
            )
        )
        .otherwise(pl.lit("null"))
    )
    km = pl.when(pl.col("has_dropoff")).then(pl.col("km")).otherwise(pl.lit("null"))
    charge = pl.when(pl.col("in_progress")).then(pl.lit("null")).otherwise(pl.col("charge"))
    string_number = BROKEN_KINDS.index("string_number") + 1
    charge = (  # a string where a number belongs
        pl.when(pl.col("broken") == string_number)
        .then(pl.concat_str([pl.lit('"'), charge, pl.lit('"')]))
        .otherwise(charge)
    )
    line = pl.concat_str(
        [
            pl.lit('{"job_id": "'),
            pl.col("job_id"),
            pl.lit('", "vehicle_id": "'),
            pl.col("vehicle_id"),
            pl.lit('", "driver_id": "'),
            pl.col("driver_id"),
            pl.lit('", "status": "'),
            pl.col("status"),
            pl.lit('", "pickup": {"lat": '),
            pl.col("plat"),
            pl.lit(', "lon": '),
            pl.col("plon"),
            pl.lit(', "at": "'),
            pl.col("pat"),
            pl.lit('"}, "dropoff": '),
            dropoff,
            pl.lit(', "distance_km": '),
            km,
            pl.lit(', "charge_cents": '),
            charge,
            pl.lit(', "updated_at": "'),
            pl.col("upd"),
            pl.lit('"}'),
        ]
    )
    # The other two kinds are made from the rendered text.
    length = pl.col("line").str.len_chars()
    broken_line = (
        pl.when(pl.col("broken") == BROKEN_KINDS.index("truncated") + 1)
        .then(pl.col("line").str.head((length * pl.col("cut")).cast(pl.Int64)))
        .when(pl.col("broken") == BROKEN_KINDS.index("unknown_field") + 1)
        .then(
            pl.concat_str(
                [pl.col("line").str.head(length - 1), pl.lit(', "promo_code": "SPRING23"}')]
            )
        )
        .otherwise(pl.col("line"))
    )
    return frame.select(line.alias("line"), "broken", "cut").select(broken_line).to_series()


def write_dispatch(
    root: Path,
    rng: np.random.Generator,
    d: TripSet,
    status: np.ndarray,
    job: np.ndarray,
    vehicle: np.ndarray,
    driver: np.ndarray,
) -> tuple[list[str], dict]:
    """Write one file per local day of 2023; returns relative paths and the truth section.

    job, vehicle and driver are the numbers behind "D-000184223", "V-0412" and "DR-1093".
    """
    rows = _version_rows(rng, d, status, job, vehicle, driver)
    first_day = clock.epoch_day(trips.YEAR)
    bounds = np.searchsorted(rows["day"].to_numpy(), first_day + np.arange(366))
    paths: list[str] = []
    per_file: dict[str, dict] = {}
    broken_lines: list[dict] = []
    day = 0
    while day < 365:
        # Render whole days in batches of ~RENDER_BATCH lines: few polars calls, bounded memory.
        last = int(np.searchsorted(bounds, bounds[day] + RENDER_BATCH, "right")) - 1
        last = min(max(day + 1, last), 365)
        batch = rows.slice(int(bounds[day]), int(bounds[last] - bounds[day]))
        lines = _json_lines(batch, rng)
        for i in range(day, last):
            lo, hi = int(bounds[i] - bounds[day]), int(bounds[i + 1] - bounds[day])
            gz = first_day + i >= GZIP_FROM_DAY
            date = np.datetime64(first_day + i, "D")
            path = root / "company" / "dispatch" / f"dispatch_{date}.jsonl{'.gz' if gz else ''}"
            body = lines.slice(lo, hi - lo).str.join("\n").item() + "\n" if hi > lo else ""
            files.write_text(path, body.encode(), gzipped=gz)
            rel = str(path.relative_to(root))
            paths.append(rel)
            codes = batch["broken"].slice(lo, hi - lo).to_numpy()
            where = np.flatnonzero(codes)
            per_file[path.name] = {"lines": hi - lo, "broken": len(where)}
            jobs = job_id_text(batch["job"].slice(lo, hi - lo).to_numpy()[where]).to_list()
            broken_lines += [
                {"file": rel, "line": k + 1, "kind": BROKEN_KINDS[code - 1], "job_id": job_id}
                for k, code, job_id in zip(where.tolist(), codes[where].tolist(), jobs, strict=True)
            ]
        day = last
    valid = rows.filter(pl.col("broken") == 0)
    final = valid.filter(pl.col("version") == 2)
    truth = {
        "files": len(paths),
        "lines": len(rows),
        "versions": len(valid),  # valid job records, superseded versions included
        "jobs": final.height,  # distinct job ids among valid lines (newest version wins)
        "reappearing_jobs": len(valid) - final.height,
        "completed": int((final["status"] == COMPLETED).sum()),
        "cancelled": int((final["status"] == CANCELLED).sum()),
        "in_progress": int((final["status"] == IN_PROGRESS).sum()),
        "broken_lines": broken_lines,
        "per_file": per_file,
    }
    return paths, truth
