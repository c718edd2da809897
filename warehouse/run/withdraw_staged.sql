-- A run that failed its audit: its rows leave staging. {table}: a checked staging table name.
DELETE FROM {table} WHERE _run_id = ?
