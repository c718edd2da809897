"""Baseline ETA and fare models: `etl train` and `etl predict`.

The training table is SQL (warehouse/queries/training_table.sql) over the curated warehouse;
:mod:`etl.model.features` runs it, for training and for one request alike. LightGBM (the
`model` extra) is imported only inside :func:`etl.model.train.train` and
:func:`etl.model.predict.predict`, so that the rest of the toolkit runs without it.
"""


class ModelError(Exception):
    """Training or prediction cannot run as asked; one line for the user (exit code 2)."""


INSTALL_HINT = "lightgbm is not installed: pip install -e '.[model]'"
