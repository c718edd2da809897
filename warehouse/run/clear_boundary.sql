-- A new boundary replaces the old one ({table}: a checked staging table name).
DELETE FROM {table}
