-- Spark twin of warehouse/audit/row_count_history.sql: the median rows staged per file of
-- the source in earlier runs, and how many files that median is over.
SELECT median(rows_staged) AS rows_per_file, count(*) AS files
FROM {schema}.manifest
WHERE source = :source AND run_id <> :run_id
