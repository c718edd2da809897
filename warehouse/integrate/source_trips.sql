-- The intermediate view of one trip source: its staged rows in the shape of curated.trips.
--
-- etl/engine/duckdb/sql_models.py generates `intermediate.<source>_trips` from this template
-- for every trip source of the config, and `intermediate.all_trips` as their union, from the
-- source's mapping and its declarative keys in sources.yaml (a new trip source needs no SQL):
--   {measures}, {places}  each curated field the source stages, else a typed NULL (a total
--                   is the fare when the source has none; an airport flag is false)
--   {record_id}     the record id as text; with `key_scope`, prefixed with the scope's first
--                   group on the file's path (an OBJECTID is unique within its release only:
--                   2016-123456)
--   {time_precision}, {location_precision}  the source's keys of those names
--   {excluded_by}   why a staged row is not a trip of curated.trips: `trips_where` failed
--                   (flagged not_a_trip at staging), or `latest_version` names a newer
--                   version of the record (superseded_version); NULL: it is a trip
--   {versions}      empty, or the join of a versioned source's superseded rows
--   {where}         empty, or a WHERE clause on staging (DuckDB's curated.trips view reads
--                   the rows of published runs only: etl/engine/duckdb/trips_view.py)
-- Placeholders in braces are filled with checked identifiers and quoted literals.


-- name: view
SELECT
    {source_literal} AS source,
    {record_id} AS source_record_id,
    {measures},
    {time_precision}::curated.time_precision AS time_precision,
    {location_precision}::curated.location_precision AS location_precision,
    {places},
    _flags AS flags,
    {excluded_by} AS excluded_by,
    _file,
    _line
FROM staging.{source}{versions}{where}


-- name: scoped_record_id
regexp_extract(_file, {scope}, 1) || '-' || {record_id}


-- name: not_a_trip
WHEN list_contains(_flags, 'not_a_trip') THEN 'not_a_trip'


-- name: superseded
-- The staged rows of a versioned source that a newer version of their record supersedes
-- ({record}: the key but the version; {version}: the version field), a table built once a
-- build: the window over every staged row cost ~0.6 CPU s at 1.3 M rows each time the view was
-- read, and matching, curated.trips and the control totals each read it.
SELECT _file AS superseded_file, _line AS superseded_line
FROM (
    SELECT _file, _line, row_number() OVER (
        PARTITION BY {record} ORDER BY {version} DESC, _file DESC, _line DESC
    ) AS version_rank
    FROM staging.{source}
)
WHERE version_rank > 1


-- name: versions
LEFT JOIN {superseded} ON _file = superseded_file AND _line = superseded_line


-- name: superseded_version
WHEN superseded_line IS NOT NULL THEN 'superseded_version'


-- name: all_trips
-- Every staged row of every trip source, in one shape, before matching. Control totals count
-- from here: each row is in curated.trips, excluded (excluded_by), or merged into its match.
{union}


-- name: no_trips
-- A config without trip sources: no rows, in the shape of a source's view.
SELECT
    NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id,
    NULL::TIMESTAMPTZ AS pickup_at, NULL::TIMESTAMPTZ AS dropoff_at,
    NULL::DOUBLE AS pickup_lat, NULL::DOUBLE AS pickup_lon,
    NULL::DOUBLE AS dropoff_lat, NULL::DOUBLE AS dropoff_lon,
    NULL::DOUBLE AS distance_miles, NULL::DOUBLE AS duration_s,
    NULL::DOUBLE AS fare_usd, NULL::DOUBLE AS total_usd,
    NULL::curated.time_precision AS time_precision,
    NULL::curated.location_precision AS location_precision,
    NULL::BOOLEAN AS airport, NULL::BOOLEAN AS pickup_in_dc, NULL::BOOLEAN AS dropoff_in_dc,
    NULL::VARCHAR[] AS flags, NULL::VARCHAR AS excluded_by,
    NULL::VARCHAR AS _file, NULL::BIGINT AS _line
WHERE false
