"""Property tests: malformed lines and files thrown at each reader (delimited text, JSON Lines,
zip members, GeoJSON). Whatever the bytes, a file either fails alone with a one-line reason
(a SourceError, the error the run catches per file) or every one of its lines is accounted
for: rows read = rows staged + rows quarantined, and rows + blank lines + the header (and a
trailer) = the lines of the file. Any other exception is a traceback in a nightly run.

The files go through the run's own steps, without a warehouse: discovery, `read_pieces` in
small pieces (so that lines and keys cross pieces), the source's reader and its staging with
its row checks, one piece at a time as the run stages a large file.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from conftest import DEFAULT_CONFIG
from dfhv import HEADER_2015, member_text, trip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.config.load import load_config
from etl.config.spec import Limits, Source
from etl.readers.geojson import read_boundary
from etl.run.plan import row_checkers
from etl.sources.fetch import read_pieces
from etl.sources.files import Broken, FileRef, SourceError, discover
from etl.stage.batch import FileReader, stage_files

CONFIG = load_config(DEFAULT_CONFIG)
CHECKERS = row_checkers(CONFIG, DEFAULT_CONFIG.parent)
LIMITS = Limits(max_line_bytes=2_000)
SETTINGS = settings(
    max_examples=40,
    derandomize=True,  # the same examples on every machine: CI does not flake
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Outcome:
    path: str
    reason: str | None = None  # why the file failed; None: it loaded
    rows_read: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    trailer_found: bool = False


def load(root: Path, name: str, piece_bytes: int, source: Source | None = None) -> list[Outcome]:
    """Every file of source `name` (or `source`) under `root`, read and staged as the run
    does."""
    source = source or CONFIG.sources[name]
    outcomes = []
    for found in discover(name, source, root, limits=LIMITS):
        if isinstance(found, Broken):
            outcomes.append(Outcome(found.path, found.reason))
        elif source.format == "geojson":
            outcomes.append(load_boundary(found))
        else:
            outcomes.append(load_file(found, source, piece_bytes))
    return outcomes


def load_file(ref: FileRef, source: Source, piece_bytes: int) -> Outcome:
    outcome, reader, seen = Outcome(ref.path), FileReader(ref, source), None
    try:
        for piece in read_pieces(ref, piece_bytes, LIMITS):
            read = reader.read(piece.data, piece.last)
            batch = stage_files([read], source, "run", CHECKERS[ref.source], None, seen)
            seen, counts = batch.seen_keys, batch.counts[ref.path]
            outcome.rows_read += counts.rows_read
            outcome.rows_staged += counts.rows_staged
            outcome.rows_quarantined += counts.rows_quarantined
            outcome.blank_lines += counts.blank_lines
            outcome.trailer_found |= counts.trailer_found
    except SourceError as exc:
        return Outcome(ref.path, str(reader.locate(exc)))
    return outcome


def load_boundary(ref: FileRef) -> Outcome:
    try:
        for _ in read_pieces(ref, 1_000, LIMITS, lines=False):
            pass
        _, row = read_boundary(ref, "run")
    except SourceError as exc:
        return Outcome(ref.path, str(exc))
    return Outcome(ref.path, rows_read=row.height, rows_staged=row.height)


def assert_accounted(outcomes: list[Outcome], lines: dict[str, int], header: int) -> None:
    """Each file failed with a one-line reason, or each of its lines is a row or blank line
    (or the header, or the trailer) and each row was staged or quarantined."""
    assert outcomes
    for outcome in outcomes:
        if outcome.reason is not None:
            assert outcome.reason.strip() and "\n" not in outcome.reason
            assert len(outcome.reason) < 300
            continue
        assert outcome.rows_read == outcome.rows_staged + outcome.rows_quarantined
        accounted = outcome.rows_read + outcome.blank_lines + header + outcome.trailer_found
        assert accounted == lines[outcome.path]


def physical_lines(content: bytes) -> int:
    return content.count(b"\n") + (0 if content.endswith(b"\n") or not content else 1)


# -- what is thrown --------------------------------------------------------------------------

# Text with the characters that break parsers: delimiters, quotes, carriage returns, spaces,
# non-ASCII letters, and a NUL now and then.
NASTY = st.one_of(
    st.text(alphabet="|,;\"'\r\t {}[]:\\x0123456789aZé€\x00", max_size=40),
    st.sampled_from(["NULL", "12.50", "-1", "1e999", "01/15/2016 08:00", '"a|b"']),
)


@st.composite
def dfhv_line(draw) -> str:
    kinds = ["trip"] * 8 + ["changed"] * 6 + ["garbage", "blank", "fields", "long"]
    kind = draw(st.sampled_from(kinds))
    number = draw(st.integers(1, 50))  # repeats: duplicate keys across pieces
    if kind == "trip":
        return member_text([trip(number)]).split("\n")[1]
    if kind == "changed":
        field = draw(st.sampled_from(HEADER_2015))
        return member_text([trip(number, **{field: draw(NASTY).replace("\n", "")})]).split("\n")[1]
    if kind == "garbage":
        return draw(NASTY)
    if kind == "fields":
        return member_text([trip(number)]).split("\n")[1] + "|" + draw(NASTY)
    if kind == "long":
        return "9|" + "L" * draw(st.integers(1_990, 2_010))  # at the line limit, or past it
    return draw(st.sampled_from(["", " ", "\r"]))


@st.composite
def dfhv_text(draw) -> bytes:
    header = list(HEADER_2015)
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "repeat", "rename"]))
    if change == "drop":
        header.remove(draw(st.sampled_from(header)))
    elif change == "repeat":
        header.append(draw(st.sampled_from(header)))
    elif change == "rename":
        header[draw(st.integers(0, len(header) - 1))] = draw(NASTY) or "X"
    lines = ["|".join(header), *draw(st.lists(dfhv_line(), max_size=40))]
    ending = draw(st.sampled_from(["\n", "\r\n", ""]))
    text = ending.join(lines) + draw(st.sampled_from([ending, ""]))
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@st.composite
def json_line(draw) -> str:
    kinds = ["job"] * 6 + ["fields"] * 4 + ["garbage", "nested", "blank", "long"]
    kind = draw(st.sampled_from(kinds))
    job = {
        "job_id": f"J{draw(st.integers(1, 30))}",
        "status": draw(st.sampled_from(["completed", "cancelled", ""])),
        "pickup": {"lat": 38.9, "lon": -77.03, "at": "2016-01-15T08:00:00Z"},
        "dropoff": {"lat": 38.91, "lon": -77.0, "at": "2016-01-15T08:20:00Z"},
        "distance_km": 3.1,
        "charge_cents": 1250,
        "updated_at": "2016-01-15T08:21:00Z",
    }
    if kind == "job":
        return json.dumps(job)
    if kind == "fields":
        scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), NASTY)
        job |= draw(st.dictionaries(st.sampled_from([*job, "extra", "pickup.lat"]), scalar))
        return json.dumps(job)
    if kind == "nested":
        depth = draw(st.integers(1, 300))
        return "[" * depth + "1" + "]" * draw(st.integers(0, depth))
    if kind == "long":
        return json.dumps(job | {"note": "n" * draw(st.integers(1_700, 2_100))})
    if kind == "garbage":
        return draw(NASTY)
    return draw(st.sampled_from(["", "  ", "\r"]))


@st.composite
def jsonl_text(draw) -> bytes:
    lines = draw(st.lists(json_line(), max_size=40))
    text = "\n".join(lines) + draw(st.sampled_from(["\n", ""]))
    return text.encode(draw(st.sampled_from(["utf-8"] * 6 + ["utf-16", "cp1252"])), "replace")


def damaged(draw, data: bytes) -> bytes:
    """The bytes as they are, cut short, or with one byte changed."""
    how = draw(st.sampled_from(["whole", "whole", "cut", "flip"]))
    if how == "whole" or not data:
        return data
    at = draw(st.integers(0, len(data) - 1))
    if how == "cut":
        return data[:at]
    return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]


# -- the properties -------------------------------------------------------------------------


@SETTINGS
@given(content=dfhv_text(), piece=st.integers(200, 5_000))
def test_delimited_files_are_accounted_for_or_fail_with_a_reason(content, piece):
    # DFHV's source, its files plain instead of zipped.
    source = CONFIG.sources["dc_taxi"].model_copy(update={"files": ("dc_taxi/*.txt",)})
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "dc_taxi").mkdir()
        (root / "dc_taxi" / "taxi_2016_01.txt").write_bytes(content)
        outcomes = load(root, "dc_taxi", piece, source)
    assert_accounted(outcomes, {"dc_taxi/taxi_2016_01.txt": physical_lines(content)}, header=1)


@SETTINGS
@given(data=st.data(), rows=st.lists(st.integers(1, 30), max_size=30))
def test_courier_files_with_a_trailer_are_accounted_for_or_fail_with_a_reason(data, rows):
    """The courier's quoted, CRLF CSV and its control-total trailer."""
    header = "TripRef,Vehicle,Start Time,End Time,From Lat,From Lng,To Lat,To Lng,Miles,Cost"
    good = (
        "C{},V1,01/15/2016 08:00:00 AM,01/15/2016 08:20:00 AM,"
        '38.9,-77.03,38.91,-77.0,2.1,"$1,012.50"'
    )
    lines = [header] + [
        good.format(k) if data.draw(st.booleans()) else data.draw(NASTY) for k in rows
    ]
    declared = data.draw(st.sampled_from([len(rows), len(rows) + 1, None]))
    if declared is not None:
        lines.append(f"TOTAL ROWS: {declared}")
    content = "\r\n".join(lines).encode() + data.draw(st.sampled_from([b"\r\n", b""]))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "company" / "courier").mkdir(parents=True)
        (root / "company" / "courier" / "courier_trips_2016_01.csv").write_bytes(content)
        outcomes = load(root, "courier", data.draw(st.integers(200, 5_000)))
    path = "company/courier/courier_trips_2016_01.csv"
    assert_accounted(outcomes, {path: physical_lines(content)}, header=1)


