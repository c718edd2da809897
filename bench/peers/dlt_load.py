"""The loader peer: dlt loading the extracted DFHV members into a DuckDB file, load only.

Usage: python bench/peers/dlt_load.py MEMBERS_DIR DATABASE

It models what a data engineer writes with dlt, the natural way and on dlt's fast path: one
resource yields each member file (`taxi_YYYY_MM.txt` pipe delimited, `taxi_YYYYMM.csv` comma
delimited) as Arrow record batches from pyarrow's streaming CSV reader, with the DFHV columns
typed on read (numbers as float64 or int64, the `MM/DD/YYYY HH:MM` times as naive timestamps,
`NULL` and empty fields as nulls, zip codes as text since they hold junk such as `2DA`).
dlt normalises the column names (snake_case), writes Parquet load packages and loads them into
`dc_taxi.trips` of DATABASE (replace). No row checks, no expectations, no quarantine: a value
that does not parse fails the load. dlt's working folder lives in a temporary directory that is
removed afterwards; telemetry is off and nothing touches the network. A one-line summary goes
to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # after the telemetry switch
import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

DELIMITERS = {".txt": "|", ".csv": ","}
NULL_TOKENS = ["", "NULL"]
BLOCK_SIZE = 16 << 20  # bytes of CSV per record batch

INT_COLUMNS = ["OBJECTID", "TRIPTYPE", "PAYMENTTYPE"]
FLOAT_COLUMNS = [
    "FAREAMOUNT", "GRATUITYAMOUNT", "SURCHARGEAMOUNT", "EXTRAFAREAMOUNT", "TOLLAMOUNT",
    "TOTALAMOUNT", "MILEAGE", "DURATION", "ORIGIN_BLOCK_LATITUDE", "ORIGIN_BLOCK_LONGITUDE",
    "DESTINATION_BLOCK_LATITUDE", "DESTINATION_BLOCK_LONGITUDE",
]  # fmt: skip
TIME_COLUMNS = ["ORIGINDATETIME_TR", "DESTINATIONDATETIME_TR"]
TEXT_COLUMNS = ["ORIGINZIP", "DESTINATIONZIP"]  # junk such as `2DA` among the numbers
COLUMN_TYPES: dict[str, pa.DataType] = (
    dict.fromkeys(INT_COLUMNS, pa.int64())
    | dict.fromkeys(FLOAT_COLUMNS, pa.float64())
    | dict.fromkeys(TIME_COLUMNS, pa.timestamp("us"))
    | dict.fromkeys(TEXT_COLUMNS, pa.string())
)


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """One member as typed Arrow record batches, streamed."""
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(delimiter=DELIMITERS[path.suffix]),
        convert_options=pacsv.ConvertOptions(
            column_types=COLUMN_TYPES,
            null_values=NULL_TOKENS,
            strings_can_be_null=True,
            timestamp_parsers=["%m/%d/%Y %H:%M"],
        ),
    )
    yield from reader


# The DFHV times are local DC wall-clock time: keep them naive (dlt assumes UTC otherwise).
LOCAL_TIMES = {c.lower(): {"data_type": "timestamp", "timezone": False} for c in TIME_COLUMNS}


@dlt.resource(name="trips", write_disposition="replace", columns=LOCAL_TIMES)
def trips(members: list[Path]) -> Iterator[pa.RecordBatch]:
    """Every DFHV member's rows; both layouts land in one table, columns matched by name."""
    for path in members:
        yield from read_batches(path)


def main(members_dir: Path, database: Path) -> int:
    started = time.perf_counter()
    members = sorted(p for p in members_dir.iterdir() if p.suffix in DELIMITERS)
    if not members:
        print(f"no taxi_*.txt / taxi_*.csv members in {members_dir}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dlt_peer_") as work:
        pipeline = dlt.pipeline(
            pipeline_name="dc_taxi_peer",
            pipelines_dir=work,
            destination=dlt.destinations.duckdb(str(database)),
            dataset_name="dc_taxi",
        )
        info = pipeline.run(trips(members))
        info.raise_on_failed_jobs()
    with duckdb.connect(str(database), read_only=True) as con:
        (rows,) = con.execute("SELECT count(*) FROM dc_taxi.trips").fetchone()
    print(
        f"dlt_load: {len(members)} files, {rows} rows loaded into {database}:dc_taxi.trips; "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members_dir", type=Path)
    parser.add_argument("database", type=Path)
    args = parser.parse_args()
    sys.exit(main(args.members_dir, args.database))
