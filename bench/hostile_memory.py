"""Peak memory of `etl run` on the hostile zips of issue 16, each run as a whole process.

    python bench/hostile_memory.py

- a 256 KB zip holding one 256 MB line (refused by its inflation ratio with the default limits;
  with the ratio allowed, by its line length while it streams);
- a 2.4 MB zip whose member inflates to 2.5 GB while its zip declares 2 MB (a member that lies
  about its size), and the same member declaring its size honestly (refused by its ratio).

Each data root holds the hostile zip and one good DFHV zip, which must still load (exit 2).
Prints one line per case: its peak RSS (wait4), wall time, exit code and the failed file's
reason from `quality.files`.
"""

from __future__ import annotations

import shutil
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import duckdb
from measure import measure

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work" / "hostile"
sys.path.insert(0, str(ROOT / "tests"))
from dfhv import member_text, trip, write_zip  # noqa: E402


def deflated(block: bytes, count: int) -> tuple[bytes, int]:
    """`block` repeated `count` times, raw-deflated a block at a time, and its CRC-32."""
    squeeze, crc, parts = zlib.compressobj(9, zlib.DEFLATED, -15), 0, []
    for _ in range(count):
        parts.append(squeeze.compress(block))
        crc = zlib.crc32(block, crc)
    parts.append(squeeze.flush())
    return b"".join(parts), crc


def raw_zip(path: Path, name: str, compressed: bytes, crc: int, declared: int) -> None:
    """A zip of one deflated member whose headers declare `declared` bytes uncompressed."""
    encoded = name.encode()
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(compressed), declared,
        len(encoded), 0,
    )  # fmt: skip
    central = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(compressed), declared,
        len(encoded), 0, 0, 0, 0, 0, 0,
    )  # fmt: skip
    directory_at = len(local) + len(encoded) + len(compressed)
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(encoded), directory_at, 0
    )
    path.write_bytes(local + encoded + compressed + central + encoded + end)


def data_root(case: str, hostile: Path) -> Path:
    root = WORK / case
    shutil.rmtree(root, ignore_errors=True)
    (root / "dc_taxi").mkdir(parents=True)
    write_zip(root / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    shutil.move(hostile, root / "dc_taxi" / "taxi_2017.zip")
    return root


def run_case(case: str, root: Path, limits: str = "") -> None:
    config = (ROOT / "sources.yaml").read_text() + limits
    (root.parent / f"{case}.yaml").write_text(config)
    shutil.rmtree(root.parent / "schemas", ignore_errors=True)
    shutil.copytree(ROOT / "schemas", root.parent / "schemas")
    warehouse = root.parent / f"{case}.duckdb"
    warehouse.unlink(missing_ok=True)
    command = [sys.executable, "-m", "etl", "run", "--config", str(root.parent / f"{case}.yaml"),
               "--data-root", str(root), "--warehouse", str(warehouse)]  # fmt: skip
    m = measure(case, command)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        reasons = con.execute("SELECT reason FROM quality.files WHERE status = 'failed'").fetchall()
    size = sum(p.stat().st_size for p in (root / "dc_taxi").glob("taxi_2017.zip"))
    print(f"{case}: zip {size / 1024:,.0f} KB, peak {m.peak_rss_mb:,.0f} MB, {m.wall_s} s, "
          f"exit {m.exit_code}, failed: {[r for (r,) in reasons]}", flush=True)  # fmt: skip


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    line = WORK / "line.zip"
    with (
        zipfile.ZipFile(line, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("taxi_2017_01.txt", "w") as member,
    ):
        for _ in range(16):
            member.write(b"x" * (16 << 20))
    shutil.copy(line, WORK / "line2.zip")
    run_case("256 MB line, default limits", data_root("line-default", line))
    run_case(
        "256 MB line, ratio allowed",
        data_root("line-ratio", WORK / "line2.zip"),
        "\nlimits:\n  max_inflation_ratio: 1000000\n",
    )
    compressed, crc = deflated(bytes(64 << 20), 40)  # 2.5 GiB of zeros
    raw_zip(WORK / "liar.zip", "taxi_2017_01.txt", compressed, crc, 2_000_000)
    run_case("2.5 GB member declaring 2 MB", data_root("liar", WORK / "liar.zip"))
    raw_zip(WORK / "honest.zip", "taxi_2017_01.txt", compressed, crc, 40 * (64 << 20))
    run_case("2.5 GB member declaring it", data_root("honest", WORK / "honest.zip"))


if __name__ == "__main__":
    main()
