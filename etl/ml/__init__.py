"""ETA and fare models: `etl train`, `etl predict` (one trip or a file) and `etl serve`.

The training table is SQL (warehouse/queries/training_table.sql) over the curated warehouse;
:mod:`etl.ml.features` derives the features from it, for training and for requests alike.
:mod:`etl.ml.estimators` makes the estimates conditional means with calibrated 80%
intervals, :mod:`etl.ml.metrics` scores them, :mod:`etl.ml.estimate` is the one
prediction path of batch files (:mod:`etl.ml.batch`) and the HTTP service
(:mod:`etl.ml.serve`), :mod:`etl.reference.region` says where a point is outside what the
models know. LightGBM (the `model` extra) is imported only when models are trained or loaded,
FastAPI and uvicorn (the `serve` extra) only by `etl serve`, so that the rest of the toolkit
runs without them.
"""

INSTALL_HINT = "lightgbm is not installed: pip install -e '.[model]'"
