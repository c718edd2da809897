"""The installed tool: a wheel built from this repository works outside the checkout.

The wheel must carry the SQL, DDL, queries, default sources.yaml, row specs and suites (built
from the top-level files; nothing committed twice), and a new user's first commands, in an
empty folder, must all succeed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from etl.paths import DEFAULTS_DIR

REPO = DEFAULTS_DIR
# What a source distribution holds: the package and the top-level project files.
SOURCE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "sources.yaml")
SOURCE_DIRS = ("etl", "schemas", "warehouse")
IGNORE = shutil.ignore_patterns(
    "__pycache__", "_defaults", "*.duckdb*", "*.html", "models_out", "exports"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built (by pip, as a user would) from a copy of the repository's files."""
    if not (REPO / "setup.py").exists():
        pytest.skip("runs from a checkout: the installed package has no sources to build")
    root = tmp_path_factory.mktemp("build")
    source = root / "src"
    for name in SOURCE_DIRS:
        shutil.copytree(REPO / name, source / name, ignore=IGNORE)
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, source / name)
    _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(root / "dist"), str(source))
    (built,) = (root / "dist").glob("*.whl")
    return built


def _new_user_env() -> dict[str, str]:
    """A new user's environment: none of our settings, and no PYTHONPATH pointing at a checkout
    (with one, pip takes the checkout's `etl` for the wheel, already installed, and skips it)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ETL_") and k != "PYTHONPATH"}


def _pip(*args: str, python: Path | None = None) -> None:
    target = ["--python", str(python)] if python else []
    subprocess.run([sys.executable, "-m", "pip", *target, *args], check=True, env=_new_user_env())


def test_the_wheel_carries_the_project_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"etl/_defaults/{path.relative_to(REPO)}"
        for pattern in (
            "sources.yaml",
            "schemas/**/*.yaml",
            "schemas/**/*.json",
            "warehouse/**/*.sql",
        )
        for path in REPO.glob(pattern)
    }
    assert "etl/_defaults/warehouse/ddl/quality.sql" in expected
    assert "etl/_defaults/warehouse/queries/last_runs.sql" in expected
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.endswith((".duckdb", ".html"))]


def _venv_sharing_dependencies(root: Path) -> Path:
    """A fresh environment whose own site-packages holds only the wheel; its dependencies are
    found (after it) in this environment's, so the test does not install 900 MB each time.
    The editable install of this checkout is not seen there: .pth files of a path a .pth file
    adds are not run."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def _fresh_venv(root: Path) -> Path:
    """A fresh environment that pip fills with the wheel and every dependency it declares."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    return root / "bin" / "python"


@pytest.mark.parametrize(
    "make_venv",
    [
        _venv_sharing_dependencies,
        pytest.param(_fresh_venv, marks=pytest.mark.heavy, id="with-dependencies"),
    ],
)
def test_a_new_user_in_an_empty_folder(wheel: Path, tmp_path: Path, make_venv) -> None:
    python = make_venv(tmp_path / "venv")
    _pip(
        "install",
        "--quiet",
        *(["--no-deps"] if make_venv is _venv_sharing_dependencies else []),
        str(wheel),
        python=python,
    )
    etl = python.parent / "etl"
    folder = tmp_path / "empty"
    folder.mkdir()
    env = _new_user_env()

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(etl), *args], cwd=folder, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    where = subprocess.run(
        [str(python), "-c", "import etl.paths as p; print(p.DEFAULTS_DIR)"],
        cwd=folder, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert where == str(tmp_path / "venv") or where.startswith(str(tmp_path / "venv")), where
    assert where.endswith("_defaults")

    refused = subprocess.run([str(etl), "run"], cwd=folder, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "etl init" in refused.stderr
    run("init")
    run("sample", "--out", "data", "--scale", "0.02")
    assert "published" in run("run").stdout
    assert "published" in run("status").stdout
    assert "dc_taxi" in run("sql", "SELECT DISTINCT source FROM curated.trips").stdout
    run("report")
    assert (folder / "warehouse" / "report.html").stat().st_size > 10_000
