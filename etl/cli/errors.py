"""What the command line does with an error no command expected.

Every error meant for the user (bad config, unreadable input: an `etl.errors.EtlError`) becomes
one line and its exit code in etl/cli/main.py. What is left is either the machine's fault (a
full disk, a read-only or unreadable folder: one line naming it, exit 2) or a bug (exit 3: one
line, and the traceback in a log file beside the warehouse, `warehouse/logs/`, or in the temp
folder when that cannot be written).
A traceback is never printed: it helps whoever fixes the bug, not whoever runs the command.
Ctrl-C or a scheduler's SIGTERM ends the command with one line and exit 130 (click would print
"Aborted!" and exit 1, the code of a failed audit); a run stopped so is recovered by the next
run as a killed one is.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from etl.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED
from etl.paths import DEFAULT_WAREHOUSE

# The errors of the machine a command runs on, not of the code: each is fixed by its operator.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
    errno.EIO: "input/output error",
}
# DuckDB reports the same faults as text in its own exception types.
ENVIRONMENT_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system")


class Interrupted(BaseException):
    """SIGINT or SIGTERM: not a KeyboardInterrupt, which click turns into exit 1."""


_signals_received: list[str] = []  # an interrupt may surface as another error on its way out


def _interrupt(signum: int, _frame: object) -> None:
    _signals_received.append(signal.Signals(signum).name)
    raise Interrupted(_signals_received[-1])


def run_guarded(app: Callable[..., object], args: list[str]) -> None:
    """Run the typer app on `args`; an unexpected error ends the process in one line."""
    error: Exception | None = None
    outcome = SystemExit(0)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        app(args, prog_name="etl")
    except SystemExit as done:
        outcome = done
    except Interrupted:
        pass
    except Exception as exc:  # the last place an error can become one line
        error = exc
    if _signals_received:
        print(f"error: interrupted ({_signals_received[0]}): stopped", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    try:  # what the command printed: a full disk under a redirected stdout shows here
        sys.stdout.flush()
    except OSError as exc:
        _discard_stdout()  # or the interpreter fails again on it at exit
        error = error or exc
    if error is None:
        raise outcome
    code, message = describe(error, args)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def describe(exc: BaseException, args: list[str]) -> tuple[int, str]:
    """The exit code and the one line for an error that reached the top."""
    cause = environment_cause(exc)
    if cause is not None:
        return EXIT_BAD_INPUT, cause
    where = write_log(exc, args, _log_dirs(args))
    saved = f"the traceback is in {where}" if where else "the traceback could not be saved"
    summary = one_line(exc)[:300]
    return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {summary}; {saved}"


def environment_cause(exc: BaseException) -> str | None:
    """A line naming the machine's fault behind `exc` or an error it led to, if there is one."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
            what = ENVIRONMENT_ERRNOS[error.errno]
            return f"{what}: {error.filename}" if error.filename else what
        text = one_line(error)
        if any(marker in text for marker in ENVIRONMENT_TEXTS):
            return text[:300]
    return None


def one_line(error: BaseException) -> str:
    """`error`'s message on one line. Some errors build their message on demand (a Spark
    error asks the JVM, which may be the thing that died): if that fails, the type names it."""
    try:
        text = str(error)
    except Exception:  # any failure here would hide the error being reported
        return f"{type(error).__name__} (its message could not be read)"
    return " ".join(text.split())


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors it was raised from or while handling, the first cause last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def write_log(exc: BaseException, args: list[str], folders: list[Path]) -> Path | None:
    """Write the traceback to the first folder that takes it; its path, or None."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    text = f"etl {' '.join(args)}\n{datetime.now(UTC).isoformat()} pid {os.getpid()}\n\n" + "".join(
        traceback.format_exception(exc)
    )
    for folder in folders:
        path = folder / f"etl-error-{stamp}-{os.getpid()}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError:
            continue
        return path
    return None


def _log_dirs(args: list[str]) -> list[Path]:
    """`logs/` beside the warehouse the command was given (if its folder exists), else temp."""
    warehouse = Path(os.environ.get("ETL_WAREHOUSE") or DEFAULT_WAREHOUSE)
    for i, arg in enumerate(args):
        if arg == "--warehouse" and i + 1 < len(args):
            warehouse = Path(args[i + 1])
        elif arg.startswith("--warehouse="):
            warehouse = Path(arg.partition("=")[2])
    fallback = Path(tempfile.gettempdir()) / "etl-logs"
    return [warehouse.parent / "logs", fallback] if warehouse.parent.is_dir() else [fallback]


def _discard_stdout() -> None:
    """Drop output that cannot be written, so that the exit does not fail on it again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
