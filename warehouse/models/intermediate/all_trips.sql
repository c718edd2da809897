-- materialized: view
-- Every staged row of every trip source, in one shape, before matching. Control totals count
-- from here: each row is in curated.trips, excluded (excluded_by), or merged into its match.
SELECT * FROM intermediate.taxi_trips
UNION ALL BY NAME
SELECT * FROM intermediate.dispatch_trips
UNION ALL BY NAME
SELECT * FROM intermediate.courier_trips
