"""The SQL models under warehouse/models: discovery, build order and materialization."""

from __future__ import annotations

import duckdb
import pytest

from etl.publish import models


@pytest.mark.parametrize("first, then", [("view", "table"), ("table", "view")])
def test_a_model_whose_materialization_changed_is_rebuilt_as_the_new_kind(tmp_path, first, then):
    """Editing a model's `-- materialized:` line must not fail the next run on the old object."""
    folder = tmp_path / "models" / "curated"
    folder.mkdir(parents=True)
    model = folder / "numbers.sql"
    con = duckdb.connect()
    for kind in (first, then):
        model.write_text(f"-- materialized: {kind}\nSELECT range AS n FROM range(3)\n")
        models.build(con, models.discover(tmp_path / "models"))
        table_type = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = 'numbers'"
        ).fetchall()
        assert table_type == [("VIEW" if kind == "view" else "BASE TABLE",)]
        assert con.execute("SELECT sum(n) FROM curated.numbers").fetchone() == (3,)
