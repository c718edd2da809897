-- The warehouse's fixed tables: the run log, the file manifest, the quarantine, check results
-- and cross-silo matches. Every statement is idempotent: this runs at the start of every command
-- that writes.
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS curated;
CREATE SCHEMA IF NOT EXISTS quality;

CREATE TABLE IF NOT EXISTS quality.runs (
    run_id           VARCHAR NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    status           VARCHAR NOT NULL,  -- running, published, partial, audit_failed, crashed
    exit_code        INTEGER,
    published        BOOLEAN DEFAULT false,
    files_seen       INTEGER,
    files_loaded     INTEGER,
    files_skipped    INTEGER,
    files_failed     INTEGER,
    rows_read        BIGINT,
    rows_staged      BIGINT,
    rows_flagged     BIGINT,
    rows_quarantined BIGINT,
    message          VARCHAR,
    config_path      VARCHAR,
    data_root        VARCHAR,
    models_sha       VARCHAR  -- the SQL models a published run built the curated layer with
);

-- One row per file a run handled (loaded, replaced, failed, audit_failed). The current version
-- of a file is its newest row with status loaded: see quality.manifest.
CREATE TABLE IF NOT EXISTS quality.files (
    run_id           VARCHAR NOT NULL,
    source           VARCHAR NOT NULL,
    path             VARCHAR NOT NULL,
    layout           VARCHAR,
    size_bytes       BIGINT,
    sha256           VARCHAR,
    fingerprint      VARCHAR,
    rows_read        BIGINT,
    rows_staged      BIGINT,
    rows_flagged     BIGINT,
    rows_quarantined BIGINT,
    blank_lines      BIGINT,
    control_total    BIGINT,
    status           VARCHAR NOT NULL,
    reason           VARCHAR,
    recorded_at      TIMESTAMPTZ NOT NULL,
    mtime_ns         BIGINT  -- of a plain file: unchanged size and mtime, no new sha256
);
-- Warehouses created before mtime_ns was recorded.
ALTER TABLE quality.files ADD COLUMN IF NOT EXISTS mtime_ns BIGINT;

CREATE TABLE IF NOT EXISTS quality.quarantine (
    run_id  VARCHAR NOT NULL,
    source  VARCHAR NOT NULL,
    file    VARCHAR NOT NULL,
    line    BIGINT,
    reasons VARCHAR[] NOT NULL,
    raw     JSON,
    duplicate_of VARCHAR  -- of a duplicate_key row: the other file that holds its key
);
-- Warehouses created before keys were unique across a source's files.
ALTER TABLE quality.quarantine ADD COLUMN IF NOT EXISTS duplicate_of VARCHAR;

CREATE TABLE IF NOT EXISTS quality.checks (
    run_id         VARCHAR NOT NULL,
    source         VARCHAR NOT NULL,
    suite          VARCHAR NOT NULL,
    expectation    VARCHAR NOT NULL,
    severity       VARCHAR NOT NULL,
    success        BOOLEAN NOT NULL,
    observed_value VARCHAR,
    details        JSON
);

CREATE TABLE IF NOT EXISTS quality.matches (
    run_id         VARCHAR NOT NULL,
    left_source    VARCHAR NOT NULL,
    left_id        VARCHAR NOT NULL,
    right_source   VARCHAR NOT NULL,
    right_id       VARCHAR NOT NULL,
    time_gap_s     DOUBLE,
    distance_gap_m DOUBLE,
    score          DOUBLE
);

CREATE OR REPLACE VIEW quality.manifest AS
SELECT * EXCLUDE (rn) FROM (
    SELECT f.*, row_number() OVER (PARTITION BY path ORDER BY recorded_at DESC) AS rn
    FROM quality.files AS f
    WHERE status = 'loaded'
)
WHERE rn = 1;

-- Control totals per run and source, from the files to curated.trips (see
-- warehouse/audit/control_totals.sql for what each column counts).
CREATE TABLE IF NOT EXISTS quality.control_totals (
    run_id               VARCHAR NOT NULL,
    source               VARCHAR NOT NULL,
    rows_read            BIGINT,
    trailer_rows         BIGINT,
    rows_quarantined     BIGINT,
    rows_staged          BIGINT,
    rows_in_staging      BIGINT,
    rows_excluded        BIGINT,
    excluded_causes      VARCHAR,
    rows_merged          BIGINT,
    rows_curated         BIGINT,
    fare_staged_usd      DOUBLE,
    fare_excluded_usd    DOUBLE,
    fare_merged_usd      DOUBLE,
    fare_curated_usd     DOUBLE,
    unexplained_read     BIGINT,
    unexplained_staging  BIGINT,
    unexplained_rows     BIGINT,
    unexplained_fare_usd DOUBLE,
    unexplained_quarantine BIGINT
);
-- Warehouses created before the quarantine was reconciled row by row.
ALTER TABLE quality.control_totals ADD COLUMN IF NOT EXISTS unexplained_quarantine BIGINT;
