"""The checks' libraries, imported in a background thread while the first files load.

pandera (the row checks) costs 2-4 s of one core to import and Great Expectations (the suites)
3-7 s. Imported where first used, pandera stopped the staging thread at the first batch's row
checks, with the other core idle: on the run's critical path. Loading is mostly polars and
DuckDB work that releases the GIL, so importing both beside it, pandera first (it is needed
first), takes them off that path; the staging thread waits at the first row check only for
what is left of pandera's import.

Their objects (~280,000) live as long as the process. Python's cyclic collector walked them
again at every full collection: 0.38 of the imports' 2.0 CPU s, and about 0.9 CPU s over a
5 M-row run. So the imports run with the collector paused, and then what they left is collected
once and frozen (`gc.freeze`): later collections skip it.
"""

from __future__ import annotations

import gc
import importlib
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress

from etl.config.spec import Config
from etl.quality.gx_import import import_great_expectations

IMPORT_SWITCH_INTERVAL_S = 0.0005  # see import_in_background
ROW_CHECKS_MODULE = "etl.quality.rows"  # imports pandera


def preload_checks(config: Config, rows_here: bool = True) -> threading.Thread | None:
    """Start importing what the config's row checks and suites need; the thread, or None when
    they need nothing. `rows_here`: the rows are checked in this process (an engine whose
    tasks stage the files checks them in its workers)."""
    sources = config.sources.values()
    imports: list[Callable[[], object]] = []
    if rows_here and any(source.row_checks for source in sources):
        imports.append(lambda: importlib.import_module(ROW_CHECKS_MODULE))
    if any(source.suite for source in sources):
        imports.append(import_great_expectations)
    if not imports:
        return None
    thread = threading.Thread(target=import_in_background, args=(imports,), daemon=True)
    thread.start()
    return thread


def import_in_background(imports: Sequence[Callable[[], object]]) -> None:
    """Run the imports in order, with the switch interval lowered and the cyclic collector
    paused meanwhile; what they left is collected once and frozen (see the module docstring).

    An import is Python code that holds the GIL. The loading threads need it only briefly,
    between native calls, but each time they wait up to a whole switch interval (5 ms) for the
    importer to let go: asking for it every 0.5 ms while the import runs took 1.3-2 s off a
    5 M-row run with checks.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, IMPORT_SWITCH_INTERVAL_S))
    collecting = gc.isenabled()
    gc.disable()
    try:
        for run_import in imports:
            # On failure, imported again where it is used, which reports what fails.
            with suppress(Exception):
                run_import()
    finally:
        sys.setswitchinterval(previous)
        if collecting:
            gc.enable()
        gc.collect()  # the imports' own garbage, not frozen with the rest
        gc.freeze()
