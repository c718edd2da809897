"""The session the Spark engine starts: its catalog, time zone and Python."""

from __future__ import annotations

import sys

import pytest

from etl.engine.spark.session import JAVA_OPTIONS, session_settings, spark_session
from etl.errors import ConfigError


def test_session_keeps_tables_as_parquet_in_the_warehouse_folder(spark, tmp_path) -> None:
    spark.sql("CREATE DATABASE IF NOT EXISTS probe")
    spark.range(3).write.mode("overwrite").saveAsTable("probe.numbers")
    table = spark.sql("DESCRIBE TABLE EXTENDED probe.numbers").collect()
    details = {row["col_name"]: row["data_type"] for row in table}
    assert details["Provider"] == "parquet"
    warehouse = spark.conf.get("spark.sql.warehouse.dir")
    assert details["Location"].removeprefix("file:").startswith(warehouse.removeprefix("file:"))
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.pyspark.python") == sys.executable
    # local[2]: the driver listens on loopback only, not on the host name's address.
    assert spark.sparkContext.getConf().get("spark.driver.host") == "127.0.0.1"
    spark.sql("DROP DATABASE probe CASCADE")


def test_a_setting_the_engine_relies_on_cannot_be_overridden(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"spark\.sql\.session\.timeZone"):
        spark_session(tmp_path, conf={"spark.sql.session.timeZone": "America/New_York"})


def test_the_users_jvm_options_come_after_the_catalogs_own(tmp_path) -> None:
    asked = {JAVA_OPTIONS: "-XX:TieredStopAtLevel=1"}
    options = session_settings(tmp_path, asked)[JAVA_OPTIONS].split()
    # Without the catalog's, Derby would write its log wherever the run was started.
    assert options == [f"-Dderby.system.home={tmp_path.resolve()}", "-XX:TieredStopAtLevel=1"]


def test_only_a_local_driver_is_bound_to_loopback(tmp_path) -> None:
    local = session_settings(tmp_path, {}, "local[2]")
    assert local["spark.driver.bindAddress"] == local["spark.driver.host"] == "127.0.0.1"
    # A cluster's workers must reach the driver: its address is Spark's or the user's.
    cluster = session_settings(tmp_path, {}, "spark://10.0.0.5:7077")
    assert "spark.driver.host" not in cluster and "spark.driver.bindAddress" not in cluster
    asked = session_settings(tmp_path, {"spark.driver.host": "10.0.0.9"}, "local[2]")
    assert asked["spark.driver.host"] == "10.0.0.9"
