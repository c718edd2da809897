from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from etl.paths import PROJECT_ROOT
from etl.run.pipeline import RunResult, run
from etl.sample import write_sample

DEFAULT_CONFIG = PROJECT_ROOT / "sources.yaml"
# The session's one sample (see `sample_data`): big enough for the models to learn something
# and for every planted defect to occur, small enough to load in seconds.
SAMPLE_SEED, SAMPLE_SCALE = 5, 0.1


class Warehouse:
    """A data root and warehouse in a temp folder, and a way to load it and look inside."""

    def __init__(self, root: Path, config: Path = DEFAULT_CONFIG, data: Path | None = None) -> None:
        """`data`: an existing data root to load (the shared sample: never changed), else an
        empty `data/` folder under `root` for the test to fill."""
        if data is None:
            data = root / "data"
            data.mkdir(parents=True)
        root.mkdir(parents=True, exist_ok=True)
        self.data = data
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


@dataclass(frozen=True)
class Loaded:
    """The shared sample warehouse: read it, never change it; `copy` gives one to change."""

    wh: Warehouse
    result: RunResult  # the run that loaded it
    truth: dict  # what the sample generator planted (_sample_truth.json)

    def copy(self, root: Path) -> Warehouse:
        """A copy of the warehouse file under `root` (a file copy: no second load), on the
        same data root (a test that changes files copies `sample_data` too)."""
        copy = Warehouse(root, data=self.wh.data)
        shutil.copyfile(self.wh.path, copy.path)
        return copy


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`etl sample` once for the whole session. Tests read it; one that changes files copies it."""
    root = tmp_path_factory.mktemp("shared_sample") / "data"
    write_sample(root, seed=SAMPLE_SEED, scale=SAMPLE_SCALE)
    return root


@pytest.fixture(scope="session")
def sample_warehouse(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The shared sample loaded once by `etl run` with the project's sources.yaml. At the end
    of the session it must be as loaded: a test that wrote to it would make others' results
    depend on test order."""
    wh = Warehouse(tmp_path_factory.mktemp("shared_warehouse"), data=sample_data)
    result = wh.run()
    assert result.exit_code == 0, result.message
    truth = json.loads((sample_data / "_sample_truth.json").read_text())
    before = _fingerprint(sample_data, wh.path)
    yield Loaded(wh, result, truth)
    assert _fingerprint(sample_data, wh.path) == before, "a test changed the shared sample"


def _fingerprint(data: Path, warehouse: Path) -> dict[str, tuple[int, int]]:
    paths = [warehouse, *(p for p in sorted(data.rglob("*")) if p.is_file())]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in paths}
