"""`etl run` killed with SIGKILL at every named step (etl/crashpoints.py), in a real child process:
the published tables are then exactly the old or the new state, and the next run converges to the
same tables as a run that was never interrupted. Nothing read is lost: every current file's rows
read are its rows staged plus its rows in quality.quarantine.

The default run kills every step once: on an incremental run (new, changed and re-sent files and
a new DC boundary), the steps that retire rows or touch the boundary on `--full-refresh`, the
instant after the commit on both, and the withdrawal of a run that fails its audit.
`ETL_CRASH_ALL=1` kills every step on both kinds of run (twice as long).

Batch suites cost a Great Expectations import (5-7 s of CPU) per process, and they write nothing
a reader sees but `quality.checks`: the publishing nights run without them (the project's
sources.yaml less its `suite:` keys); the night that fails its audit runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import duckdb
import etl_forks
import pytest
import yaml
from dfhv import member_text, trip, write_zip

from etl.paths import PROJECT_ROOT
from etl.run.crashpoints import STEPS
from etl.sample import write_sample

CONFIG = PROJECT_ROOT / "sources.yaml"
FULL_REFRESH_STEPS = ("boundary_read", "retired", "boundary_stored", "published")
PUBLISHING = [s for s in STEPS if s != "withdrawn"]  # a publishing run never withdraws

# What a reader relies on, without what differs from run to run (run ids, times). Staging and
# the quarantine are written while a run loads, before it publishes: their rows count once their
# run finished (published, or failed its audit: its quarantine stays for the analyst). The rows
# of a killed run are there until the next run removes them.
FINISHED = "(SELECT run_id FROM quality.runs WHERE published OR status = 'audit_failed')"
PUBLISHED = {
    "staging.dc_taxi": ("_run_id", f"_run_id IN {FINISHED}"),
    "staging.dispatch": ("_run_id", f"_run_id IN {FINISHED}"),
    "staging.courier": ("_run_id", f"_run_id IN {FINISHED}"),
    "staging.dc_boundary": ("_run_id", f"_run_id IN {FINISHED}"),
    "quality.quarantine": ("run_id", f"run_id IN {FINISHED}"),
    "quality.manifest": ("run_id, recorded_at, mtime_ns", "true"),
}


def etl_run(
    config: Path, data: Path, warehouse: Path, *args: str, crash_at: str | None = None
) -> int:
    env = {k: v for k, v in os.environ.items() if k != "ETL_CRASH_AT"}
    if crash_at:
        env["ETL_CRASH_AT"] = crash_at
    command = ["run", "--config", str(config), "--json"]
    command += ["--data-root", str(data), "--warehouse", str(warehouse), *args]
    done = etl_forks.run(command, env, timeout=600)  # `python -m etl`, less its imports
    assert done.returncode in (-signal.SIGKILL, 0, 1, 2), done.stderr[-2000:]
    return done.returncode


def checksums(warehouse: Path) -> dict[str, tuple]:
    """Rows and a digest of every published table (all of curated, staging, the quarantine and
    the manifest), order-independent."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        curated = con.execute(
            "SELECT 'curated.' || table_name FROM information_schema.tables "
            "WHERE table_schema = 'curated'"
        ).fetchall()
        tables = {name: (None, "true") for (name,) in curated} | PUBLISHED
        digests = {}
        for table, (varying, where) in sorted(tables.items()):
            exclude = f"EXCLUDE ({varying})" if varying else ""
            rows = f"SELECT * {exclude} FROM {table} WHERE {where}"
            digests[table] = con.execute(
                f"SELECT count(*), md5(coalesce(string_agg(r, '|' ORDER BY r), '')) "
                f"FROM (SELECT CAST(t AS VARCHAR) AS r FROM ({rows}) t)"
            ).fetchall()[0]
        return digests


def ledger(warehouse: Path) -> list[tuple[str, bool]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "SELECT status, published FROM quality.runs ORDER BY started_at"
        ).fetchall()


def rows_lost(warehouse: Path) -> int:
    """Rows read by a current file that are neither staged nor in quality.quarantine."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            """
            SELECT coalesce(sum(abs(m.rows_read - m.rows_staged - q.n)), 0) FROM quality.manifest m
            JOIN (SELECT m2.path, count(q2.file) AS n FROM quality.manifest m2
                  LEFT JOIN quality.quarantine q2 ON q2.file = m2.path AND q2.run_id = m2.run_id
                  GROUP BY m2.path) q USING (path)
            WHERE m.source <> 'dc_boundary'
            """
        ).fetchall()[0][0]


def without_suites(folder: Path) -> Path:
    """The project's sources.yaml less its batch suites, beside a link to its schemas."""
    config = yaml.safe_load(CONFIG.read_text())
    for source in config["sources"].values():
        source.pop("suite", None)
    folder.mkdir()
    (folder / "schemas").symlink_to(CONFIG.parent / "schemas")
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def shift_boundary(path: Path) -> None:
    doc = json.loads(path.read_text())
    text = json.dumps(doc).replace("-77.0", "-77.00001", 1)  # one vertex moved: a new file
    path.write_text(text)


