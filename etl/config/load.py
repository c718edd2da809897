"""Read `sources.yaml` into a `Config`, or fail with one line naming the key and its line."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from etl.config.checks import check_condition
from etl.config.spec import Config
from etl.config.yaml_doc import YamlLimits, parse, read_limited
from etl.errors import ConfigError, YamlError


def load_config(path: Path, formats: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a sources file.

    `formats` are the file formats a source may declare, each with the entity its rows are
    (`etl.readers.formats()`: the reader registry, which sits above this layer); without it,
    a format is not checked here.

    Raises ConfigError whose message reads like `sources.yaml:14: sources.dc_taxi.delimiter:
    a delimiter is one character`.
    """
    try:
        limits = YamlLimits.from_env()
        node, data = parse(read_limited(path, limits.max_bytes), limits)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except YamlError as exc:
        where = f"{path}:{exc.line}" if exc.line else str(path)
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'sources' key")
    try:
        config = Config.model_validate(
            data, context={"config_dir": path.parent, "formats": formats}
        )
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, _key_lines(node))) from None
    for name, source in config.sources.items():
        try:  # the condition names the mapped columns, so it is checked with them
            if source.trips_where is not None:
                check_condition(source.trips_where, set(source.columns))
        except ValueError as exc:
            loc = ("sources", name, "trips_where")
            raise ConfigError(_at(path, loc, str(exc), _key_lines(node))) from None
    return config


def _describe(exc: ValidationError, path: Path, lines: dict[tuple, int]) -> str:
    """The first validation error as `file:line: dotted.key: message (+N more)`.

    An unknown key comes first: a typo (`fromat:`) also makes the key it meant "missing", and
    the typo is the cause.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    loc = _loc(error)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(loc, errors)
    elif error["type"] == "missing":
        message = "required key is missing"
    more = len(errors) - 1
    return _at(path, loc, message + (f" (+{more} more)" if more else ""), lines)


def _at(path: Path, loc: tuple, message: str, lines: dict[tuple, int]) -> str:
    """`file:line: dotted.key: message`, the line of the key or of its nearest parent."""
    key = ".".join(str(part) for part in loc) or "(top level)"
    return f"{path}:{_nearest_line(loc, lines)}: {key}: {message}"


def _loc(error: Any) -> tuple:
    return tuple(part for part in error["loc"] if not str(part).startswith("function-after"))


def _did_you_mean(loc: tuple, errors: list[Any]) -> str:
    """` (did you mean 'format'?)` when a required key beside the unknown one is missing."""
    missing = [
        str(_loc(e)[-1]) for e in errors if e["type"] == "missing" and _loc(e)[:-1] == loc[:-1]
    ]
    close = difflib.get_close_matches(str(loc[-1]), missing, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _nearest_line(loc: tuple, lines: dict[tuple, int]) -> int:
    """The line of the deepest part of `loc` that exists in the file (a missing key has none)."""
    for depth in range(len(loc), -1, -1):
        if loc[:depth] in lines:
            return lines[loc[:depth]]
    return 1


def _key_lines(node: Any, prefix: tuple = ()) -> dict[tuple, int]:
    """Map every key path in the YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {prefix: (node.start_mark.line + 1) if node else 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            lines.update(_key_lines(value_node, path))
            lines[path] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_key_lines(item, (*prefix, index)))
    return lines
