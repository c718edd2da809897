"""The errors a user sees: one tree, one root, each class with the exit code it ends a command with.

Every error meant for the person running `etl` derives from :class:`EtlError`; its message is
one line that says what is wrong and where (a file and line, a key, a model), and the command
line catches the root once (`etl.cli.main`), prints `error: <message>` and exits with the
error's `exit_code`. Anything else that reaches the top is a bug or a fault of the machine
(`etl.cli.errors`). The codes are the CLI contract's: 2 bad usage, bad config or unreadable
input; 1 the data failed an `error` audit and nothing was published.

    EtlError                    exit 2
    ├── ConfigError             sources.yaml, a schema or suite it names, a project folder
    │   ├── ProjectError        `etl init`: a folder that cannot be written
    │   └── YamlError           a YAML document refused before validation (it has a line)
    ├── SourceError             a file or container that cannot be read
    ├── RowSpecError            a row-check spec that cannot be compiled
    ├── RowCheckError           a batch the row checks cannot run on at all
    ├── WarehouseError          the warehouse file cannot be opened as asked
    ├── SqlModelError           a SQL model under warehouse/models/ that cannot be built
    ├── ReconciliationError     exit 1: control totals do not add up, nothing is published
    ├── QueryError              `etl sql` and the reports: a query that cannot run
    └── MlModelError            `etl train`, `predict`, `serve`: the ETA and fare models

This module is at the bottom of the layers (docs/architecture.md): every layer may import it,
and it imports nothing of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import polars as pl

# What a command exits with (docs/architecture.md, "Errors and exit codes").
EXIT_OK = 0
EXIT_FAILED_AUDIT = 1  # an audit failed and nothing was published
EXIT_BAD_INPUT = 2  # bad usage, config or input, named in one line
EXIT_INTERNAL = 3  # a bug: one line on screen, the traceback in a log
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM


class EtlError(Exception):
    """An error for the user: its message is one line, `exit_code` what the command exits with."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT


class ConfigError(EtlError):
    """A config that cannot be used; the message is one line meant for the user."""


class ProjectError(ConfigError):
    """A project that cannot be written or found; one line for the user."""


class YamlError(ConfigError):
    """A document refused; `line` is 1-based (0 when the whole file is at fault)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class SourceError(EtlError):
    """A file or container that cannot be read; the message is one line for the user."""


class RowSpecError(EtlError):
    """A row-check spec that cannot be used; the message names the file, line and check."""


class RowCheckError(EtlError):
    """The batch could not be checked at all (missing column, a check that errors)."""


class WarehouseError(EtlError):
    """The warehouse file cannot be opened as asked; one line for the user."""


class SqlModelError(EtlError):
    """A SQL model (`warehouse/models/`) that cannot be built; one line naming the model."""


class ReconciliationError(EtlError):
    """Control totals that do not add up: the publish must not happen."""

    exit_code: ClassVar[int] = EXIT_FAILED_AUDIT

    def __init__(self, message: str, totals: pl.DataFrame) -> None:
        super().__init__(message)
        self.totals = totals  # to record once the publish transaction is rolled back


class QueryError(EtlError):
    """A query that cannot run; one line for the user."""


class MlModelError(EtlError):
    """Training or prediction (the ETA and fare models) cannot run as asked; one line."""
