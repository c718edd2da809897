"""The typed shape of `sources.yaml`.

Every model forbids unknown keys, so a typo (`delimeter:`) is an error that names the key instead
of a setting silently ignored. The canonical units are seconds, miles and dollars; a column
declares the unit its source uses and staging converts.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from etl.config.checks import check_glob, check_relative, check_zone, compile_regex

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# Factor that turns one source unit into the canonical unit of its kind.
UNIT_FACTORS: dict[str, float] = {
    "seconds": 1.0,
    "minutes": 60.0,
    "hours": 3600.0,
    "miles": 1.0,
    "km": 0.621371192237334,
    "meters": 0.000621371192237334,
    "dollars": 1.0,
    "cents": 0.01,
}

ColumnType = Literal["string", "integer", "float", "money", "boolean", "timestamp"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Column(Strict):
    """How one canonical field is read from a source column."""

    source: str = Field(alias="from", description="header name (or dotted JSON path)")
    type: ColumnType = "string"
    unit: Literal[tuple(UNIT_FACTORS)] | None = None  # type: ignore[valid-type]
    format: str | None = Field(None, description="strptime format of a timestamp")
    timezone: str | None = Field(
        None, description="zone of a naive local timestamp; None when the text carries its offset"
    )
    # The DST policy of local timestamps: the repeated autumn hour and the skipped spring hour.
    ambiguous: Literal["earliest", "latest", "reject"] = "earliest"
    nonexistent: Literal["shift_forward", "reject"] = "shift_forward"
    true_values: tuple[str, ...] = ("Y", "y", "true", "True", "1")
    required: bool = True

    _zone = field_validator("timezone")(check_zone)

    @model_validator(mode="after")
    def _unit_needs_number(self) -> Column:
        if self.unit and self.type not in ("integer", "float", "money"):
            raise ValueError(f"unit {self.unit!r} needs a numeric type, not {self.type!r}")
        return self


class ColumnOverride(Strict):
    """A layout's change to a column: only the keys it names."""

    source: str | None = Field(None, alias="from")
    unit: Literal[tuple(UNIT_FACTORS)] | None = None  # type: ignore[valid-type]
    format: str | None = None
    timezone: str | None = None
    required: bool | None = None

    _zone = field_validator("timezone")(check_zone)


class Layout(Strict):
    """A variant of a source's files, chosen by file or zip-member name."""

    name: str
    match: tuple[str, ...] = Field(description="glob patterns on the member (or file) name")
    delimiter: str | None = None
    columns: dict[str, ColumnOverride] = {}


