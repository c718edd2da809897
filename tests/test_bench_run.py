"""bench/run.py's medians: the figure the results table prints for each case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench_run(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # run.py imports its sibling `measure`
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_run", module)
    spec.loader.exec_module(module)
    return module


def test_a_median_of_an_even_number_of_rounds_prints_as_measured(bench_run) -> None:
    from measure import Measurement

    def rounds(*walls: float) -> list[list[Measurement]]:
        return [[Measurement("case", w, w * 2, 100.0 + i, 0)] for i, w in enumerate(walls)]

    two = bench_run.median_of(rounds(0.1 + 0.2, 0.3))  # their mean is 0.30000000000000004
    assert (two[0].wall_s, two[0].cpu_s, two[0].peak_rss_mb) == (0.3, 0.6, 101.0)
    three = bench_run.median_of(rounds(3.0, 1.0, 2.0))
    assert (three[0].wall_s, three[0].cpu_s) == (2.0, 4.0)
