"""Byte-reproducible file writing: zip members with fixed metadata, gzip without a timestamp."""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Iterable
from pathlib import Path

# Every zip member gets this timestamp and these attributes, whatever the clock or platform:
# same seed => same bytes.
ZIP_DATE_TIME = (2024, 1, 2, 0, 0, 0)
ZIP_COMPRESS_LEVEL = 1  # speed over size: members reach 1 GB at scale 50
GZIP_LEVEL = 3  # the gzipped dispatch days


def zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # "Unix", as on Linux; Windows would otherwise write 0
    info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
    # The attribute ZipFile.open(info, "w") reads was renamed in Python 3.13.
    if hasattr(info, "compress_level"):
        info.compress_level = ZIP_COMPRESS_LEVEL
    else:
        info._compresslevel = ZIP_COMPRESS_LEVEL
    return info


def write_zip_member(zf: zipfile.ZipFile, name: str, chunks: Iterable[bytes]) -> int:
    """Stream chunks into one member (zip64 so members may pass 4 GB); returns bytes written."""
    size = 0
    with zf.open(zip_info(name), "w", force_zip64=True) as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
    return size


def write_text(path: Path, data: bytes, *, gzipped: bool = False) -> None:
    """Write bytes to a file, gzip-compressed with mtime 0 and no embedded name if asked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if gzipped else data)
