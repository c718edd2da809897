-- The usual size of one file of a source, from the files earlier runs loaded: the median of
-- rows staged per file. A batch of N files is expected to hold about N times that.
SELECT median(rows_staged) AS rows_per_file, count(*) AS files
FROM quality.manifest
WHERE source = $source AND run_id <> $run_id
