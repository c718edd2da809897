"""Where the project's own files live: the SQL models, the DDL and the schemas.

The toolkit runs from its checkout (like a dbt project): SQL and schema files sit beside the
package, not inside it, so that analysts and engineers edit them as files.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE_DIR = PROJECT_ROOT / "warehouse"
DDL_DIR = WAREHOUSE_DIR / "ddl"
MODELS_DIR = WAREHOUSE_DIR / "models"
QUERIES_DIR = WAREHOUSE_DIR / "queries"
INTEGRATE_SQL_DIR = WAREHOUSE_DIR / "integrate"
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
PROJECT_CONFIG = PROJECT_ROOT / "sources.yaml"  # the sources the SQL models are written for
# Command-line defaults, relative to the working directory (the checkout in the quick start).
DEFAULT_CONFIG = Path("sources.yaml")
DEFAULT_WAREHOUSE = Path("warehouse/warehouse.duckdb")
DEFAULT_DATA_ROOT = Path("data")
