"""Small DFHV-format files written by hand for tests: exact rows, known lines, chosen defects."""

from __future__ import annotations

import zipfile
from pathlib import Path

from etl.sample.taxi import COLUMNS_2015_2019

# The 2015-2019 release's header, as the sample generator writes it (docs/data.md).
HEADER_2015 = COLUMNS_2015_2019


def trip(object_id: int, **changes: str) -> dict[str, str]:
    """One plausible DFHV row as text, with any field changed."""
    row = {
        "OBJECTID": str(object_id),
        "TRIPTYPE": "1",
        "PROVIDERNAME": "Yellow Cab",
        "FAREAMOUNT": "12.50",
        "GRATUITYAMOUNT": "2.00",
        "SURCHARGEAMOUNT": "0.25",
        "EXTRAFAREAMOUNT": "0.00",
        "TOLLAMOUNT": "0.00",
        "TOTALAMOUNT": "14.75",
        "PAYMENTTYPE": "1",
        "ORIGINCITY": "WASHINGTON",
        "ORIGINSTATE": "DC",
        "ORIGINZIP": "20005",
        "DESTINATIONCITY": "WASHINGTON",
        "DESTINATIONSTATE": "DC",
        "DESTINATIONZIP": "20002",
        "MILEAGE": "2.10",
        "DURATION": "780",
        "ORIGIN_BLOCK_LATITUDE": "38.902",
        "ORIGIN_BLOCK_LONGITUDE": "-77.033",
        "ORIGIN_BLOCKNAME": "1400 - 1499 BLOCK OF K ST NW",
        "DESTINATION_BLOCK_LATITUDE": "38.897",
        "DESTINATION_BLOCK_LONGITUDE": "-77.006",
        "DESTINATION_BLOCKNAME": "1 - 99 BLOCK OF MASSACHUSETTS AVE NE",
        "AIRPORT": "N",
        "ORIGINDATETIME_TR": "01/15/2016 08:00",
        "DESTINATIONDATETIME_TR": "01/15/2016 08:00",
    }
    row.update(changes)
    return row


def member_text(
    rows: list[dict[str, str]], delimiter: str = "|", header: list[str] | None = None
) -> str:
    header = header or HEADER_2015
    lines = [delimiter.join(header)]
    lines += [delimiter.join(row.get(col, "") for col in header) for row in rows]
    return "\n".join(lines) + "\n"


def write_zip(path: Path, members: dict[str, str | bytes], readme: bool = True) -> Path:
    """A yearly DFHV zip with the given members (text or bytes) and the README."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        if readme:
            archive.writestr("README_DC_Taxicab_trip.txt", "DC Taxicab trips. See the header.\n")
    return path
