"""The estimates are conditional means with calibrated intervals, on a generator whose true
expected values and noise are known: RMSE near the noise floor, no mean bias, 80% coverage."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

if importlib.util.find_spec("lightgbm") is None:
    pytest.skip("the model extra is not installed", allow_module_level=True)

from etl.ml.estimate import estimate, load_models
from etl.ml.train import time_split, train

# Log-normal noise spread per source: the silos differ, as real ones do.
SIGMA = {
    "duration_s": {"dispatch": 0.25, "courier": 0.35},
    "fare_usd": {"dispatch": 0.12, "courier": 0.18},
}
TRIPS = 40_000


def true_means(frame: pl.DataFrame) -> pl.DataFrame:
    """E[duration | trip] and E[fare | trip]: slower at the peaks, courier 10% slower."""
    hour = frame["pickup_at"].dt.convert_time_zone("America/New_York").dt.hour().to_numpy()
    peak = np.isin(hour, [7, 8, 9, 16, 17, 18, 19])
    mph = np.where(peak, 12.0, 20.0) / np.where(frame["source"] == "courier", 1.1, 1.0)
    miles = haversine_miles(frame)
    duration = 90.0 + miles / mph * 3600.0
    return frame.with_columns(
        mean_duration_s=pl.Series(duration),
        mean_fare_usd=pl.Series(3.5 + 2.2 * 1.3 * miles + 0.15 * duration / 60),
    )


def haversine_miles(frame: pl.DataFrame) -> np.ndarray:
    lat1, lon1, lat2, lon2 = (
        np.radians(frame[c].to_numpy())
        for c in ("pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon")
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 3958.7613 * np.arcsin(np.sqrt(a))


def generate(seed: int, n: int = TRIPS) -> pl.DataFrame:
    """Trips over 2023 with their true means and log-normal noise of mean 1 around them."""
    rng = np.random.default_rng(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "trip_id": [f"g{i:06d}" for i in range(n)],
            "source": rng.choice(["dispatch", "courier"], n),
            "pickup_at": pl.Series(
                [start + timedelta(seconds=int(s)) for s in rng.integers(0, 365 * 86400, n)],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "pickup_lat": rng.uniform(38.85, 38.95, n),
            "pickup_lon": rng.uniform(-77.08, -76.95, n),
            "dropoff_lat": rng.uniform(38.85, 38.95, n),
            "dropoff_lon": rng.uniform(-77.08, -76.95, n),
        }
    )
    frame = true_means(frame)
    for target, spreads in SIGMA.items():
        sigma = frame["source"].replace_strict(spreads, return_dtype=pl.Float64).to_numpy()
        noise = np.exp(sigma * rng.standard_normal(n) - sigma**2 / 2)  # E[noise] = 1
        frame = frame.with_columns(pl.Series(target, frame[f"mean_{target}"].to_numpy() * noise))
    return frame


def write_warehouse(frame: pl.DataFrame, path: Path) -> Path:
    """A warehouse holding only curated.trips, in the columns training reads."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA curated")
        con.register("generated", frame)
        con.execute(
            """CREATE TABLE curated.trips AS SELECT trip_id, source, 'second' AS time_precision,
                   pickup_at::TIMESTAMPTZ AS pickup_at, pickup_lat, pickup_lon, dropoff_lat,
                   dropoff_lon, false AS airport, []::VARCHAR[] AS flags,
                   1.2 AS distance_miles, duration_s, fare_usd
               FROM generated"""
        )
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[pl.DataFrame, Path, dict]:
    """The generator's trips and the models `etl train` makes of them."""
    folder = tmp_path_factory.mktemp("generated")
    trips = generate(seed=7)
    summary = train(write_warehouse(trips, folder / "wh.duckdb"), folder / "models")
    return trips, folder / "models", summary


@pytest.mark.parametrize("target", ["duration_s", "fare_usd"])
def test_estimates_are_unbiased_means_near_the_noise_floor(generated, target) -> None:
    trips, models, summary = generated
    _, test = time_split(trips)
    requests = test.select(
        "trip_id", "source", "pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon", "pickup_at"
    )
    answers = estimate(load_models(models), requests)
    assert answers["trip_id"].to_list() == test["trip_id"].to_list()  # ids carried, in order
    assert answers["error"].null_count() == answers.height
    actual = test[target].to_numpy()
    predicted = answers[target].to_numpy()
    # The floor: the error of the true conditional mean on the same held-out trips.
    floor = np.sqrt(np.mean((test[f"mean_{target}"].to_numpy() - actual) ** 2))
    rmse = np.sqrt(np.mean((predicted - actual) ** 2))
    assert rmse <= 1.02 * floor, (rmse, floor)
    assert abs(predicted.mean() - actual.mean()) <= 0.01 * actual.mean()
    inside = (actual >= answers[f"{target}_p10"].to_numpy()) & (
        actual <= answers[f"{target}_p90"].to_numpy()
    )
    assert 0.77 <= inside.mean() <= 0.83, inside.mean()
    # metrics.json reports what a user would measure on the test split
    reported = summary["metrics"][target]["model"]
    assert reported["coverage_80"] == pytest.approx(inside.mean(), abs=0.002)
    assert reported["bias_pct"] == pytest.approx(
        (predicted.mean() - actual.mean()) / actual.mean(), abs=0.001
    )


def test_the_uncorrected_median_would_be_low_and_the_choice_is_reported(generated) -> None:
    """exp() of a log fit is the median: exp(-s**2/2) below the mean. The chosen estimator
    removes that bias on the calibration fold, and metrics.json says which it is and why."""
    _, models, summary = generated
    duration = summary["metrics"]["duration_s"]["estimator"]
    candidates = duration["candidates"]
    assert candidates["log_median"]["bias_pct"] < -0.02
    # smearing lifts the median by about exp(s**2 / 2): 3% to 6% for these spreads
    assert candidates["log_smearing"]["bias_pct"] - candidates["log_median"]["bias_pct"] > 0.02
    chosen = duration["candidates"][duration["chosen"]]
    assert chosen["rmse"] == min(
        duration["candidates"][name]["rmse"] for name in ("log_smearing", "gamma")
    )
    on_disk = json.loads((models / "metrics.json").read_text())
    assert on_disk["metrics"]["duration_s"]["by_hour_band"].keys() >= {"morning peak 07-09"}
    card = (models / "model_card.md").read_text()
    assert "coverage" in card and duration["chosen"] in card