@SETTINGS
@given(content=jsonl_text(), piece=st.integers(200, 5_000), gzipped=st.booleans())
def test_json_lines_files_are_accounted_for_or_fail_with_a_reason(content, piece, gzipped):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "company" / "dispatch").mkdir(parents=True)
        name = "company/dispatch/dispatch_2016-01-15.jsonl" + (".gz" if gzipped else "")
        (root / name).write_bytes(gzip.compress(content) if gzipped else content)
        outcomes = load(root, "dispatch", piece)
    assert_accounted(outcomes, {name: physical_lines(content)}, header=0)


@SETTINGS
@given(data=st.data(), members=st.lists(dfhv_text(), min_size=1, max_size=3))
def test_zip_members_are_accounted_for_or_fail_with_a_reason(data, members):
    names = data.draw(
        st.lists(
            st.sampled_from(["taxi_2016_01.txt", "taxi_2016_02.txt", "notes.txt"]),
            min_size=len(members),
            max_size=len(members),
        )
    )
    method = data.draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "dc_taxi").mkdir()
        path = root / "dc_taxi" / "taxi_2016.zip"
        with zipfile.ZipFile(path, "w", method) as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a name twice is the point
            for name, content in zip(names, members, strict=True):
                archive.writestr(name, content)
        path.write_bytes(damaged(data.draw, path.read_bytes()))
        outcomes = load(root, "dc_taxi", data.draw(st.integers(200, 5_000)))
    lines = {
        f"dc_taxi/taxi_2016.zip!{n}": physical_lines(c) for n, c in zip(names, members, strict=True)
    }
    broken = [o for o in outcomes if o.path not in lines]
    assert all(o.path == "dc_taxi/taxi_2016.zip" and o.reason for o in broken)
    if outcomes:
        assert_accounted(outcomes, lines, header=1)


