"""Checks of single config values that the run would otherwise meet only after loading files.

Each check asks the library that will use the value later (polars for time zones and SQL
conditions, `re` for trailers), so that what passes here also works there. Each raises
ValueError with a message for the user; pydantic puts the key and the line in front.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath

import polars as pl


def check_relative(pattern: str, root: str) -> str:
    """A path or glob that stays under `root`: not absolute, no `..` part."""
    if PurePosixPath(pattern).is_absolute() or PureWindowsPath(pattern).drive:
        raise ValueError(f"{pattern!r} is absolute: paths and globs are relative to {root}")
    if pattern.startswith("~") or ".." in re.split(r"[\\/]", pattern):
        raise ValueError(f"{pattern!r} leaves {root}: paths and globs may not use '..' or '~'")
    return pattern


def check_glob(pattern: str) -> str:
    """A glob of files under the data root that pathlib, which expands it, accepts."""
    check_relative(pattern, "the data root")
    if PurePosixPath(pattern) == PurePosixPath("."):  # '' and '.' are the root, not its files
        raise ValueError(f"{pattern!r} names no file under the data root")
    try:  # pathlib checks a pattern only when the glob is iterated: here, over no folder
        next(Path("/nonexistent/etl-config-check").glob(pattern), None)
    except ValueError as exc:
        raise ValueError(f"{pattern!r} is not a valid glob: {exc}") from None
    return pattern


def compile_regex(pattern: str) -> re.Pattern:
    """The compiled pattern, or a ValueError that says why it is not one."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def check_zone(zone: str | None) -> str | None:
    """An IANA time zone name that polars, which converts the times, knows."""
    if zone is None:
        return zone
    try:
        pl.Series([datetime(2020, 1, 1)]).dt.replace_time_zone(zone)
    except pl.exceptions.PolarsError:
        raise ValueError(f"unknown time zone {zone!r} (an IANA name: America/New_York)") from None
    return zone


def check_condition(condition: str, columns: set[str]) -> str:
    """A SQL condition that polars parses and that names only the given columns."""
    try:
        names = set(pl.sql_expr(condition).meta.root_names())
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{condition!r} is not a SQL condition: {first}") from None
    unknown = names - columns
    if unknown:
        raise ValueError(
            f"names unknown column(s) {sorted(unknown)}; it may use the mapped "
            f"columns: {', '.join(sorted(columns))}"
        )
    return condition
