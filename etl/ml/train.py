"""`etl train`: the clean training table and two baseline LightGBM regressors (ETA and fare).

The table comes from the curated warehouse (read-only) by `training_table.sql`. It is split by
time: the models learn from the earliest 80% of pickups and are scored on the latest 20%, so
nothing from the test period leaks into training. The training period is split the same way
once more: its latest 20% is the calibration fold on which :mod:`etl.ml.estimators` chooses
how to estimate the mean and calibrates the 80% intervals. Each model is compared with the
naive baseline of :mod:`etl.ml.baseline` on the same test rows (RMSE, MAE, mean bias and
coverage, :mod:`etl.ml.metrics`). Training is deterministic: fixed seeds, LightGBM's
`deterministic` mode and a fixed thread count; the same warehouse gives the same files, byte
for byte. The files are written so that a reader never mixes two trainings (:func:`_write`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from etl.errors import MlModelError
from etl.ml import INSTALL_HINT, baseline, estimators
from etl.ml.card import model_card
from etl.ml.features import CATEGORICAL, feature_matrix, model_features, training_table
from etl.ml.metrics import score_test
from etl.reference.region import training_region

TEST_SHARE = 0.2
MIN_ROWS = 200  # below this a time split leaves too little to learn from or to score
SEED = 20240601
PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "seed": SEED,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
# At most; the candidates stop early on the calibration fold (50 to 90 rounds on the sample and
# on generated trips, with a lower loss than 150): fewer trees predict a million trips faster.
NUM_ROUNDS = 300

TABLE_FILE = "training_table.parquet"
METRICS_FILE = "metrics.json"
META_FILE = "model.json"
CARD_FILE = "model_card.md"
MODEL_FILES = {"duration_s": "duration_model.txt", "fare_usd": "fare_model.txt"}
# Predictions are asked as the company's own silo when the models know it.
PREFERRED_SOURCE = "dispatch"


def import_lightgbm():
    """LightGBM, or a MlModelError that says how to install it.

    OpenMP threads that spin while they wait for work make LightGBM several times slower on a
    machine busy with other work (measured: 4x on 2 cores under load); passive waiting costs
    little when it is idle. The policy is read when the OpenMP runtime loads, so set it first.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import lightgbm
    except ImportError:
        raise MlModelError(INSTALL_HINT) from None
    return lightgbm


