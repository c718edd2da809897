"""Trip-data ETL for Washington, DC: sources to a quality-checked DuckDB warehouse."""

import os

# polars allocates through jemalloc, which by default hands freed pages back to the OS at
# once. A load frees and reallocates batch-sized buffers over and over, and faulting those
# pages back in cost a sixth of a 5 M-row run in kernel time (10 s of 60 s CPU). Keeping freed
# pages for 5 s halves that for ~250 MB more peak memory. Read when polars loads, so it is set
# before anything imports it; a value already in the environment wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:5000,muzzy_decay_ms:5000")
