"""One SparkSession per warehouse: where its catalog and tables live, and the settings the
engine relies on.

A Spark warehouse is a folder: ``tables/`` holds the tables as Parquet
(``spark.sql.warehouse.dir``; any Hadoop-compatible path on a cluster), ``metastore_db/`` is the
catalog (Spark's embedded Hive metastore on Derby, in local mode; a cluster's own metastore
replaces it through ``--spark-conf``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from etl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"

# Settings the engine's results depend on; `--spark-conf` may add to them, not change them.
FIXED_CONF = {
    # Timestamps are UTC end to end, as in DuckDB (TIMESTAMPTZ shown in UTC).
    "spark.sql.session.timeZone": "UTC",
    # Staged batches cross from the Python tasks to the JVM as Arrow.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

JAVA_OPTIONS = "spark.driver.extraJavaOptions"

# Defaults for one machine; a cluster's `--spark-conf` overrides them.
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
}

# In local mode the driver and its executors are one machine: the driver listens on loopback,
# not on the address the host name resolves to (Spark's default), which a firewall or an
# offline machine may not allow. A cluster's driver must be reachable by its workers: its
# address stays Spark's choice, or the user's `--spark-conf`.
LOCAL_DRIVER_CONF = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}


def spark_session(
    warehouse_dir: Path, master: str | None = None, conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The SparkSession of the warehouse in `warehouse_dir`, started as `master` asks.

    The executors run the project's own Python (`sys.executable`): staging runs the toolkit's
    readers and row checks inside them, so they need its packages.
    """
    builder = _builder()
    master = master or DEFAULT_MASTER
    settings = session_settings(warehouse_dir, conf or {}, master)
    os.environ.setdefault("PYSPARK_PYTHON", settings["spark.pyspark.python"])
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = builder.master(master).appName("etl")
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.enableHiveSupport().getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def session_settings(
    warehouse_dir: Path, asked: Mapping[str, str], master: str = DEFAULT_MASTER
) -> dict[str, str]:
    """The session's settings: the engine's, the catalog's in `warehouse_dir`, and `asked`
    (`--spark-conf`), which may not change a fixed one."""
    for key in FIXED_CONF.keys() & asked.keys():
        raise ConfigError(f"--spark-conf {key}: the Spark engine sets this itself")
    catalog = _catalog_conf(warehouse_dir)
    local = LOCAL_DRIVER_CONF if master.startswith("local") else {}
    settings = {**DEFAULT_CONF, **local, **catalog, **asked, **FIXED_CONF}
    # The driver's JVM options the user gives (start-up flags, see the README) come after
    # the catalog's own, not instead of them.
    if JAVA_OPTIONS in asked:
        settings[JAVA_OPTIONS] = f"{catalog[JAVA_OPTIONS]} {asked[JAVA_OPTIONS]}"
    settings.setdefault("spark.pyspark.python", sys.executable)
    return settings


def _builder():  # type: ignore[no-untyped-def]
    """SparkSession.builder, or a one-line error naming what is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "the Spark engine is not installed: pip install 'dc-trips-etl[spark]'"
        ) from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise ConfigError("the Spark engine needs Java 17: install a JDK or set JAVA_HOME")
    return SparkSession.builder


def _catalog_conf(warehouse_dir: Path) -> dict[str, str]:
    """The tables' folder and the embedded metastore, both inside the warehouse folder."""
    root = warehouse_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    metastore = f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true"
    return {
        "spark.sql.warehouse.dir": str(root / "tables"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
        # Derby writes derby.log into the working directory unless told otherwise.
        JAVA_OPTIONS: f"-Dderby.system.home={root}",
    }
