-- The DuckDB file of views the read-only commands (`etl status`, `sql`, `report`, `train`) open
-- on a Spark-built warehouse: each published table a view over its version's Parquet files,
-- written by etl.engine.spark.readers. Placeholders in braces are filled there.

-- name: table_view
CREATE VIEW {name} AS SELECT * FROM read_parquet('{files}')

-- name: manifest
CREATE VIEW quality.manifest AS
SELECT * EXCLUDE (rn) FROM (
    SELECT f.*, row_number() OVER (PARTITION BY path ORDER BY recorded_at DESC) AS rn
    FROM quality.files AS f
    WHERE status = 'loaded'
)
WHERE rn = 1
