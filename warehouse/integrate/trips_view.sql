-- curated.trips in the DuckDB warehouse: a view, not a second copy of every staged row.
--
-- etl/engine/duckdb/trips_view.py fills these parts in from the model
-- warehouse/models/curated/trips.sql and the config:
--   intermediate.stored_trips   the model's rows of the sources it must compute (matched or
--                  versioned ones), stored: a table, built and updated as the model says
--   curated.trips  those rows (generated columns first, as the model's table had them), and the rows of every pass-through source (neither matched nor
--                  versioned: its staged rows are trips as they are) read from its staging
--                  table, of published runs only; the model's columns a pass-through row does
--                  not have (the match's) are NULL, its generated columns computed on read.
-- Placeholders in braces are filled with checked identifiers, quoted literals and the SQL of
-- the model and of the generated intermediate views.


-- name: stored
SELECT * FROM (
{model}
) WHERE source NOT IN ({pass_through})


-- name: view
SELECT {generated}*
FROM (
    SELECT * FROM intermediate.stored_trips{branches}
)


-- name: branch
-- A pass-through source's trips; BY NAME fills the model's other columns with NULL.
    UNION ALL BY NAME
    SELECT * EXCLUDE (excluded_by) FROM (
{source_view}
    ) WHERE excluded_by IS NULL


-- name: published
-- Rows of a run are trips once it published: a run is marked published in the transaction
-- that builds, reconciles and publishes it, so a reader never sees a run half-way.
WHERE _run_id IN (SELECT run_id FROM quality.runs WHERE published)


-- name: add_text_id
-- A staging table from before record ids were staged as text: the column, filled in.
-- {table}: a checked staging table name; {record_id}: sql_models.record_id's SQL.
ALTER TABLE {table} ADD COLUMN "_record_id" VARCHAR USING COMPRESSION uncompressed;
UPDATE {table} SET "_record_id" = {record_id};
