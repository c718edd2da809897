"""The floor: DuckDB's bare read_csv of extracted DFHV members into typed columns, nothing else.

Usage: python bench/floor_duckdb.py MEMBERS_DIR DATABASE
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb


def main(members: Path, database: Path) -> None:
    con = duckdb.connect(str(database))
    pipe = sorted(str(p) for p in members.glob("*.txt"))
    comma = sorted(str(p) for p in members.glob("*.csv"))
    if pipe:
        con.execute(
            "CREATE TABLE taxi_pipe AS SELECT * FROM read_csv($files, delim='|', header=true,"
            " union_by_name=true)",
            {"files": pipe},
        )
    if comma:
        con.execute(
            "CREATE TABLE taxi_comma AS SELECT * FROM read_csv($files, delim=',', header=true,"
            " union_by_name=true)",
            {"files": comma},
        )
    con.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
