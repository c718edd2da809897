"""The outputs of a run are what they were before the curated build was made cheaper.

`outputs_fingerprint.json` holds, per output table, the row count and an order-independent
hash of its rows (`outputs_fingerprint.sql`), frozen by running main's code at 0402b27 (before
issue 17 changed how curated.trips is built) on the session's sample (tests/conftest.py: the
sample generator is seeded, and two runs of it gave the same fingerprints). Any change to any
row of quality.quarantine, quality.checks, quality.matches or curated.trips fails here. A change
meant to alter them re-freezes the file with `python tests/test_outputs_identical.py WAREHOUSE`
and says why in its commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import SAMPLE_SCALE, SAMPLE_SEED

HERE = Path(__file__).parent
FROZEN = HERE / "outputs_fingerprint.json"


def fingerprint(warehouse: Path) -> dict[str, dict]:
    """Each output table's row count and content hash."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")  # times as text one way, wherever this runs
        rows = con.execute((HERE / "outputs_fingerprint.sql").read_text()).fetchall()
    return {name: {"rows": count, "hash": digest} for name, count, digest in rows}


def test_the_frozen_fingerprint_is_of_the_sample_the_tests_load():
    assert json.loads(FROZEN.read_text())["sample"] == {"seed": SAMPLE_SEED, "scale": SAMPLE_SCALE}


def test_every_output_table_is_identical_to_before(sample_warehouse):
    frozen = json.loads(FROZEN.read_text())["tables"]
    assert fingerprint(sample_warehouse.wh.path) == frozen


# One row of each table changed, in the subtlest way a bug would: a line off by one, a check's
# outcome, a score in its ninth decimal, a trip's line number. curated.trips is a view: its rows
# are those of a pass-through source's staging table and of the stored model's other sources.
PERTURB = {
    "quarantine": ("quarantine", "UPDATE quality.quarantine SET line = line + 1 "
                   "WHERE rowid = (SELECT min(rowid) FROM quality.quarantine)"),
    "checks": ("checks", "UPDATE quality.checks SET success = NOT success "
               "WHERE rowid = (SELECT min(rowid) FROM quality.checks)"),
    "matches": ("matches", "UPDATE quality.matches SET score = score - 1e-9 "
                "WHERE rowid = (SELECT min(rowid) FROM quality.matches)"),
    "trips, passed through": ("trips", "UPDATE staging.dc_taxi SET _line = _line + 1 "
                              "WHERE rowid = (SELECT min(rowid) FROM staging.dc_taxi)"),
    "trips, stored": ("trips", "UPDATE intermediate.stored_trips SET _line = _line + 1 "
                      "WHERE rowid = (SELECT min(rowid) FROM intermediate.stored_trips)"),
}  # fmt: skip


@pytest.mark.parametrize("perturbed", sorted(PERTURB))
def test_one_changed_row_changes_its_tables_fingerprint_only(sample_warehouse, tmp_path, perturbed):
    table, update = PERTURB[perturbed]
    copy = sample_warehouse.copy(tmp_path)
    before = fingerprint(copy.path)
    with duckdb.connect(str(copy.path)) as con:
        assert con.execute(update).fetchone()[0] == 1
    after = fingerprint(copy.path)
    assert after[table]["rows"] == before[table]["rows"]
    assert after[table]["hash"] != before[table]["hash"]
    assert {k: v for k, v in after.items() if k != table} == {
        k: v for k, v in before.items() if k != table
    }


if __name__ == "__main__":  # re-freeze from a warehouse loaded from the session's sample
    tables = fingerprint(Path(sys.argv[1]))
    sample = {"seed": SAMPLE_SEED, "scale": SAMPLE_SCALE}
    FROZEN.write_text(json.dumps({"sample": sample, "tables": tables}, indent=2) + "\n")
