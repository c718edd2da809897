"""Point estimates that are conditional means, and calibrated 80% intervals.

A model of log(target) returns the conditional median when its prediction is exponentiated: for
log-normal noise of spread s that is exp(s**2 / 2) below the mean (3% on the generator's
durations, 8-16% on real taxi trips). Two ways to the mean are measured on a calibration fold
(the latest 20% of the training period, which the candidate models do not see):

- ``log_smearing``: L2 on log(target), exponentiated and multiplied by Duan's smearing factor,
  the mean of exp(residual) of the log residuals on the calibration fold (centred, and
  winsorised at 0.5% and 99.5%: a few charters billed at many times a trip's fare must not
  move every estimate), per source (each silo has its own noise);
- ``gamma``: LightGBM's gamma objective on the target itself, a loss whose minimiser is the mean
  (log link, so errors still scale with the trip).

The one with the lower RMSE on the calibration fold is kept; ``log_median`` (no correction) is
scored beside them to show the bias it would have. The 80% interval is the estimate times the
10th and 90th percentiles of actual/estimate on the calibration fold, per source: calibrated on
trips the model did not learn from, so its coverage holds on new trips (reported on the test
split). The kept estimator is then refitted on the whole training period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from etl.ml.features import CATEGORICAL, feature_matrix
from etl.ml.metrics import scores

ALL = "_all"  # the key of the factor for a source with too few calibration trips
MIN_GROUP_ROWS = 100  # a source needs this many calibration trips for factors of its own
INTERVAL = (0.1, 0.9)
WINSOR = (0.005, 0.995)
EARLY_STOPPING = 20  # rounds without a better calibration loss before a candidate stops
OBJECTIVES = {"log_smearing": "regression", "gamma": "gamma"}


def fit(
    lgb: Any,
    rows: pl.DataFrame,
    target: str,
    levels: dict[str, list[str]],
    features: Sequence[str],
    estimator: str,
    params: dict[str, Any],
    rounds: int,
    valid: pl.DataFrame | None = None,
) -> Any:
    """A LightGBM booster for `estimator`: L2 on log(target), or gamma on the target. With
    `valid`, at most `rounds` rounds, stopped early when its loss on `valid` stops falling (its
    `best_iteration` is then what predict uses)."""

    def dataset(frame: pl.DataFrame, reference: Any = None) -> Any:
        values = frame[target].to_numpy()
        return lgb.Dataset(
            feature_matrix(frame, levels, features),
            np.log(values) if estimator == "log_smearing" else values,
            feature_name=list(features),
            categorical_feature=[features.index(name) for name in CATEGORICAL],
            reference=reference,
        )

    train_set = dataset(rows)
    extra: dict[str, Any] = {}
    if valid is not None:
        extra["valid_sets"] = [dataset(valid, train_set)]
        extra["callbacks"] = [lgb.early_stopping(EARLY_STOPPING, verbose=False)]
    return lgb.train({**params, "objective": OBJECTIVES[estimator]}, train_set, rounds, **extra)


def choose(
    boosters: dict[str, Any],
    calibration: pl.DataFrame,
    target: str,
    levels: dict[str, list[str]],
    features: Sequence[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec, report): the estimator with the lower RMSE on the calibration fold, its factors
    and interval ratios; the report scores every candidate on that fold."""
    matrix = feature_matrix(calibration, levels, features)
    actual = calibration[target].to_numpy()
    sources = calibration["source"]
    codes = Sources(matrix[:, list(features).index("source")], levels["source"])
    specs, report = {}, {}
    for name, booster in boosters.items():
        raw = booster.predict(matrix, num_threads=0)
        if name == "log_smearing":
            median = np.exp(raw)
            report["log_median"] = scores(actual, median)
            factor = _by_source(sources, np.log(actual / median), _smearing)
        else:
            factor = {ALL: 1.0}
        point = _point(raw, name, factor, codes)
        ratio = actual / point
        specs[name] = {
            "estimator": name,
            "factor": factor,
            "p10": _by_source(sources, ratio, lambda r: np.quantile(r, INTERVAL[0])),
            "p90": _by_source(sources, ratio, lambda r: np.quantile(r, INTERVAL[1])),
        }
        report[name] = scores(actual, point)
    chosen = min(specs, key=lambda name: report[name]["rmse"])
    return specs[chosen], {
        "chosen": chosen,
        "criterion": "lowest RMSE on the calibration fold",
        "calibration_rows": calibration.height,
        "candidates": report,
    }


@dataclass(frozen=True)
class Sources:
    """Each row's source as its code in `levels` (the matrix's `source` column; NaN: unknown)."""

    codes: np.ndarray
    levels: list[str]

    def lookup(self, table: dict[str, float]) -> np.ndarray:
        """Each row's value in `table`: its source's, or the overall one (ALL)."""
        values = np.array([*(table.get(level, table[ALL]) for level in self.levels), table[ALL]])
        index = np.where(np.isnan(self.codes), len(self.levels), self.codes).astype(np.int64)
        return values[index]


def predict(
    booster: Any, spec: dict[str, Any], matrix: np.ndarray, sources: Sources
) -> dict[str, np.ndarray]:
    """Mean estimate and 80% interval (`point`, `p10`, `p90`) of each row of `matrix`."""
    # One thread for a few rows: waking OpenMP's threads costs more than it saves.
    threads = 1 if matrix.shape[0] < 1000 else 0
    raw = booster.predict(matrix, num_threads=threads)
    point = _point(raw, spec["estimator"], spec["factor"], sources)
    return {
        "point": point,
        "p10": point * sources.lookup(spec["p10"]),
        "p90": point * sources.lookup(spec["p90"]),
    }


def _point(
    raw: np.ndarray, estimator: str, factor: dict[str, float], sources: Sources
) -> np.ndarray:
    mean = np.exp(raw) if estimator == "log_smearing" else raw
    return mean * sources.lookup(factor)


def _smearing(residuals: np.ndarray) -> float:
    """Duan's smearing factor, the mean of exp(residual), of log residuals centred on their
    mean (an L2 fit of log(target) has residuals of mean 0; the level of the candidate model on
    the calibration fold is not the final model's) and winsorised at WINSOR (one charter billed
    at 60 times its estimate in a few thousand calibration trips would raise every fare 2%)."""
    centred = residuals - residuals.mean()
    return float(np.exp(np.clip(centred, *np.quantile(centred, WINSOR))).mean())


def _by_source(sources: pl.Series, values: np.ndarray, statistic: Any) -> dict[str, float]:
    """`statistic` of `values` overall (ALL) and for each source with enough rows."""
    result = {ALL: round(float(statistic(values)), 6)}
    names = sources.to_numpy()
    for source in sorted(sources.unique().to_list()):
        mask = names == source
        if mask.sum() >= MIN_GROUP_ROWS:
            result[source] = round(float(statistic(values[mask])), 6)
    return result
