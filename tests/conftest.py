from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from etl.paths import PROJECT_ROOT
from etl.run.pipeline import RunResult, run

DEFAULT_CONFIG = PROJECT_ROOT / "sources.yaml"


class Warehouse:
    """A data root and warehouse in a temp folder, and a way to load it and look inside."""

    def __init__(self, root: Path, config: Path = DEFAULT_CONFIG) -> None:
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.path = root / "warehouse.duckdb"
        self.config = config

    def change_config(self, change) -> None:
        """Load with a copy of the config that `change(dict)` edited (its schemas still found)."""
        import yaml

        config = yaml.safe_load(self.config.read_text())
        change(config)
        folder = self.path.parent / "config"
        folder.mkdir()
        (folder / "schemas").symlink_to(self.config.parent / "schemas")
        self.config = folder / "sources.yaml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def run(self, **kwargs) -> RunResult:
        return run(self.config, self.data, self.path, **kwargs)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list | None = None):
        return self.query(sql, params)[0][0]


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path)
