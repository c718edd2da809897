"""The named steps of `etl run` where a test may kill it, listed in one place.

With `ETL_CRASH_AT=<step>` in its environment, the run kills itself with SIGKILL at that step,
as a power cut or the OOM killer would: no `finally`, no rollback, no atexit. The crash-point
test (tests/test_crash_points.py) kills a real `etl run` at every step and checks that the
published tables are exactly the old or the new state, and that the next run converges.
"""

from __future__ import annotations

import os
import signal

STEPS = (
    "recovered",  # what an earlier run left behind is undone
    "started",  # this run is in quality.runs as running
    "planned",  # the files to load are known
    "boundary_read",  # a new boundary is read (not yet stored: that is the publish's)
    "staged",  # a batch of rows is handed to the writer
    "loaded",  # every file is read and its rows written to staging
    "audited",  # the batch suites ran and their results are recorded
    "publish_begun",  # the publish transaction is open
    "retired",  # replaced rows are deleted, in the transaction
    "boundary_stored",  # the new boundary replaced the old, in the transaction
    "built",  # manifest, matches and curated models are written, in the transaction
    "recorded",  # the run's status and files are written, the transaction not yet committed
    "published",  # the instant after the publish transaction committed
    "withdrawn",  # a failed audit's rows left staging, its record not yet committed
)


def crash_point(step: str) -> None:
    """Kill this process with SIGKILL if `ETL_CRASH_AT` names `step`."""
    if step not in STEPS:
        raise ValueError(f"unknown crash point {step!r}")
    if os.environ.get("ETL_CRASH_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
