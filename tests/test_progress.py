"""Progress over the whole run: each step with its elapsed time, on a terminal or in a log."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from etl.cli.main import app
from etl.cli.output import ProgressReporter
from etl.paths import DEFAULTS_DIR

STEPS = ["loading", "batch checks", "matching", "publish"]


def test_the_terminal_display_keeps_every_step_with_its_time() -> None:
    console = Console(force_terminal=True, record=True, width=100)
    reporter = ProgressReporter(console)
    reporter.start(2)
    reporter.advance("a.csv")
    reporter.advance("b.csv")
    for step in STEPS[1:]:
        reporter.stage(step)
    reporter.log("matched 3 trip(s) across silos")
    reporter.close()
    screen = console.export_text()
    last = screen[screen.rindex("loading") :]  # the display as it stays after the run
    for step in STEPS:
        assert re.search(rf"^{step}\s+━+ \d:\d\d:\d\d", last, re.M), last
    assert "2 files" in last
    assert "matched 3 trip(s)" in screen
    assert ".py:" not in screen  # no code location on log lines


def test_a_log_has_a_timestamped_line_as_each_step_ends(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    sample = ["sample", "--out", str(data), "--scale", "0.005"]
    assert (
        runner.invoke(app, [*sample, "--only", "dc_taxi", "--only", "dc_boundary"]).exit_code == 0
    )
    result = runner.invoke(
        app,
        [
            "run",
            "--config", str(DEFAULTS_DIR / "sources.yaml"),
            "--data-root", str(data),
            "--warehouse", str(tmp_path / "w.duckdb"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines)
    ends = [m[1] for line in lines if (m := re.search(r" (\w[\w ]*) done in \d+\.\d s$", line))]
    assert ends == STEPS
    assert not [line for line in lines if re.search(r"\.py:\d+", line)]
