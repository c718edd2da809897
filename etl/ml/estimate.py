"""Estimates for many trips at once: the one path of batch prediction and `etl serve`.

:func:`load_models` reads what `etl train` wrote and checks it is one training's set;
:func:`estimate` turns a frame of requests into the same frame with the estimates, their 80%
intervals, a `warning` (a point outside the region the models know) and an `error` (a row that
cannot be estimated) added, on whole columns.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from etl.errors import MlModelError
from etl.ml import estimators
from etl.ml.features import add_features, feature_matrix
from etl.ml.requests import OUTPUTS, parse_requests
from etl.ml.train import META_FILE, METRICS_FILE, import_lightgbm
from etl.reference.region import models_region, warnings_expr

# Decimals kept: a tenth of a second, a cent.
ROUNDING = {"duration_s": 1, "fare_usd": 2}
LOAD_ATTEMPTS, LOAD_PAUSE_S = 20, 0.25


@dataclass(frozen=True)
class Models:
    """One training's models, as `etl train` wrote them to `path`."""

    path: Path
    version: str
    meta: dict[str, Any]
    metrics: dict[str, Any]
    boosters: dict[str, Any]


def load_models(path: Path) -> Models:
    """The models in `path`. A set being replaced by `etl train` right now (a model file that
    does not match model.json) is read again until it is whole."""
    for _ in range(LOAD_ATTEMPTS):
        models = _read(path)
        if models is not None:
            return models
        time.sleep(LOAD_PAUSE_S)
    raise MlModelError(f"{path}: the model files do not match {META_FILE} (run `etl train` again)")


def _read(path: Path) -> Models | None:
    meta = _json(path / META_FILE, f"{path}: no models yet (run `etl train` first)")
    if any("estimator" not in spec for spec in meta["models"].values()):
        raise MlModelError(f"{path}: models of an older `etl train` (run `etl train` again)")
    lgb = import_lightgbm()
    boosters = {}
    for target, spec in meta["models"].items():
        file = path / spec["file"]
        try:
            text = file.read_bytes()
        except OSError:
            raise MlModelError(f"{file}: missing (run `etl train` again)") from None
        if "sha256" in spec and hashlib.sha256(text).hexdigest() != spec["sha256"]:
            return None
        try:
            boosters[target] = lgb.Booster(model_str=text.decode())
        except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
            raise MlModelError(f"{file}: cannot load the model: {exc}") from None
    metrics = _json(path / METRICS_FILE, f"{path}: no {METRICS_FILE} (run `etl train` again)")
    version = meta.get("version", "unversioned")
    if metrics.get("version", "unversioned") != version:
        return None
    return Models(path, version, meta, metrics, boosters)


def _json(file: Path, missing: str) -> dict[str, Any]:
    if not file.is_file():
        raise MlModelError(missing)
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise MlModelError(f"{file}: unreadable: {exc}") from None


def estimate(models: Models, requests: pl.DataFrame) -> pl.DataFrame:
    """`requests` with the OUTPUTS columns added, row for row, every input column unchanged."""
    parsed = parse_requests(requests, models.meta)
    errors = parsed["error"]
    valid = add_features(
        parsed if errors.null_count() == parsed.height else parsed.filter(errors.is_null())
    )
    answers = valid.select(
        "row",
        warnings_expr(models_region(models.meta)).alias("warning"),
        **estimate_features(models, valid),
    )
    if valid.height < parsed.height:  # rows with an error get no estimate
        answers = parsed.select("row").join(answers, on="row", how="left", maintain_order="left")
    return pl.concat([requests, answers.with_columns(errors).select(OUTPUTS)], how="horizontal")


def estimate_features(models: Models, features: pl.DataFrame) -> dict[str, pl.Series]:
    """Each target's mean estimate and 80% interval (`duration_s`, `duration_s_p10`, ...),
    rounded, for rows of features (:func:`etl.ml.features.add_features`)."""
    if features.height == 0:
        return {
            f"{target}{suffix}": pl.Series([], dtype=pl.Float64)
            for target in models.meta["models"]
            for suffix in ("", "_p10", "_p90")
        }
    meta = models.meta
    matrix = feature_matrix(features, meta["levels"], meta["features"])
    sources = estimators.Sources(
        matrix[:, meta["features"].index("source")], meta["levels"]["source"]
    )
    columns = {}
    for target, spec in models.meta["models"].items():
        answer = estimators.predict(models.boosters[target], spec, matrix, sources)
        decimals = ROUNDING.get(target, 3)
        for suffix, key in (("", "point"), ("_p10", "p10"), ("_p90", "p90")):
            columns[f"{target}{suffix}"] = pl.Series(np.round(answer[key], decimals))
    return columns
