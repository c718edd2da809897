"""`etl train`: the clean training table and two baseline LightGBM regressors (ETA and fare).

The table comes from the curated warehouse (read-only) by `training_table.sql`. It is split by
time: the models learn from the earliest 80% of pickups and are scored on the latest 20%, so
nothing from the test period leaks into training. Each model is compared with the naive
baseline of :mod:`etl.model.baseline` on the same test rows. Training is deterministic: fixed
seeds, LightGBM's `deterministic` mode and a fixed thread count; the same warehouse gives the
same files, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from etl.model import INSTALL_HINT, ModelError, baseline
from etl.model.card import model_card
from etl.model.features import CATEGORICAL, FEATURES, feature_matrix, training_table

TEST_SHARE = 0.2
MIN_ROWS = 200  # below this a time split leaves too little to learn from or to score
SEED = 20240601
PARAMS: dict[str, Any] = {
    "objective": "regression",  # on log(target): errors relative to the trip's size
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "seed": SEED,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
NUM_ROUNDS = 300

TABLE_FILE = "training_table.parquet"
METRICS_FILE = "metrics.json"
META_FILE = "model.json"
CARD_FILE = "model_card.md"
MODEL_FILES = {"duration_s": "duration_model.txt", "fare_usd": "fare_model.txt"}
# Predictions are asked as the company's own silo when the models know it.
PREFERRED_SOURCE = "dispatch"


def import_lightgbm():
    """LightGBM, or a ModelError that says how to install it.

    OpenMP threads that spin while they wait for work make LightGBM several times slower on a
    machine busy with other work (measured: 4x on 2 cores under load); passive waiting costs
    little when it is idle. The policy is read when the OpenMP runtime loads, so set it first.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import lightgbm
    except ImportError:
        raise ModelError(INSTALL_HINT) from None
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
        raise ModelError("all trips share one pickup time: no time split is possible")
    return train, test


def scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE (in the target's unit) and MAPE (a fraction: 0.15 is 15%)."""
    error = np.abs(actual - predicted)
    return {
        "mae": round(float(error.mean()), 4),
        "mape": round(float((error / actual).mean()), 4),
        "rows": len(actual),
    }


def train(
    warehouse: Path, out: Path, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Build the training table, train and score both models, write them to `out`.

    Returns the metrics (what metrics.json holds). Raises ModelError (exit 2) when LightGBM is
    missing, the warehouse cannot be read or holds too few trips to split.
    """
    lgb = import_lightgbm()
    table = training_table(warehouse)
    log(f"training table: {table.height:,} trips from {warehouse}")
    if table.height < MIN_ROWS:
        raise ModelError(
            f"{warehouse}: {table.height} trips fit for training, at least {MIN_ROWS} needed"
        )
    train_rows, test_rows = time_split(table)
    levels = {name: sorted(table[name].unique().to_list()) for name in CATEGORICAL}
    speeds = baseline.speed_by_hour(train_rows)
    baselines = {
        "duration_s": lambda frame: baseline.duration_s(frame, speeds),
        "fare_usd": baseline.fare_usd,
    }

    boosters, metrics = {}, {}
    for target, file_name in MODEL_FILES.items():
        fit = train_rows.filter(pl.col(target).is_not_null())
        scored = test_rows.filter(pl.col(target).is_not_null())
        if fit.height == 0 or scored.height == 0:
            raise ModelError(f"no trips with a usable {target} on both sides of the time split")
        log(f"training {file_name} on {fit.height:,} trips")
        boosters[target] = _fit(lgb, fit, target, levels)
        predicted = np.exp(boosters[target].predict(feature_matrix(scored, levels)))
        metrics[target] = {
            "train_rows": fit.height,
            **_score(scored, target, predicted, baselines[target]),
        }

    summary = {
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
        "metrics": metrics,
    }
    meta = {
        "features": list(FEATURES),
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
            target: {"file": name, "target": f"log({target})"}
            for target, name in MODEL_FILES.items()
        },
        "baseline_speed_mph_by_hour": [round(s, 4) for s in speeds],
        "params": PARAMS,
        "num_boost_round": NUM_ROUNDS,
    }
    _write(out, table, boosters, summary, meta)
    log(f"wrote {out}")
    return summary


def _fit(lgb: Any, rows: pl.DataFrame, target: str, levels: dict[str, list[str]]) -> Any:
    """A LightGBM regressor of log(target): errors relative to the trip's size."""
    dataset = lgb.Dataset(
        feature_matrix(rows, levels),
        np.log(rows[target].to_numpy()),
        feature_name=list(FEATURES),
        categorical_feature=[FEATURES.index(name) for name in CATEGORICAL],
        free_raw_data=True,
    )
    return lgb.train(PARAMS, dataset, num_boost_round=NUM_ROUNDS)


def _score(
    scored: pl.DataFrame,
    target: str,
    predicted: np.ndarray,
    naive: Callable[[pl.DataFrame], np.ndarray],
) -> dict[str, Any]:
    """Model and baseline scores on the test rows, overall and per source."""
    frame = scored.with_columns(pl.Series("_predicted", predicted))
    result: dict[str, Any] = {"test_rows": frame.height}
    for source in [None, *sorted(frame["source"].unique().to_list())]:
        part = frame if source is None else frame.filter(pl.col("source") == source)
        actual = part[target].to_numpy()
        pair = {
            "model": scores(actual, part["_predicted"].to_numpy()),
            "baseline": scores(actual, naive(part)),
        }
        if source is None:
            result |= pair
        else:
            result.setdefault("by_source", {})[source] = pair
    return result


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
            f"{target}: MAE {model['mae']:,.2f} vs baseline {naive['mae']:,.2f}, "
            f"MAPE {model['mape']:.1%} vs {naive['mape']:.1%} ({model['rows']:,} test trips)"
        )
    lines.append(f"wrote {summary['out']}: " + ", ".join(summary["files"]))
    return "\n".join(lines)


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
    """Write every file into a scratch folder beside `out`, then move them in: a failure
    midway leaves the previous models as they were. model.json goes last: predict reads it."""
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".train-", dir=out))
    try:
        table.write_parquet(scratch / TABLE_FILE, statistics=True)
        for target, booster in boosters.items():
            booster.save_model(str(scratch / MODEL_FILES[target]))
        (scratch / METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        (scratch / CARD_FILE).write_text(model_card(summary, meta))
        (scratch / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        for name in summary["files"]:
            (scratch / name).replace(out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
