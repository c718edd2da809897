-- Types of the curated layer. Runs after quality.sql (files run in name order), which creates
-- the schemas. How precise a trip's times and places are takes one of two values each
-- (docs/architecture.md, "Warehouse tables"): as ENUMs they are stored in a byte a row, where a text a row that repeats one
-- word cost as much to write as a column of numbers (0.2 CPU s each at 5 M trips).
CREATE TYPE IF NOT EXISTS curated.time_precision AS ENUM ('hour', 'second');
CREATE TYPE IF NOT EXISTS curated.location_precision AS ENUM ('block', 'exact');
