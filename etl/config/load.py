"""Read `sources.yaml` into a `Config`, or fail with one line naming the key and its line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from etl.config.models import Config


class ConfigError(Exception):
    """A config that cannot be used; the message is one line meant for the user."""


def load_config(path: Path) -> Config:
    """Parse and validate a sources file.

    Raises ConfigError whose message reads like `sources.yaml:14: sources.dc_taxi.delimiter:
    a delimiter is one character`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'sources' key")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, _key_lines(node))) from None


def _describe(exc: ValidationError, path: Path, lines: dict[tuple, int]) -> str:
    """The first validation error as `file:line: dotted.key: message (+N more)`.

    An unknown key comes first: a typo'd key (`fromat:`) also makes the key it was meant to be
    missing, and the unknown key is the cause.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    loc = _loc(error)
    line = _nearest_line(loc, lines)
    key = ".".join(str(part) for part in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(loc, errors)
    elif error["type"] == "missing":
        message = "required key is missing"
    more = len(exc.errors()) - 1
    suffix = f" (+{more} more)" if more else ""
    return f"{path}:{line}: {key}: {message}{suffix}"


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
