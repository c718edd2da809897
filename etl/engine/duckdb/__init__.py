"""The DuckDB engine: the warehouse file, its SQL models, matching and control totals."""
