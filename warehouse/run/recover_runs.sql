-- A run still `running` that never published died midway (etl.engine.duckdb.engine).
-- A run that published keeps everything, whatever its status says: its publish committed.
UPDATE quality.runs SET status = 'crashed' WHERE status = 'running' AND NOT published
