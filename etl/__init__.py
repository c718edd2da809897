"""Trip-data ETL for Washington, DC: sources to a quality-checked DuckDB warehouse."""

import os

# polars allocates through jemalloc, which by default hands freed pages back to the OS at
# once. A load frees and reallocates batch-sized buffers over and over, and faulting those
# pages back in is kernel time (10-12 s of a 5 M-row run's 60 s CPU). Keeping freed pages a
# while trades that for peak memory: 5 s saved half of it but added 0.5 GB at 20 M rows;
# 1 s saves less and keeps the 20 M peak within 1.3x of the 5 M one. Read when polars loads,
# so it is set before anything imports it; a value already in the environment wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:1000")
