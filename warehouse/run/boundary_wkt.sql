-- The polygons of the boundary an earlier run published ({table}: a checked table name).
SELECT wkt FROM {table}
