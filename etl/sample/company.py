"""The company's two silos for 2023: dispatch (JSON Lines) and courier (CSV), overlapping.

Order of work: draw both silos' trips from the ground-truth model, plant the cross-silo cases
and the courier's clock defects, move unplanted trips apart until nothing matches by accident,
then number the trips in time order and write the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from etl.sample import courier, dispatch, overlap, text, trips
from etl.sample.trips import TripSet

DISPATCH_JOBS_PER_SCALE = 21_500  # 94% complete: at scale 50, a million trips a silo
COURIER_TRIPS_PER_SCALE = 20_000
MIN_DISPATCH_JOBS, MIN_COURIER_TRIPS = 100, 50
# Seed streams: the taxi chunks use [seed, year, month, chunk]; these differ in length.
COMPANY_STREAM = 7


@dataclass(frozen=True)
class Silos:
    """Both silos' trips, each in pickup-time order (so a trip's position is its number), and
    the planted pairs as (dispatch position, courier position)."""

    dispatch: TripSet
    status: np.ndarray
    courier: TripSet
    clock_defects: courier.ClockDefects
    matches: np.ndarray
    near_misses: np.ndarray
    near_miss_kinds: list[str]


def _time_order(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank): the permutation that sorts t, and each element's position in it."""
    order = np.argsort(t, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return order, rank


def simulate_silos(rng: np.random.Generator, scale: float) -> Silos:
    # Floors keep every planted case possible at tiny scales.
    n_dispatch = max(MIN_DISPATCH_JOBS, round(DISPATCH_JOBS_PER_SCALE * scale))
    n_courier = max(MIN_COURIER_TRIPS, round(COURIER_TRIPS_PER_SCALE * scale))
    base = trips.simulate(rng, n_dispatch)
    status = rng.choice(3, size=n_dispatch, p=dispatch.STATUS_WEIGHTS)
    planted = overlap.plant(rng, base, status == dispatch.COMPLETED, n_courier)
    del base  # planted.dispatch holds it (plus the decoys); at scale 50 each copy is ~70 MB
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
    # Both systems number their trips in time order.
    d_order, d_rank = _time_order(d.pickup_utc)
    c_order, c_rank = _time_order(c.pickup_utc)

    def renumber(pairs: np.ndarray) -> np.ndarray:
        return np.column_stack([d_rank[pairs[:, 0]], c_rank[pairs[:, 1]]])

    return Silos(
        dispatch=d.take(d_order),
        status=status[d_order],
        courier=c.take(c_order),
        clock_defects=clock_defects.take(c_order),
        matches=renumber(planted.matches),
        near_misses=renumber(planted.near_misses),
        near_miss_kinds=planted.near_miss_kinds,
    )


def write_company(root: Path, seed: int, scale: float) -> tuple[list[str], dict]:
    """Write both silos under root/company; returns relative paths and the truth sections."""
    rng = np.random.default_rng([seed, COMPANY_STREAM])
    silos = simulate_silos(rng, scale)
    n_d, n_c = len(silos.dispatch), len(silos.courier)
    paths, d_truth = dispatch.write_dispatch(
        root,
        rng,
        silos.dispatch,
        silos.status,
        job=np.arange(n_d),
        vehicle=rng.integers(1, 800, n_d),
        driver=rng.integers(1_000, 3_000, n_d),
    )
    c_paths, c_truth = courier.write_courier(
        root,
        rng,
        silos.courier,
        courier.trip_ref_text(np.arange(n_c)),
        text.padded_ids("CV-", rng.integers(1, 150, n_c), 3),
        silos.clock_defects,
    )

    def pairs(idx: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "job_id": dispatch.job_id_text(idx[:, 0]),
                "trip_ref": courier.trip_ref_text(idx[:, 1]),
            }
        )

    matches = pairs(silos.matches).sort("trip_ref")
    near = pairs(silos.near_misses).with_columns(kind=pl.Series(silos.near_miss_kinds))
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
