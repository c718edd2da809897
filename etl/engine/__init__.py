"""The warehouse seam: what every stage asks of a warehouse (docs/architecture.md).

:mod:`etl.engine.duckdb` is the embedded implementation, the default.
"""