class Source(Strict):
    """One silo: where its files are, how to read them, how its columns map."""

    format: str = Field(description="a reader's format name (etl.readers.READERS)")
    entity: Literal["trip", "boundary"] = "trip"
    files: tuple[str, ...] = Field(
        description="paths or globs under the data root, or http(s) URLs", min_length=1
    )
    members: tuple[str, ...] = Field(
        ("*",), description="glob patterns of the zip members to read; others are skipped"
    )
    delimiter: str = ","
    encoding: Literal["utf-8", "latin-1", "cp1252"] = "utf-8"
    null_tokens: tuple[str, ...] = ("",)
    trailer: str | None = Field(
        None, description="regex of a last-line control total, one group capturing the count"
    )
    key: tuple[str, ...] = ("source_record_id",)
    key_scope: str | None = Field(
        None,
        description="regex on a file's path whose first group names what the key is unique "
        "within (a release); without it, the key is unique across all the source's files",
    )
    trips_where: str | None = Field(
        None, description="SQL condition on staged fields: rows that are trips (others: not_a_trip)"
    )
    latest_version: str | None = Field(
        None,
        description="the key field that numbers a record's versions: the newest is the trip, "
        "older ones are excluded from curated.trips as superseded_version",
    )
    time_precision: Literal["second", "hour"] = Field(
        "second", description="how precise the source's times are (DFHV rounds to the hour)"
    )
    location_precision: Literal["exact", "block"] = Field(
        "exact", description="exact GPS points, or points snapped to a block (DFHV)"
    )
    repairs: tuple[Literal["swapped_coordinates"], ...] = ()
    row_checks: str | None = Field(None, description="row-check spec under schemas/")
    suite: str | None = Field(None, description="batch suite under schemas/suites/")
    layouts: tuple[Layout, ...] = ()
    columns: dict[str, Column] = {}

    @field_validator("format")
    @classmethod
    def _known_format(cls, name: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("formats")
        if known is not None and name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown format {name!r} ({hint}known: {', '.join(sorted(known))})")
        return name

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("a delimiter is one character")
        return value

    @field_validator("files")
    @classmethod
    def _inside_data_root(cls, files: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in files:
            if not pattern.startswith(("http://", "https://")):
                check_glob(pattern)
        return files

    @field_validator("trailer")
    @classmethod
    def _trailer_counts(cls, pattern: str | None) -> str | None:
        if pattern is not None and compile_regex(pattern).groups < 1:
            raise ValueError(f"trailer {pattern!r} needs a group capturing the row count")
        return pattern

    @field_validator("row_checks", "suite")
    @classmethod
    def _file_exists(cls, name: str | None, info: ValidationInfo) -> str | None:
        config_dir = (info.context or {}).get("config_dir")
        if name is not None and config_dir is not None:
            check_relative(name, "the config's folder")
            if not (config_dir / name).is_file():
                raise ValueError(f"no such file: {config_dir / name}")
        return name

    @field_validator("key_scope")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is not None and compile_regex(value).groups < 1:
            raise ValueError("the scope is the regex's first group: it has none")
        return value

    @model_validator(mode="after")
    def _overrides_name_columns(self) -> Source:
        for layout in self.layouts:
            unknown = set(layout.columns) - set(self.columns)
            if unknown:
                raise ValueError(
                    f"layout {layout.name!r} overrides unknown column(s) {sorted(unknown)}"
                )
        if self.entity == "trip" and not self.columns:
            raise ValueError("a trip source maps at least one column")
        if self.latest_version is not None and (
            self.latest_version not in self.key or len(self.key) < 2
        ):
            raise ValueError(
                f"latest_version {self.latest_version!r} is one field of the key, beside "
                f"the record's id (key: {list(self.key)})"
            )
        return self

    @model_validator(mode="after")
    def _format_reads_entity(self, info: ValidationInfo) -> Source:
        entity = ((info.context or {}).get("formats") or {}).get(self.format, self.entity)
        if entity != self.entity:
            raise ValueError(f"format {self.format!r} reads {entity} rows, not {self.entity}")
        return self

    def layout_for(self, name: str) -> Layout | None:
        """The first layout whose patterns match a file or member name."""
        from fnmatch import fnmatch

        return next(
            (lay for lay in self.layouts if any(fnmatch(name, pat) for pat in lay.match)), None
        )

    def columns_for(self, layout: Layout | None) -> dict[str, Column]:
        """The column mapping with the layout's overrides applied."""
        if layout is None:
            return dict(self.columns)
        merged = {}
        for field, column in self.columns.items():
            override = layout.columns.get(field)
            if override is None:
                merged[field] = column
            else:
                changes = override.model_dump(exclude_none=True)
                merged[field] = column.model_copy(update=changes)
        return merged


class Match(Strict):
    """Cross-silo matching: the same physical trip logged by two systems."""

    left: str
    right: str
    max_time_gap_s: float = Field(120.0, gt=0)
    max_distance_m: float = Field(100.0, gt=0)
    keep: Literal["left", "right"] = Field(
        "left", description="which record of a matched pair curated.trips keeps"
    )


class Integrate(Strict):
    matches: tuple[Match, ...] = ()


class Limits(Strict):
    """What one input file may cost. A file past a limit fails alone, with the limit named;
    the defaults are far above any real DFHV or company file and keep a hostile one under
    about 1 GB of memory."""

    max_line_bytes: int = Field(1 << 20, gt=0, description="longest line of a text file")
    max_inflated_bytes: int = Field(
        8 << 30, gt=0, description="largest zip member or gzip file, uncompressed"
    )
    max_inflation_ratio: float = Field(
        100.0, gt=1, description="uncompressed / compressed size, over 1 MiB uncompressed"
    )
    download_deadline_s: float = Field(600.0, gt=0, description="longest one download may take")


class Config(Strict):
    """The whole `sources.yaml`."""

    version: Literal[1] = 1
    sources: dict[str, Source]
    integrate: Integrate = Integrate()
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _matches_name_sources(self) -> Config:
        for match in self.integrate.matches:
            for side in (match.left, match.right):
                if side not in self.sources:
                    raise ValueError(f"integrate.matches names unknown source {side!r}")
        return self

    @field_validator("sources")
    @classmethod
    def _plain_names(cls, sources: dict[str, Source]) -> dict[str, Source]:
        for name in sources:
            if not IDENTIFIER.match(name):
                raise ValueError(
                    f"source name {name!r} is not a plain identifier (lower case, digits, _)"
                )
        return sources
