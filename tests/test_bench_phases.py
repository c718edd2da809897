"""bench/phases.py charges each phase the CPU of its own thread, and the figures add up."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

PHASES = Path(__file__).resolve().parents[1] / "bench" / "phases.py"


@pytest.fixture
def phases(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_phases", PHASES)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_phases", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


def spin(cpu_seconds: float) -> None:
    """Work the calling thread for that much of its own CPU."""
    start = time.thread_time()
    while time.thread_time() - start < cpu_seconds:
        pass


def test_a_phase_waiting_for_another_threads_work_is_not_charged_its_cpu(phases):
    timers = phases.Timers()
    work = timers.timed("work", spin)

    def wait_for_work():
        worker = threading.Thread(target=work, args=(0.3,), name="worker")
        worker.start()
        worker.join()

    timers.timed("wait", wait_for_work)()
    wait, worked = timers.phases["wait"], timers.phases["work"]
    assert worked.own_cpu >= 0.3
    assert wait.process_cpu >= 0.25  # the whole process's, while it waited (tick-rounded)
    assert wait.own_cpu < 0.1  # but not its own thread's
    assert timers.threads["worker"].in_phases == worked.own_cpu


def test_nested_phases_add_up_to_the_outer_one(phases):
    timers = phases.Timers()
    inner = timers.timed("inner", spin)

    def outer():
        spin(0.1)
        inner(0.2)
        inner(0.2)

    timers.timed("outer", outer)()
    own = {name: phase.own_cpu for name, phase in timers.phases.items()}
    assert own["inner"] >= 0.4
    assert 0.1 <= own["outer"] < 0.3  # its own spin only, not its callees'
    thread = timers.threads[threading.current_thread().name]
    assert thread.in_phases == pytest.approx(own["inner"] + own["outer"])
    assert timers.phases["inner"].calls == 2
