"""Cross-silo trip matching: tolerances, one-to-one greedy resolution, band join."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from etl.engine.duckdb.match import RESULT_COLUMNS, MatchTolerance, _statements, match_trips

EARTH_RADIUS_M = 6371008.8  # the radius the SQL uses
T0 = datetime(2019, 3, 4, 18, 5, 22, tzinfo=UTC)
WHITE_HOUSE = (38.8977, -77.0365)
CAPITOL = (38.8899, -77.0091)
ARLINGTON = (38.8904, -77.0842)

# (id, pickup time, pickup (lat, lon), dropoff (lat, lon))
Trip = tuple[str, datetime, tuple[float, float], tuple[float, float]]


def north(point: tuple[float, float], metres: float) -> tuple[float, float]:
    """The point `metres` due north: a pure latitude shift, whose haversine length is exact."""
    return point[0] + math.degrees(metres / EARTH_RADIUS_M), point[1]


def east(point: tuple[float, float], metres: float) -> tuple[float, float]:
    """The point about `metres` due east (approximate: a parallel is not a great circle)."""
    lat, lon = point
    return lat, lon + math.degrees(metres / (EARTH_RADIUS_M * math.cos(math.radians(lat))))


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@pytest.fixture
def con() -> Iterable[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA staging")
    yield connection
    connection.close()


def load(con: duckdb.DuckDBPyConnection, table: str, trips: list[Trip]) -> None:
    """Create a canonical trip table (all contract columns, plausible values) from `trips`."""
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table} (
            source_record_id VARCHAR, pickup_at TIMESTAMPTZ, dropoff_at TIMESTAMPTZ,
            pickup_lat DOUBLE, pickup_lon DOUBLE, dropoff_lat DOUBLE, dropoff_lon DOUBLE,
            distance_miles DOUBLE, duration_s DOUBLE, fare_usd DOUBLE,
            _run_id VARCHAR, _file VARCHAR, _line BIGINT
        )"""
    )
    rows = [
        (
            trip_id,
            at,
            None if at is None else at + timedelta(minutes=20),
            *pickup,
            *dropoff,
            3.0,
            1200.0,
            15.0,
            "test",
            "test.csv",
            line,
        )
        for line, (trip_id, at, pickup, dropoff) in enumerate(trips, start=2)
    ]
    if rows:
        con.executemany(f"INSERT INTO {table} VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def run(
    con: duckdb.DuckDBPyConnection,
    left: list[Trip],
    right: list[Trip],
    tol: MatchTolerance | None = None,
) -> list[dict[str, object]]:
    load(con, "staging.dispatch", left)
    load(con, "staging.courier", right)
    table = match_trips(con, "staging.dispatch", "staging.courier", tol or MatchTolerance())
    cursor = con.execute(f"SELECT * FROM {table} ORDER BY left_id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def pairs(result: list[dict[str, object]]) -> set[tuple[object, object]]:
    return {(row["left_id"], row["right_id"]) for row in result}


# --- the rules ---------------------------------------------------------------------------------


def test_exact_duplicate_is_matched_with_score_one(con: duckdb.DuckDBPyConnection) -> None:
    result = run(
        con,
        [("D1", T0, WHITE_HOUSE, CAPITOL)],
        [("C1", T0, WHITE_HOUSE, CAPITOL)],
    )
    assert pairs(result) == {("D1", "C1")}
    row = result[0]
    assert list(row) == list(RESULT_COLUMNS)
    assert row["time_gap_s"] == 0
    assert row["pickup_gap_m"] == pytest.approx(0, abs=1e-6)
    assert row["score"] == pytest.approx(1.0)


def test_near_duplicate_within_tolerance_reports_its_gaps(con: duckdb.DuckDBPyConnection) -> None:
    result = run(
        con,
        [("D1", T0, WHITE_HOUSE, CAPITOL)],
        # Right clock 90 s late (earlier record on the left), GPS 60 m and 30 m off.
        [("C1", T0 + timedelta(seconds=90), north(WHITE_HOUSE, 60), east(CAPITOL, 30))],
    )
    assert pairs(result) == {("D1", "C1")}
    row = result[0]
    assert row["time_gap_s"] == pytest.approx(90)
    assert row["time_offset_s"] == pytest.approx(90)
    assert row["pickup_gap_m"] == pytest.approx(60, abs=1e-6)
    assert row["dropoff_gap_m"] == pytest.approx(30, abs=0.01)
    assert row["distance_gap_m"] == pytest.approx(60, abs=1e-6)  # the larger of the two
    # 1 - (90/120 + 60/100 + 30/100) / 6
    assert row["score"] == pytest.approx(1 - (0.75 + 0.6 + 0.3) / 6, abs=1e-6)
    assert 0 < row["score"] <= 1


@pytest.mark.parametrize(
    ("gap_s", "matched"), [(119, True), (120, True), (121, False), (-120, True), (-121, False)]
)
def test_time_tolerance_is_inclusive_and_symmetric(
    con: duckdb.DuckDBPyConnection, gap_s: int, matched: bool
) -> None:
    result = run(
        con,
        [("D1", T0, WHITE_HOUSE, CAPITOL)],
        [("C1", T0 + timedelta(seconds=gap_s), WHITE_HOUSE, CAPITOL)],
    )
    assert bool(result) is matched


@pytest.mark.parametrize(("metres", "matched"), [(99.9, True), (100.1, False)])
@pytest.mark.parametrize("end", ["pickup", "dropoff"])
def test_distance_tolerance_applies_to_pickup_and_dropoff(
    con: duckdb.DuckDBPyConnection, end: str, metres: float, matched: bool
) -> None:
    pickup = north(WHITE_HOUSE, metres) if end == "pickup" else WHITE_HOUSE
    dropoff = north(CAPITOL, metres) if end == "dropoff" else CAPITOL
    result = run(
        con,
        [("D1", T0, WHITE_HOUSE, CAPITOL)],
        [("C1", T0, pickup, dropoff)],
    )
    assert bool(result) is matched


def test_far_dropoff_means_no_match(con: duckdb.DuckDBPyConnection) -> None:
    """Same second, same pickup point, different destination: two different trips."""
    result = run(
        con,
        [("D1", T0, WHITE_HOUSE, CAPITOL)],
        [("C1", T0, WHITE_HOUSE, ARLINGTON)],
    )
    assert result == []


def test_pairs_straddling_a_time_bucket_edge_are_found(con: duckdb.DuckDBPyConnection) -> None:
    """The band join looks one bucket either side: a 100 s gap across a bucket edge matches."""
    edge = datetime.fromtimestamp(120 * (int(T0.timestamp()) // 120), tz=UTC)
    result = run(
        con,
        [
            ("D1", edge - timedelta(seconds=1), WHITE_HOUSE, CAPITOL),
            ("D2", edge + timedelta(seconds=1), ARLINGTON, WHITE_HOUSE),
        ],
        [
            ("C1", edge + timedelta(seconds=99), WHITE_HOUSE, CAPITOL),  # right is later
            ("C2", edge - timedelta(seconds=99), ARLINGTON, WHITE_HOUSE),  # right is earlier
        ],
    )
    assert pairs(result) == {("D1", "C1"), ("D2", "C2")}


# --- one-to-one ----------------------------------------------------------------------------------


def test_depot_case_only_the_true_twin_is_matched(con: duckdb.DuckDBPyConnection) -> None:
    """Two dispatch trips leave the depot within a minute; courier logged only the first.

    The second dispatch trip must stay unmatched, whether its destination is elsewhere or
    (harder) close enough to be a candidate too.
    """
    depot = (38.9230, -76.9800)
    left = [
        ("D-first", T0, depot, CAPITOL),
        ("D-second", T0 + timedelta(seconds=45), east(depot, 8), north(CAPITOL, 70)),
        ("D-third", T0 + timedelta(seconds=50), north(depot, 5), ARLINGTON),
    ]
    right = [("C-first", T0 + timedelta(seconds=6), north(depot, 12), east(CAPITOL, 15))]
    result = run(con, left, right)
    assert pairs(result) == {("D-first", "C-first")}
    # D-second really was a candidate (all gaps within tolerance), it just lost on score.
    assert haversine_m(north(CAPITOL, 70), east(CAPITOL, 15)) < 100


def test_one_right_trip_with_three_competing_left_trips(con: duckdb.DuckDBPyConnection) -> None:
    left = [
        ("L-far", T0 + timedelta(seconds=100), north(WHITE_HOUSE, 80), CAPITOL),
        ("L-best", T0 + timedelta(seconds=5), north(WHITE_HOUSE, 5), CAPITOL),
        ("L-mid", T0 + timedelta(seconds=30), north(WHITE_HOUSE, 40), CAPITOL),
    ]
    result = run(con, left, [("R", T0, WHITE_HOUSE, CAPITOL)])
    assert pairs(result) == {("L-best", "R")}


def test_one_left_trip_with_three_competing_right_trips(con: duckdb.DuckDBPyConnection) -> None:
    right = [
        ("R-mid", T0 + timedelta(seconds=30), WHITE_HOUSE, north(CAPITOL, 40)),
        ("R-far", T0 - timedelta(seconds=100), WHITE_HOUSE, north(CAPITOL, 80)),
        ("R-best", T0 - timedelta(seconds=5), WHITE_HOUSE, north(CAPITOL, 5)),
    ]
    result = run(con, [("L", T0, WHITE_HOUSE, CAPITOL)], right)
    assert pairs(result) == {("L", "R-best")}


def test_greedy_chain_needs_a_second_round(con: duckdb.DuckDBPyConnection) -> None:
    """L1-R1 is the best pair; L2 prefers R1 too but must fall back to R2 (its second choice).

    Round 1 accepts L1-R1 only (L2's best, R1, is taken); round 2 accepts L2-R2. A naive
    "everyone takes their best" would leave L2 unmatched or give R1 twice.
    """
    left = [
        ("L1", T0, WHITE_HOUSE, CAPITOL),
        ("L2", T0 + timedelta(seconds=20), WHITE_HOUSE, CAPITOL),
    ]
    right = [
        ("R1", T0 + timedelta(seconds=2), WHITE_HOUSE, CAPITOL),
        ("R2", T0 + timedelta(seconds=90), north(WHITE_HOUSE, 50), CAPITOL),
    ]
    result = run(con, left, right)
    assert pairs(result) == {("L1", "R1"), ("L2", "R2")}
    assert {row["left_id"]: row["round"] for row in result} == {"L1": 1, "L2": 2}


def test_round_cap_leaves_unresolved_trips_unmatched_and_warns(
    con: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """Same chain as above with max_rounds=1: L2-R2 is never decided, nothing is reused."""
    load(
        con,
        "staging.dispatch",
        [
            ("L1", T0, WHITE_HOUSE, CAPITOL),
            ("L2", T0 + timedelta(seconds=20), WHITE_HOUSE, CAPITOL),
        ],
    )
    load(
        con,
        "staging.courier",
        [
            ("R1", T0 + timedelta(seconds=2), WHITE_HOUSE, CAPITOL),
            ("R2", T0 + timedelta(seconds=90), north(WHITE_HOUSE, 50), CAPITOL),
        ],
    )
    with caplog.at_level("WARNING", logger="etl.engine.duckdb.match"):
        table = match_trips(con, "staging.dispatch", "staging.courier", max_rounds=1)
    assert con.execute(f"SELECT left_id, right_id FROM {table}").fetchall() == [("L1", "R1")]
    assert "still unresolved after 1 rounds" in caplog.text
    with pytest.raises(ValueError, match="max_rounds"):
        match_trips(con, "staging.dispatch", "staging.courier", max_rounds=0)


def test_result_is_one_to_one_and_equals_sequential_greedy(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Dense random conflicts: compare with a plain-Python best-first greedy reference."""
    rng = random.Random(7)
    base = (38.9000, -77.0300)

    def trips(prefix: str, n: int) -> list[Trip]:
        # 200 trips in 20 minutes, pickups in a 150 m square, drop-offs at 3 nearby points:
        # every trip has several candidates, many of them shared.
        out: list[Trip] = []
        for i in range(n):
            pickup = east(north(base, rng.uniform(0, 150)), rng.uniform(0, 150))
            dropoff = north(CAPITOL, 60 * rng.randrange(3) + rng.uniform(0, 40))
            at = T0 + timedelta(seconds=rng.uniform(0, 1200))
            out.append((f"{prefix}{i:03d}", at, pickup, dropoff))
        return out

    left, right = trips("L", 200), trips("R", 200)
    tol = MatchTolerance()
    result = run(con, left, right, tol)

    edges = []
    for lid, lt, lp, ld in left:
        for rid, rt, rp, rd in right:
            gap = abs((rt - lt).total_seconds())
            pg, dg = haversine_m(lp, rp), haversine_m(ld, rd)
            if gap <= tol.max_time_gap_s and pg <= tol.max_distance_m and dg <= tol.max_distance_m:
                score = 1 - (gap / tol.max_time_gap_s + (pg + dg) / tol.max_distance_m) / 6
                edges.append((-score, gap, max(pg, dg), lid, rid))
    used_left: set[str] = set()
    used_right: set[str] = set()
    expected = set()
    for *_, lid, rid in sorted(edges):
        if lid not in used_left and rid not in used_right:
            expected.add((lid, rid))
            used_left.add(lid)
            used_right.add(rid)

    assert len(edges) > 3 * len(expected)  # the fixture really is full of conflicts
    assert pairs(result) == expected
    assert len({row["left_id"] for row in result}) == len(result)
    assert len({row["right_id"] for row in result}) == len(result)
    assert max(int(row["round"]) for row in result) > 1


def test_duplicate_record_ids_in_one_silo_match_at_most_once(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """An exact duplicate row (same id twice, a known courier defect) is still one trip."""
    row = ("C1", T0, WHITE_HOUSE, CAPITOL)
    result = run(con, [("D1", T0, WHITE_HOUSE, CAPITOL)], [row, row])
    assert pairs(result) == {("D1", "C1")}
    assert len(result) == 1


def test_rows_with_missing_values_never_match(con: duckdb.DuckDBPyConnection) -> None:
    left: list[Trip] = [
        ("D-no-time", None, WHITE_HOUSE, CAPITOL),  # type: ignore[list-item]
        ("D-no-lat", T0, (None, WHITE_HOUSE[1]), CAPITOL),  # type: ignore[list-item]
        ("D-ok", T0, WHITE_HOUSE, CAPITOL),
    ]
    result = run(con, left, [("C1", T0, WHITE_HOUSE, CAPITOL)])
    assert pairs(result) == {("D-ok", "C1")}


# --- mechanics -----------------------------------------------------------------------------------


def test_empty_inputs_give_an_empty_result(con: duckdb.DuckDBPyConnection) -> None:
    assert run(con, [], [("C1", T0, WHITE_HOUSE, CAPITOL)]) == []


def test_result_tables_are_named_and_work_tables_cleaned(con: duckdb.DuckDBPyConnection) -> None:
    load(con, "staging.dispatch", [("D1", T0, WHITE_HOUSE, CAPITOL)])
    load(con, "staging.courier", [("C1", T0, WHITE_HOUSE, CAPITOL)])
    first = match_trips(con, "staging.dispatch", "staging.courier", MatchTolerance())
    second = match_trips(con, "staging.dispatch", "staging.courier", MatchTolerance())
    named = match_trips(
        con, "staging.dispatch", "staging.courier", MatchTolerance(), result_table="my pairs"
    )
    assert named == "my pairs"
    assert first != second  # default names never collide
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {first, second, "my pairs"} <= tables
    assert not {t for t in tables if t.startswith("_match_")}
    # Running again into the same name replaces it.
    match_trips(con, "staging.dispatch", "staging.courier", result_table="my pairs")
    assert con.execute('SELECT count(*) FROM "my pairs"').fetchone() == (1,)


def test_a_permanent_table_named_like_a_work_table_is_untouched(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute("CREATE TABLE _match_candidates AS SELECT 42 AS keep_me")
    run(con, [("D1", T0, WHITE_HOUSE, CAPITOL)], [("C1", T0, WHITE_HOUSE, CAPITOL)])
    assert con.execute("SELECT keep_me FROM main._match_candidates").fetchall() == [(42,)]


def explain_candidates(con: duckdb.DuckDBPyConnection, explain: str) -> str:
    """DuckDB's plan of the candidates statement over two empty trip tables."""
    load(con, "staging.dispatch", [])
    load(con, "staging.courier", [])
    statements = _statements()
    con.execute(statements["haversine_macro"])
    params = {
        "left_table": "staging.dispatch",
        "right_table": "staging.courier",
        "max_time_gap_s": 120.0,
        "max_distance_m": 100.0,
    }
    return con.execute(f"{explain} {statements['candidates']}", params).fetchall()[0][1]


def test_candidates_use_a_hash_band_join_not_a_cross_join(
    con: duckdb.DuckDBPyConnection,
) -> None:
    plan = explain_candidates(con, "EXPLAIN")
    assert "Hash Join" in plan
    assert "bucket = bucket" in plan
    for slow in ("Cross Product", "Nested Loop", "Blockwise", "Piecewise"):
        assert slow not in plan


def test_the_join_tests_time_and_latitude_before_any_haversine(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """The trigonometry runs on the pairs that pass the cheap tests only: in the join's own
    conditions DuckDB ran it first, on every pair of a bucket (5.6 against 3.3 CPU s at
    1 M trips a side)."""
    nodes = json.loads(explain_candidates(con, "EXPLAIN (FORMAT JSON)"))
    joins = []
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("children", []))
        if node["name"] == "HASH_JOIN":
            joins.append(" ".join(node["extra_info"]["Conditions"]))
    assert len(joins) == 1
    assert "abs((t - t)) <= 120.0" in joins[0]
    assert "asin" not in joins[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_time_gap_s": 0},
        {"max_distance_m": -1},
        {"max_distance_m": float("nan")},
        {"max_time_gap_s": float("inf")},
    ],
)
def test_bad_tolerances_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        MatchTolerance(**kwargs)


def test_a_wider_tolerance_finds_more(con: duckdb.DuckDBPyConnection) -> None:
    left = [("D1", T0, WHITE_HOUSE, CAPITOL)]
    right = [("C1", T0 + timedelta(seconds=200), north(WHITE_HOUSE, 150), CAPITOL)]
    assert run(con, left, right) == []
    wide = MatchTolerance(max_time_gap_s=300, max_distance_m=200)
    assert pairs(run(con, left, right, wide)) == {("D1", "C1")}
