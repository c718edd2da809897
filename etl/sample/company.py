"""The company's two silos for 2023: dispatch (JSON Lines) and courier (CSV), overlapping.

Order of work: draw both silos' trips from the ground-truth model, plant the cross-silo cases
and the courier's clock defects, move unplanted trips apart until nothing matches by accident,
then number the trips in time order and write the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from etl.sample import courier, dispatch, overlap, text, trips
from etl.sample.trips import TripSet

DISPATCH_JOBS_PER_SCALE = 20_000
COURIER_TRIPS_PER_SCALE = 10_000
# Seed streams: the taxi chunks use [seed, year, month, chunk]; these differ in length.
COMPANY_STREAM = 7


def _ranks(t: np.ndarray) -> np.ndarray:
    """Position of each element in time order (ties broken by input order)."""
    order = np.argsort(t, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def write_company(root: Path, seed: int, scale: float) -> tuple[list[str], dict]:
    """Write both silos under root/company; returns relative paths and the truth sections."""
    rng = np.random.default_rng([seed, COMPANY_STREAM])
    n_dispatch = max(1, round(DISPATCH_JOBS_PER_SCALE * scale))
    n_courier = max(1, round(COURIER_TRIPS_PER_SCALE * scale))

    base = trips.simulate(rng, n_dispatch)
    status = rng.choice(3, size=n_dispatch, p=dispatch.STATUS_WEIGHTS)
    planted = overlap.plant(rng, base, status == dispatch.COMPLETED, n_courier)
    status = np.concatenate(
        [status, np.full(len(planted.dispatch) - n_dispatch, dispatch.COMPLETED)]
    )
    c = TripSet.concat(
        planted.courier, trips.simulate(rng, max(0, n_courier - len(planted.courier)))
    )
    c, clock_defects = courier.plant_clock_defects(rng, c, scale)
    d, c = overlap.separate(
        planted.dispatch,
        status == dispatch.COMPLETED,
        c,
        clock_defects.end_first,
        clock_defects.pinned,
    )

    # Identifiers follow time order, as both systems hand them out.
    d_rank, c_rank = _ranks(d.pickup_utc), _ranks(c.pickup_utc)
    d_order, c_order = np.argsort(d_rank), np.argsort(c_rank)
    paths, d_truth = dispatch.write_dispatch(
        root,
        rng,
        d.take(d_order),
        status[d_order],
        job=np.arange(len(d)),
        vehicle=rng.integers(1, 800, len(d)),
        driver=rng.integers(1_000, 3_000, len(d)),
    )
    c_paths, c_truth = courier.write_courier(
        root,
        rng,
        c.take(c_order),
        courier.trip_ref_text(np.arange(len(c))),
        text.padded_ids("CV-", rng.integers(1, 150, len(c)), 3),
        clock_defects.take(c_order),
    )

    def pairs(idx: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "job_id": dispatch.job_id_text(d_rank[idx[:, 0]]),
                "trip_ref": courier.trip_ref_text(c_rank[idx[:, 1]]),
            }
        )

    matches = pairs(planted.matches).sort("trip_ref")
    near = pairs(planted.near_misses).with_columns(kind=pl.Series(planted.near_miss_kinds))
    near = near.sort(["kind", "trip_ref"])
    truth = {
        "dispatch": d_truth,
        "courier": c_truth,
        "matches": matches.rows(),
        "near_misses": near.rows(),
        "tolerance": {
            "time_s": overlap.TIME_TOLERANCE_S,
            "distance_m": overlap.DISTANCE_TOLERANCE_M,
        },
    }
    return paths + c_paths, truth
