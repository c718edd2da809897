"""Trip-data ETL for Washington, DC: sources to a quality-checked DuckDB warehouse."""
