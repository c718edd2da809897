"""Where the project's files live: the SQL models, the DDL and the schemas.

A *project* is a folder with `sources.yaml`, `schemas/` and `warehouse/models/` that the tool
runs, as a dbt project is to dbt (`etl init` writes one). The tool's own SQL (DDL, audits,
matching, queries) and the default project ship inside the package: a built wheel carries them
in `etl/_defaults/` (copied there from the repository's top level by setup.py's build hook); a
checkout or an editable install reads them from the top level of the checkout, which is itself
a project (the demo runs there).
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_BUILT = _PACKAGE / "_defaults"
DEFAULTS_DIR = _BUILT if _BUILT.is_dir() else _PACKAGE.parent  # the default project
PROJECT_ROOT = DEFAULTS_DIR
WAREHOUSE_DIR = DEFAULTS_DIR / "warehouse"
DDL_DIR = WAREHOUSE_DIR / "ddl"
MODELS_DIR = WAREHOUSE_DIR / "models"
QUERIES_DIR = WAREHOUSE_DIR / "queries"
INTEGRATE_SQL_DIR = WAREHOUSE_DIR / "integrate"
SCHEMAS_DIR = DEFAULTS_DIR / "schemas"
# What `etl init` copies into a new project: the files a user edits.
PROJECT_FILES = ("sources.yaml", "schemas", "warehouse/models")
# Command-line defaults, relative to the project (the working directory unless --project-dir).
DEFAULT_CONFIG = Path("sources.yaml")
DEFAULT_WAREHOUSE = Path("warehouse/warehouse.duckdb")
DEFAULT_DATA_ROOT = Path("data")


def project_models(project: Path) -> Path:
    """The SQL models a project builds: its own `warehouse/models/` if it has one, else the
    defaults (a config file on its own, a test's or one that loads fewer sources, builds the
    default models over its own sources)."""
    own = project / "warehouse" / "models"
    return own if own.is_dir() else MODELS_DIR
