-- The Spark engine's fixed tables: the same names and columns as warehouse/ddl/quality.sql
-- (DuckDB's), as Parquet tables in Spark's catalog. Run by etl.engine.spark.engine at start.

-- name: runs
CREATE TABLE IF NOT EXISTS quality.runs (
    run_id STRING, started_at TIMESTAMP, finished_at TIMESTAMP, status STRING,
    exit_code INT, published BOOLEAN, files_seen INT, files_loaded INT, files_skipped INT,
    files_failed INT, rows_read BIGINT, rows_staged BIGINT, rows_flagged BIGINT,
    rows_quarantined BIGINT, message STRING, config_path STRING, data_root STRING,
    models_sha STRING
) USING parquet

-- name: files
CREATE TABLE IF NOT EXISTS quality.files (
    run_id STRING, source STRING, path STRING, layout STRING, size_bytes BIGINT,
    sha256 STRING, fingerprint STRING, rows_read BIGINT, rows_staged BIGINT,
    rows_flagged BIGINT, rows_quarantined BIGINT, blank_lines BIGINT, control_total BIGINT,
    status STRING, reason STRING, recorded_at TIMESTAMP, mtime_ns BIGINT
) USING parquet

-- name: quarantine
CREATE TABLE IF NOT EXISTS quality.quarantine (
    run_id STRING, source STRING, file STRING, line BIGINT, reasons ARRAY<STRING>,
    raw STRING, duplicate_of STRING
) USING parquet

-- name: checks
CREATE TABLE IF NOT EXISTS quality.checks (
    run_id STRING, source STRING, suite STRING, expectation STRING, severity STRING,
    success BOOLEAN, observed_value STRING, details STRING
) USING parquet

-- name: matches
CREATE TABLE IF NOT EXISTS quality.matches (
    run_id STRING, left_source STRING, left_id STRING, right_source STRING,
    right_id STRING, time_gap_s DOUBLE, distance_gap_m DOUBLE, score DOUBLE
) USING parquet

-- name: control_totals
CREATE TABLE IF NOT EXISTS quality.control_totals (
    run_id STRING, source STRING, rows_read BIGINT, trailer_rows BIGINT,
    rows_quarantined BIGINT, rows_staged BIGINT, rows_in_staging BIGINT,
    rows_excluded BIGINT, excluded_causes STRING, rows_merged BIGINT, rows_curated BIGINT,
    fare_staged_usd DOUBLE, fare_excluded_usd DOUBLE, fare_merged_usd DOUBLE,
    fare_curated_usd DOUBLE, unexplained_read BIGINT, unexplained_staging BIGINT,
    unexplained_rows BIGINT, unexplained_fare_usd DOUBLE, unexplained_quarantine BIGINT
) USING parquet

-- name: manifest
CREATE OR REPLACE VIEW quality.manifest AS
SELECT * FROM quality.files AS f
WHERE status = 'loaded'
  AND NOT EXISTS (
      SELECT 1 FROM quality.files AS g
      WHERE g.status = 'loaded' AND g.path = f.path AND g.recorded_at > f.recorded_at
  )
