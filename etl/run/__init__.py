"""The nightly run, `etl run`: plan, load, audit, publish, and the run ledger."""
