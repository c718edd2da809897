-- The rows of earlier versions of the files a run loaded leave the table ({table}, its run and
-- file columns {run}, {file}): a file's rows are those of its current version.
DELETE FROM {table} WHERE {run} <> ? AND {file} IN (SELECT unnest(?::VARCHAR[]))