class Scenario:
    """A warehouse before (`old`), the data of the next night, and what an uninterrupted run
    of that night publishes (`new`)."""

    def __init__(
        self, config: Path, before: Path, data: Path, args: tuple[str, ...], tmp: Path
    ) -> None:
        self.config, self.before, self.data, self.args = config, before, data, args
        tmp.mkdir()
        after = tmp / "uninterrupted.duckdb"
        shutil.copy(before, after)
        self.exit_code = etl_run(config, data, after, *args)
        self.old, self.new = checksums(before), checksums(after)

    def run(self, warehouse: Path, crash_at: str | None = None) -> int:
        return etl_run(self.config, self.data, warehouse, *self.args, crash_at=crash_at)


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> dict[str, Scenario]:
    root = tmp_path_factory.mktemp("crash")
    quick = without_suites(root / "config")
    first = root / "first"
    write_sample(first, seed=3, scale=0.02)
    dispatch = first / "company" / "dispatch"
    for path in dispatch.glob("dispatch_*"):
        if not path.name.startswith("dispatch_2023-01-0"):  # nine days are enough
            path.unlink()
    held = [first / "dc_taxi" / "taxi_2023.zip", *sorted(dispatch.glob("dispatch_2023-01-0[89]*"))]
    second = root / "second"
    shutil.copytree(first, second)
    for path in held:
        path.unlink()
    loaded = root / "first.duckdb"
    assert etl_run(quick, first, loaded) == 0  # the night before: all but the held files

    # The next night: the held files arrive, a courier month is re-sent under a second name
    # and another changes, and the DC boundary changes.
    courier = sorted((second / "company" / "courier").glob("*.csv"))
    shutil.copy(courier[1], courier[1].with_name("courier_trips_resent.csv"))
    courier[2].write_bytes(courier[2].read_bytes().replace(b"\r\nTOTAL", b"\r\n\r\nTOTAL"))
    shift_boundary(second / "dc_reference" / "dc_boundary.geojson")
    refreshed = root / "refreshed.duckdb"
    shutil.copy(loaded, refreshed)
    assert etl_run(quick, second, refreshed) == 0

    failing = root / "failing"
    shutil.copytree(second, failing)
    bad = [trip(k, DURATION="13") for k in range(50)]  # minutes as seconds: fails the audit
    write_zip(failing / "dc_taxi" / "taxi_2019.zip", {"taxi_2019_01.txt": member_text(bad)})
    return {
        "incremental": Scenario(quick, loaded, second, (), root / "a"),
        "full_refresh": Scenario(quick, refreshed, second, ("--full-refresh",), root / "b"),
        "audit_fails": Scenario(CONFIG, refreshed, failing, (), root / "c"),
    }


def cases() -> list[tuple[str, str]]:
    every = os.environ.get("ETL_CRASH_ALL") == "1"
    full = PUBLISHING if every else FULL_REFRESH_STEPS
    incremental = [s for s in PUBLISHING if every or s not in full or s == "published"]
    return (
        [("incremental", step) for step in incremental]
        + [("full_refresh", step) for step in full]
        + [("audit_fails", "withdrawn")]
    )


@pytest.mark.parametrize(("night", "step"), cases())
def test_a_run_killed_at_a_step_leaves_old_or_new_and_the_next_run_converges(
    nights, night, step, tmp_path
):
    scenario = nights[night]
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(scenario.before, warehouse)
    runs_before = len(ledger(warehouse))

    assert scenario.run(warehouse, crash_at=step) == -signal.SIGKILL
    after_kill = checksums(warehouse)
    committed = step == "published"
    assert after_kill == (scenario.new if committed else scenario.old)

    assert scenario.run(warehouse) == (0 if committed else scenario.exit_code)
    assert checksums(warehouse) == scenario.new
    assert rows_lost(warehouse) == 0
    # The killed run (if it got as far as the ledger) says what became of it, then the rerun.
    killed = [("published", True)] if committed else [("crashed", False)]
    rerun = ("audit_failed", False) if scenario.exit_code == 1 else ("published", True)
    if step == "recovered":
        killed = []
    assert ledger(warehouse)[runs_before:] == [*killed, rerun]


def test_the_scenarios_change_what_is_published(nights):
    """The kills above would prove nothing if the next night published what the last did."""
    incremental = nights["incremental"]
    assert incremental.exit_code == 0
    assert incremental.old["staging.dc_boundary"] != incremental.new["staging.dc_boundary"]
    assert incremental.old["curated.trips"] != incremental.new["curated.trips"]
    assert nights["audit_fails"].exit_code == 1
    assert nights["audit_fails"].new == nights["audit_fails"].old
    # The same night twice publishes the same tables. A full refresh differs: it tests every
    # trip against the new boundary, an incremental run only the trips it loads.
    assert nights["full_refresh"].old == incremental.new
    assert nights["full_refresh"].new != incremental.new


def test_the_default_run_kills_every_named_step():
    assert {step for _, step in cases()} == set(STEPS)
