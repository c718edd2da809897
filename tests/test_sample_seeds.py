"""`etl sample` succeeds for every seed: the overlap guard never gives up on a sample."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from etl.cli.main import app
from etl.sample import company, dispatch, overlap
from etl.sample.trips import TripSet


def _trips(pickups: list[int], groups: list[int]) -> TripSet:
    n = len(pickups)
    pickup = np.array(pickups, dtype=np.int64)
    return TripSet(
        pickup_utc=pickup,
        dropoff_utc=pickup + 900,
        plat=np.full(n, 38.9),
        plon=np.full(n, -77.03),
        dlat=np.full(n, 38.95),
        dlon=np.full(n, -77.0),
        miles=np.full(n, 3.0),
        fare_cents=np.full(n, 1500, dtype=np.int64),
        group=np.array(groups, dtype=np.int64),
    )


def test_two_planted_cases_that_collide_are_pulled_apart() -> None:
    """Seed 0 at scale 10: two planted pairs at the same place and minute, each one's dispatch
    trip within the guard of the other's courier trip. Moving both cases by the same week kept
    them together until the guard gave up."""
    may = 1_683_000_000
    d = _trips([may, may + 60], [0, 1])
    c = _trips([may + 5, may + 65], [0, 1])
    no = np.zeros(2, dtype=bool)
    d, c = overlap.separate(d, np.ones(2, dtype=bool), c, no, no)
    di, ci = overlap.close_pairs(
        d, np.ones(2, dtype=bool), c, c.pickup_utc, overlap.GUARD_TIME_S, overlap.GUARD_DISTANCE_M
    )
    assert sorted(zip(d.group[di], c.group[ci], strict=True)) == [(0, 0), (1, 1)]
    assert abs(int(d.pickup_utc[1] - d.pickup_utc[0])) >= overlap.WEEK_S - 60


@pytest.mark.parametrize("seed", range(12))
def test_company_silos_for_many_seeds(seed: int) -> None:
    silos = company.simulate_silos(np.random.default_rng([seed, company.COMPANY_STREAM]), 0.3)
    d, c = silos.dispatch, silos.courier
    start = np.where(silos.clock_defects.end_first, c.dropoff_utc, c.pickup_utc)
    di, ci = overlap.close_pairs(
        d,
        silos.status == dispatch.COMPLETED,
        c,
        start,
        overlap.GUARD_TIME_S,
        overlap.GUARD_DISTANCE_M,
    )
    planted = (d.group[di] >= 0) & (d.group[di] == c.group[ci])
    assert not (~planted).any(), "an unplanted pair is within the guard"
    assert len(silos.matches) >= 2


@pytest.mark.heavy
def test_seed_0_at_scale_10(tmp_path) -> None:
    result = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--scale", "10"])
    assert result.exit_code == 0, result.output


def test_sample_into_a_file_is_refused(tmp_path) -> None:
    target = tmp_path / "data"
    target.write_text("not a folder")
    result = CliRunner().invoke(app, ["sample", "--out", str(target), "--scale", "0.01"])
    assert result.exit_code == 2
    assert f"error: {target}: exists and is not a folder" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
