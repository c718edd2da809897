-- Spark twin of warehouse/audit/row_count_history.sql: the median rows staged per file of
-- each source in earlier runs, and how many files that median is over; every source in one
-- query (one Spark job, not one a source).
SELECT source, median(rows_staged) AS rows_per_file, count(*) AS files
FROM {schema}.manifest
WHERE run_id <> :run_id
GROUP BY source