POLYGON = {
    "type": "Feature",
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[-77.1, 38.8], [-76.9, 38.8], [-76.9, 39.0], [-77.1, 39.0], [-77.1, 38.8]]
        ],
    },
}


@st.composite
def geojson(draw) -> bytes:
    json_values = st.recursive(
        st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), NASTY),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(NASTY, inner, max_size=5)
        ),
        max_leaves=20,
    )
    kind = draw(st.sampled_from(["valid", "changed", "random", "deep"]))
    if kind == "valid":
        document = POLYGON
    elif kind == "changed":
        document = json.loads(json.dumps(POLYGON))
        where = draw(st.sampled_from(["geometry", "type", "coordinates"]))
        target = document if where != "coordinates" else document["geometry"]
        target[where] = draw(json_values)
    elif kind == "random":
        document = draw(json_values)
    else:
        depth = draw(st.integers(500, 5_000))
        return b'{"type": "Polygon", "coordinates": ' + b"[" * depth + b"]" * depth + b"}"
    return json.dumps(document).encode()


@SETTINGS
@given(data=st.data(), content=geojson())
def test_geojson_boundaries_load_or_fail_with_a_reason(data, content):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "dc_reference").mkdir()
        (root / "dc_reference" / "dc_boundary.geojson").write_bytes(damaged(data.draw, content))
        outcomes = load(root, "dc_boundary", 1_000)
    for outcome in outcomes:
        assert outcome.reason is None or ("\n" not in outcome.reason and outcome.reason)
        assert outcome.reason is not None or outcome.rows_staged == 1
