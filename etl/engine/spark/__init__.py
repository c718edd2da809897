"""The Spark engine (`pip install '.[spark]'`): the same sources, checks and models on Apache
Spark, for data that outgrows one machine (docs/architecture.md, "Engines").

Nothing outside this package imports pyspark at module level: the tool starts, and the DuckDB
engine runs, without it installed.
"""
