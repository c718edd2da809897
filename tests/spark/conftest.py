"""A Spark session shared by the Spark tests (local[2]); starting one costs 10-25 s.

The tests here need the `spark` extra and Java 17 (bin/setup installs both); they are marked
`spark`, so `pytest -m 'not spark'` leaves them out on a machine without Java.
"""

from __future__ import annotations

import pytest

from etl.engine.spark.session import spark_session


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/spark/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    session = spark_session(tmp_path_factory.mktemp("spark-warehouse"), master="local[2]")
    yield session
    session.stop()
