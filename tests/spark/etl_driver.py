"""`etl` commands run one after another in one process, so that they share its Spark driver
(a JVM and its catalog start once, not once per command).

    python tests/spark/etl_driver.py

Each line read on stdin is a JSON list: the command's arguments and the environment variables
it adds; after each command's own output, a line `etl_driver: exit N` on stdout. A command
that kills the process (`ETL_CRASH_AT`) ends it.
"""

from __future__ import annotations

import json
import os
import sys

from etl.cli.errors import run_guarded
from etl.cli.main import app

DONE = "etl_driver: exit"

if __name__ == "__main__":
    for line in sys.stdin:
        args, env = json.loads(line)
        os.environ.update(env)
        try:
            run_guarded(app, args)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        print(f"{DONE} {code}", flush=True)
