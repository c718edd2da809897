"""The Spark engine's catalog (etl.engine.spark.catalog) asks the metastore as little as it can:
each statement costs about a quarter of a second of the driver's CPU, and a run asks hundreds
of questions. It lists a database's tables once, keeps the listing true through its own
statements, and lists again only when told that others changed the catalog."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from etl.engine.spark.build import Tables
from etl.engine.spark.catalog import VERSIONS, WORKING, Catalog

from .conftest import metastore_calls

PROBES = [f"{database}.probe_{k}" for database in WORKING for k in range(5)]


@pytest.fixture
def catalog(spark) -> Iterator[Catalog]:
    """A catalog on the shared session; the probe tables dropped after, whatever happened
    (a later run there would publish them)."""
    yield Catalog(spark)
    for name in (*PROBES, "staging.probe_view"):
        spark.sql(
            f"DROP VIEW IF EXISTS {name}" if "view" in name else f"DROP TABLE IF EXISTS {name}"
        )


def test_a_catalog_lists_each_database_once(spark, catalog: Catalog) -> None:
    calls = metastore_calls(spark)
    assert not any(catalog.exists(name) for name in PROBES)
    listed = metastore_calls(spark) - calls
    # Other names in the same databases: answered by the same listings, where asking the
    # metastore cost 3-4 calls a name.
    assert not any(catalog.exists(name.replace("probe", "other")) for name in PROBES)
    assert metastore_calls(spark) - calls == listed


def test_its_own_statements_keep_the_listing_true(spark, catalog: Catalog) -> None:
    assert not any(catalog.exists(name) for name in PROBES)  # every database listed
    three, two = spark.range(3).toDF("n"), spark.range(2).toDF("n")
    catalog.append("staging.probe_0", three)
    catalog.replace("staging.probe_1", three)
    catalog.append("staging.probe_2", three)
    catalog.drop("staging.probe_2")
    catalog.overwrite("staging.probe_0", two)

    calls = metastore_calls(spark)
    found = [name for name in PROBES if catalog.exists(name)]
    probes = [name for name in catalog.tables() if ".probe_" in name]
    assert metastore_calls(spark) == calls  # answered from the listing
    assert found == probes == ["staging.probe_0", "staging.probe_1"]
    assert spark.table("staging.probe_0").count() == 2
    assert spark.table("staging.probe_1").count() == 3
    fresh = Catalog(spark)  # what the metastore says
    assert [name for name in PROBES if fresh.exists(name)] == found


def test_what_others_created_is_seen_after_forget(spark, catalog: Catalog) -> None:
    assert not catalog.exists("staging.probe_view")
    spark.sql("CREATE VIEW staging.probe_view AS SELECT 1 AS n")
    spark.range(1).write.saveAsTable("staging.probe_3")
    catalog.forget()
    assert catalog.exists("staging.probe_view") and catalog.exists("staging.probe_3")
    # A view is not a working table: the build makes it again, nothing publishes it.
    tables = catalog.tables()
    assert "staging.probe_3" in tables and "staging.probe_view" not in tables


@pytest.fixture
def views_database(spark) -> Iterator[str]:
    spark.sql("CREATE DATABASE IF NOT EXISTS probe_views")
    yield "probe_views"
    spark.sql("DROP DATABASE probe_views CASCADE")


def test_a_build_makes_a_view_again_only_when_its_sql_changed(spark, views_database) -> None:
    """Each run builds every model; a view made of the same SQL by an earlier build is left
    as it is (making it costs 21-24 metastore calls), and one whose SQL changed is made again."""
    v, w = f"{views_database}.v", f"{views_database}.w"
    first = Tables(spark, {})
    first.view(v, "SELECT 1 AS n")
    first.view(w, "SELECT 2 AS n")

    later = Tables(spark, {})  # the next run's build: it lists, and reads the views' SQL once
    later.view(v, "SELECT 1 AS n")
    calls = metastore_calls(spark)
    later.view(w, "SELECT 2 AS n")
    assert metastore_calls(spark) == calls
    later.view(w, "SELECT 3 AS n")
    assert metastore_calls(spark) > calls
    for build in (later, Tables(spark, {})):  # as the next run finds it, too
        build.view(w, "SELECT 3 AS n")
        assert spark.table(w).collect()[0].n == 3
    # A view the build did not make (no checksum of its SQL) is made by it.
    spark.sql(f"CREATE OR REPLACE VIEW {v} AS SELECT 4 AS n")
    Tables(spark, {}).view(v, "SELECT 1 AS n")
    assert spark.table(v).collect()[0].n == 1


def test_a_snapshot_links_the_tables_files_and_keeps_them_as_they_were(
    spark, catalog: Catalog
) -> None:
    """A commit publishes a snapshot of each changed table: on a local disk its files are the
    working table's (hard links: no rows copied), and what the working table does next (its
    files overwritten, rows appended) leaves the snapshot's rows as they were."""
    working, version = "staging.probe_0", f"{VERSIONS}.probe_snapshot"
    catalog.append(working, spark.range(3).toDF("n"))
    try:
        catalog.snapshot(working, version)
        files = {p.name: p.stat().st_ino for p in catalog.location(working).glob("*.parquet")}
        linked = {p.name: p.stat().st_ino for p in catalog.location(version).glob("*.parquet")}
        assert files and linked == files

        catalog.overwrite(working, spark.range(2).toDF("n"))
        catalog.append(working, spark.range(5).toDF("n"))
        assert spark.table(working).count() == 7
        assert sorted(r.n for r in spark.table(version).collect()) == [0, 1, 2]
        parquet = str(catalog.location(version) / "*.parquet")  # as the readers' file reads it
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchall() == [(3,)]
    finally:
        catalog.drop(version)
    assert not catalog.location(version).exists()  # an external table's files go with it
