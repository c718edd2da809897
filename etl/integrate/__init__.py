"""Integration: bring the silos together.

* :mod:`etl.integrate.match`: find the same physical trip in two silos (band join + greedy
  one-to-one resolution in DuckDB SQL, ``sql/match_trips.sql``).
* :mod:`etl.integrate.geo`: load the DC boundary and test points against it (shapely).
* :mod:`etl.integrate.calendar`: the date dimension with DC public holidays.

Import the submodules directly; this package deliberately imports nothing so that using one
of them does not pay for the others' dependencies.
"""
