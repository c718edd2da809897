-- Spark twin of warehouse/audit/batch_view.sql: the batch a run's suites check, one source's
-- rows of this run that are trips, with the key the suite tests for uniqueness (a struct, as
-- DuckDB's row(): never null, compared field by field). Identifiers in braces are filled,
-- quoted, by etl.engine.spark.suites; the run id is a named parameter.
SELECT
    *,
    struct(split_part(_file, '!', 1), {key_columns}) AS _record_key
FROM {table}
WHERE _run_id = :run_id
  AND NOT array_contains(_flags, 'not_a_trip')
