-- The staged rows of every run that never published. {table}: a checked staging table name.
DELETE FROM {table} WHERE _run_id NOT IN (SELECT run_id FROM quality.runs WHERE published)
