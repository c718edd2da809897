"""The names every layer shares for what the load adds to rows: lineage columns, the label
columns that say why a row was quarantined or flagged, and the reasons staging itself gives.

One home, at the bottom of the layers (docs/architecture.md): a reader, the mapping, the row
checks and an engine all say `_line` or `duplicate_key` through these names, and none of them
imports another layer for it. Reasons a row-check spec gives are named in its YAML (`schemas/`).
"""

# Lineage: where a staged or quarantined row came from (the warehouse contract's columns).
RUN_ID = "_run_id"  # the run that loaded it
FILE = "_file"  # the file, relative to the data root; `ZIP!MEMBER` for a zip member
LINE = "_line"  # the line of a text file (the header is line 1); a Parquet row's 1-based ordinal

# Labels: lists of names a row carries through staging and checking.
READ_ERRORS = "_read_errors"  # what a reader found wrong with a row before mapping
PARSE_ERRORS = "_parse_errors"  # `unparseable:<field>` for each value mapping could not convert
REASONS = "_reasons"  # why a row is rejected: it goes to quarantine with all of them
FLAGS = "_flags"  # what is odd about a staged row: it stays, flagged

# Reasons and flags staging gives on its own.
DUPLICATE_KEY = "duplicate_key"  # a key another row of the source already has
NOT_A_TRIP = "not_a_trip"  # a row a source's `trips_where` leaves out: staged, flagged