def time_split(
    table: pl.DataFrame, test_share: float = TEST_SHARE
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test): test is every trip picked up at or after the pickup that starts the latest
    `test_share` of trips, so equal timestamps (DFHV's whole hours) never straddle the cut."""
    ordered = table.sort("pickup_at", "trip_id")
    cutoff = ordered["pickup_at"][int(ordered.height * (1 - test_share))]
    train = ordered.filter(pl.col("pickup_at") < cutoff)
    test = ordered.filter(pl.col("pickup_at") >= cutoff)
    if train.height == 0 or test.height == 0:
        raise MlModelError("all trips share one pickup time: no time split is possible")
    return train, test


def train(
    warehouse: Path, out: Path, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Build the training table, train and score both models, write them to `out`.

    Returns the metrics (what metrics.json holds). Raises MlModelError (exit 2) when LightGBM is
    missing, the warehouse cannot be read or holds too few trips to split.
    """
    lgb = import_lightgbm()
    table = training_table(warehouse)
    log(f"training table: {table.height:,} trips from {warehouse}")
    if table.height < MIN_ROWS:
        raise MlModelError(
            f"{warehouse}: {table.height} trips fit for training, at least {MIN_ROWS} needed"
        )
    train_rows, test_rows = time_split(table)
    levels = {name: sorted(table[name].unique().to_list()) for name in CATEGORICAL}
    features = model_features(train_rows)
    speeds = baseline.speed_by_hour(train_rows)
    baselines = {
        "duration_s": lambda frame: baseline.duration_s(frame, speeds),
        "fare_usd": baseline.fare_usd,
    }

    boosters, specs, metrics = {}, {}, {}
    for target in MODEL_FILES:
        boosters[target], specs[target], metrics[target] = _train_target(
            lgb, train_rows, test_rows, target, (levels, features), baselines[target], log
        )

    summary = _summary(warehouse, out, table, (train_rows, test_rows), features, metrics)
    meta = _meta(table, features, levels, specs, speeds)
    _write(out, table, boosters, summary, meta)
    log(f"wrote {out}")
    return summary


def _summary(
    warehouse: Path,
    out: Path,
    table: pl.DataFrame,
    split: tuple[pl.DataFrame, pl.DataFrame],
    features: list[str],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """What `etl train` returns and metrics.json holds: the split, the rows, the scores."""
    train_rows, test_rows = split
    return {
        "warehouse": str(warehouse),
        "out": str(out),
        "files": [TABLE_FILE, *MODEL_FILES.values(), METRICS_FILE, CARD_FILE, META_FILE],
        "split": {
            "method": f"by pickup time: earliest {1 - TEST_SHARE:.0%} train, latest test",
            "train": _window(train_rows),
            "test": _window(test_rows),
        },
        "rows": {
            "training_table": table.height,
            "train": train_rows.height,
            "test": test_rows.height,
        },
        "calendar": _calendar(train_rows, test_rows),
        "features": features,
        "metrics": metrics,
    }


def _meta(
    table: pl.DataFrame,
    features: list[str],
    levels: dict[str, list[Any]],
    specs: dict[str, dict[str, Any]],
    speeds: list[float],
) -> dict[str, Any]:
    """What a prediction needs besides the boosters (model.json): features, levels, region."""
    return {
        "features": features,
        "levels": levels,
        "source_time_precision": dict(
            table.group_by("source")
            .agg(pl.col("time_precision").mode().first())
            .sort("source")
            .iter_rows()
        ),
        "default_source": PREFERRED_SOURCE
        if PREFERRED_SOURCE in levels["source"]
        else table["source"].mode().sort().first(),
        "models": {
            target: {"file": name, "target": target, **specs[target]}
            for target, name in MODEL_FILES.items()
        },
        "region": training_region(table).as_dict(),
        "baseline_speed_mph_by_hour": [round(s, 4) for s in speeds],
        "params": PARAMS,
        "max_boost_round": NUM_ROUNDS,
    }


def _train_target(
    lgb: Any,
    train_rows: pl.DataFrame,
    test_rows: pl.DataFrame,
    target: str,
    inputs: tuple[dict[str, list[str]], list[str]],
    naive: Callable[[pl.DataFrame], np.ndarray],
    log: Callable[[str], None],
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(booster, spec, metrics) of one target: the estimator chosen and calibrated on the
    training period's latest fold, refitted on the whole period, scored on the test split."""
    fit = train_rows.filter(pl.col(target).is_not_null())
    scored = test_rows.filter(pl.col(target).is_not_null())
    if fit.height == 0 or scored.height == 0:
        raise MlModelError(f"no trips with a usable {target} on both sides of the time split")
    early, calibration = time_split(fit)
    log(f"{target}: choosing the estimator on {early.height:,} + {calibration.height:,} trips")
    levels, features = inputs
    candidates = {
        name: estimators.fit(
            lgb, early, target, levels, features, name, PARAMS, NUM_ROUNDS, calibration
        )
        for name in estimators.OBJECTIVES
    }
    spec, choice = estimators.choose(candidates, calibration, target, levels, features)
    # The refit learns from 1 / (1 - TEST_SHARE) times the trips: as many more rounds.
    best = candidates[spec["estimator"]].best_iteration
    spec["rounds"] = max(1, round(best / (1 - TEST_SHARE)))
    log(f"{target}: training {spec['estimator']} on {fit.height:,} trips, {spec['rounds']} rounds")
    booster = estimators.fit(
        lgb, fit, target, levels, features, spec["estimator"], PARAMS, spec["rounds"]
    )
    matrix = feature_matrix(scored, levels, features)
    sources = estimators.Sources(matrix[:, features.index("source")], levels["source"])
    estimate = estimators.predict(booster, spec, matrix, sources)
    metrics = {
        "train_rows": fit.height,
        "estimator": choice,
        **score_test(scored, target, estimate, naive),
    }
    return booster, spec, metrics


def describe(summary: dict[str, Any]) -> str:
    """A few lines for a person: rows, split, model against baseline, files written."""
    split, rows = summary["split"], summary["rows"]
    lines = [
        f"training table: {rows['training_table']:,} trips; train {rows['train']:,} "
        f"(to {split['train']['last_pickup']}), test {rows['test']:,} "
        f"(from {split['test']['first_pickup']})",
    ]
    for target, result in summary["metrics"].items():
        model, naive = result["model"], result["baseline"]
        lines.append(
            f"{target} ({result['estimator']['chosen']}): RMSE {model['rmse']:,.2f} vs baseline "
            f"{naive['rmse']:,.2f}, MAE {model['mae']:,.2f} vs {naive['mae']:,.2f}, mean bias "
            f"{model['bias_pct']:+.1%} vs {naive['bias_pct']:+.1%}, 80% interval covers "
            f"{model['coverage_80']:.1%} ({model['rows']:,} test trips)"
        )
    lines.append(f"wrote {summary['out']}: " + ", ".join(summary["files"]))
    return "\n".join(lines)


def _calendar(train_rows: pl.DataFrame, test_rows: pl.DataFrame) -> dict[str, Any]:
    """What the training period holds of the calendar: holidays, and the months it never saw."""
    local = pl.col("pickup_at").dt.convert_time_zone("America/New_York")
    holidays = train_rows.filter("is_holiday").select(local.dt.date().unique().sort())
    seen = set(train_rows["month"].unique().to_list())
    return {
        "holiday_days_in_train": holidays.height,
        "holiday_dates_in_train": [day.isoformat() for day in holidays.to_series()],
        "months_in_train": sorted(seen),
        "test_months_not_in_train": sorted(set(test_rows["month"].unique().to_list()) - seen),
    }


def _window(frame: pl.DataFrame) -> dict[str, Any]:
    return {
        "rows": frame.height,
        "first_pickup": frame["pickup_at"].min().isoformat(),
        "last_pickup": frame["pickup_at"].max().isoformat(),
    }


def _write(
    out: Path,
    table: pl.DataFrame,
    boosters: dict[str, Any],
    summary: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Write every file into a scratch folder beside `out`, then move them in, model.json last.

    Each file is replaced atomically; model.json and metrics.json carry the sha256 of each model
    file and the version they make up, so a reader that loads while the files are being
    replaced sees a mismatch and waits, never a mix of two trainings
    (:func:`etl.ml.estimate.load_models`). A failure midway leaves the previous models."""
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".train-", dir=out))
    try:
        table.write_parquet(scratch / TABLE_FILE, statistics=True)
        for target, booster in boosters.items():
            booster.save_model(str(scratch / MODEL_FILES[target]))
            digest = hashlib.sha256((scratch / MODEL_FILES[target]).read_bytes()).hexdigest()
            meta["models"][target]["sha256"] = digest
        version = hashlib.sha256(json.dumps(meta["models"], sort_keys=True).encode())
        meta["version"] = summary["version"] = version.hexdigest()[:12]
        (scratch / METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        (scratch / CARD_FILE).write_text(model_card(summary, meta))
        (scratch / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        for name in [*(n for n in summary["files"] if n != META_FILE), META_FILE]:
            (scratch / name).replace(out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
