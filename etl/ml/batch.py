"""`etl predict --in FILE --out FILE`: estimates for a file of trips, CSV or Parquet.

The format follows each file's extension. A CSV is read as text, so an id such as `007` comes
out as it went in; every input column is carried through unchanged and the estimates, their
80% intervals, `warning` and `error` are added (:func:`etl.ml.estimate.estimate`). A row that
cannot be read gets an error in that row, not a failed file. Whole columns throughout: a
million trips take seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from etl.errors import MlModelError
from etl.ml.estimate import estimate, load_models

FORMATS = (".csv", ".parquet")


def predict_file(models: Path, source: Path, target: Path) -> dict[str, Any]:
    """Estimate every trip in `source` and write them to `target`; returns the counts."""
    for path, option in ((source, "--in"), (target, "--out")):
        if path.suffix.lower() not in FORMATS:
            raise MlModelError(f"{option} {path}: expected a .csv or .parquet file")
    loaded = load_models(models)
    answers = estimate(loaded, _read(source))
    _write(answers, target)
    return {
        "in": str(source),
        "out": str(target),
        "models_version": loaded.version,
        "rows": answers.height,
        "estimated": answers.height - _count(answers, "error"),
        "errors": _count(answers, "error"),
        "warnings": _count(answers, "warning"),
    }


def _count(frame: pl.DataFrame, column: str) -> int:
    return frame.height - frame[column].null_count()


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except FileNotFoundError:
        raise MlModelError(f"--in {path}: no such file") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MlModelError(f"--in {path}: cannot read it: {reason}") from None


def _write(frame: pl.DataFrame, path: Path) -> None:
    """Write beside `path`, then rename: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".csv":
            frame.write_csv(partial)
        else:
            frame.write_parquet(partial)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise MlModelError(f"--out {path}: cannot write it: {exc.strerror or exc}") from None
