"""DC reference data: the boundary polygon, the holiday calendar, the region the models know."""
