-- A full refresh: every row of earlier runs leaves the table ({table}, its run column {run}).
DELETE FROM {table} WHERE {run} <> ?
