"""The floor: DuckDB's bare read of the same files into typed columns, nothing else.

Usage: python bench/floor_duckdb.py MEMBERS_DIR DATABASE [DATA_ROOT]

MEMBERS_DIR holds the extracted DFHV members (DuckDB cannot read inside a zip here). With
DATA_ROOT, the company silos are read too: the dispatch JSON Lines (plain and gzipped) and the
courier CSVs, skipping what does not parse (the broken lines, the trailers), as a bare read
would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb


def main(members: Path, database: Path, data_root: Path | None) -> None:
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
    if data_root is not None:
        dispatch = sorted(str(p) for p in (data_root / "company" / "dispatch").glob("*.jsonl*"))
        courier = sorted(str(p) for p in (data_root / "company" / "courier").glob("*.csv"))
        con.execute(
            "CREATE TABLE dispatch AS SELECT * FROM read_json($files, "
            "format='newline_delimited', ignore_errors=true, union_by_name=true)",
            {"files": dispatch},
        )
        con.execute(
            "CREATE TABLE courier AS SELECT * FROM read_csv($files, header=true, "
            "ignore_errors=true, union_by_name=true)",
            {"files": courier},
        )
    con.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
