"""`etl serve` as a real process on 127.0.0.1: the answers of batch prediction, a 422 that names
the field, and new models from `etl train` picked up mid-traffic without a failed request."""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

if any(importlib.util.find_spec(name) is None for name in ("lightgbm", "fastapi", "uvicorn")):
    pytest.skip("the model and serve extras are not installed", allow_module_level=True)

import httpx
from test_model_estimates import generate, write_warehouse

from etl.ml.estimate import estimate, load_models
from etl.ml.train import train

TRIPS = [
    {
        "id": "A-1",
        "pickup_lat": 38.8977,
        "pickup_lon": -77.0365,
        "dropoff_lat": 38.8973,
        "dropoff_lon": -76.9563,
        "pickup_at": "2023-12-05T08:30",
    },
    {
        "id": "A-2",
        "pickup_lat": 38.91,
        "pickup_lon": -77.02,
        "dropoff_lat": 38.87,
        "dropoff_lon": -77.0,
        "pickup_at": "2023-12-05T23:10:00-05:00",
        "source": "courier",
    },
]


@pytest.fixture(scope="module")
def model_sets(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two trainings on different generated trips: the served models, the warehouse of the
    replacement (for tests that train it themselves), and the replacement's models."""
    folder = tmp_path_factory.mktemp("serve")
    sets = []
    for seed in (1, 2):
        warehouse = write_warehouse(generate(seed, n=4000), folder / f"wh{seed}.duckdb")
        train(warehouse, folder / f"models{seed}")
        sets.append(warehouse)
    return folder / "models1", sets[1], folder / "models2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_sets, tmp_path_factory):
    """`etl serve` on a free port, on a copy of the first models: one process for the module
    (starting it costs seconds); a test that replaces the models leaves them consistent."""
    served = tmp_path_factory.mktemp("served") / "served"
    shutil.copytree(model_sets[0], served)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "etl", "serve", "--models", str(served), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "etl serve did not start"
            time.sleep(0.2)
        yield client, served, model_sets[1]
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


def test_answers_equal_batch_prediction_and_bad_input_is_a_422(server, tmp_path) -> None:
    client, served, _ = server
    many = client.post("/v1/estimate", json=TRIPS)
    assert many.status_code == 200, many.text
    batch = estimate(load_models(served), pl.DataFrame(TRIPS)).to_dicts()
    assert many.json() == batch
    one = client.post("/v1/estimate", json=TRIPS[1])
    assert one.status_code == 200 and one.json() == batch[1]
    assert batch[0]["duration_s_p10"] < batch[0]["duration_s"] < batch[0]["duration_s_p90"]

    bad = client.post("/v1/estimate", json={**TRIPS[0], "pickup_lat": "north"})
    assert bad.status_code == 422
    assert [error["loc"] for error in bad.json()["detail"]] == [["body", "pickup_lat"]]
    late = client.post("/v1/estimate", json=[TRIPS[0], {**TRIPS[1], "pickup_at": "soon"}])
    assert late.status_code == 422
    [error] = late.json()["detail"]
    assert error["loc"] == ["body", 1, "pickup_at"] and "ISO 8601" in error["msg"]
    missing = client.post(
        "/v1/estimate", json={k: v for k, v in TRIPS[0].items() if k != "pickup_at"}
    )
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == [
        "body",
        "pickup_at",
    ]

    far = client.post("/v1/estimate", json={**TRIPS[0], "pickup_lat": 38.5, "pickup_lon": -77.5})
    assert far.status_code == 200
    assert far.json()["warning"] == "pickup outside the region the models know: extrapolated"

    model = client.get("/v1/model").json()
    assert model["version"] == load_models(served).version
    assert model["metrics"]["duration_s"]["model"]["coverage_80"] > 0
    assert (
        model["data_window"]["train"]["last_pickup"] < model["data_window"]["test"]["first_pickup"]
    )
    assert client.get("/docs").status_code == 200
    assert "/v1/estimate" in client.get("/openapi.json").json()["paths"]


def test_new_models_are_picked_up_mid_traffic_without_a_failed_request(server) -> None:
    client, served, replacement = server
    before = client.get("/v1/model").json()["version"]
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=client.base_url, timeout=30) as own:
            while not stop.is_set():
                statuses.append(own.post("/v1/estimate", json=TRIPS).status_code)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        train(replacement, served)  # `etl train` writing into the folder being served
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["models_version"] == before:
            assert time.monotonic() < deadline, "the new models were not picked up"
            time.sleep(0.1)
        time.sleep(0.5)  # traffic on the new models too
    finally:
        stop.set()
        worker.join()
    after = client.get("/v1/model").json()["version"]
    assert after == load_models(served).version != before
    assert len(statuses) > 10 and set(statuses) == {200}
    answer = client.post("/v1/estimate", json=TRIPS).json()
    assert answer == estimate(load_models(served), pl.DataFrame(TRIPS)).to_dicts()


def test_a_half_replaced_model_set_is_never_loaded(model_sets, tmp_path, monkeypatch) -> None:
    """A model file from one training beside model.json of another (what a reader can meet
    while `etl train` replaces the files) is refused; the service keeps what it serves."""
    from etl.errors import MlModelError
    from etl.ml import estimate as estimate_module
    from etl.ml.serve import ModelStore

    served = tmp_path / "served"
    shutil.copytree(model_sets[0], served)
    store = ModelStore(served)
    serving = store.current.version
    other = tmp_path / "other"
    shutil.copytree(model_sets[2], other)  # another training's files
    shutil.copy(other / "duration_model.txt", served / "duration_model.txt")
    shutil.copy(other / "model.json", served / "model.json")  # fare_model.txt is still old
    monkeypatch.setattr(estimate_module, "LOAD_ATTEMPTS", 2)
    monkeypatch.setattr(estimate_module, "LOAD_PAUSE_S", 0.01)
    with pytest.raises(MlModelError, match=r"do not match model\.json"):
        load_models(served)
    store.poll()
    assert store.current.version == serving
    shutil.copy(other / "fare_model.txt", served / "fare_model.txt")
    shutil.copy(other / "metrics.json", served / "metrics.json")
    (served / "model.json").touch()
    store.poll()
    assert store.current.version == load_models(other).version != serving


def test_serve_fails_cleanly_without_models_or_on_a_taken_port(model_sets, tmp_path) -> None:
    from typer.testing import CliRunner

    from etl.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--models", str(tmp_path)])
    assert result.exit_code == 2 and "no models yet (run `etl train` first)" in result.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--models", str(model_sets[0]), "--port", str(port)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already")


def test_serve_without_the_extra_says_how_to_install(model_sets, monkeypatch) -> None:
    from typer.testing import CliRunner

    from etl.cli.main import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    result = CliRunner().invoke(app, ["serve", "--models", str(model_sets[0])])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: fastapi and uvicorn are not installed: pip install -e '.[serve]'"
    )
