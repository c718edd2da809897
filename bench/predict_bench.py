"""Prediction benchmark: batch prediction of a million trips, and `etl serve`'s latency.

    python bench/predict_bench.py --models warehouse/models_out [--rows 1000000]

Needs models from `etl train` (e.g. `etl sample --out data && etl run && etl train`) and the
serve extra. Cases:
- `etl predict --in --out` on `--rows` generated trips, Parquet to Parquet and CSV to CSV, as
  whole processes (wall, CPU and peak RSS from wait4, :mod:`measure`);
- `etl serve` on a free port on 127.0.0.1: single-trip POST /v1/estimate requests from a
  bounded loop (a fixed number of requests per client, keep-alive), at concurrency 1 and 8;
  latency p50 / p99 and requests per second. The clients run on the same machine as the
  server, so on 2 cores they compete with it: the figures are what a caller on the host sees.
Results go to bench/results/<date>-<commit>-predict.md and .json.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from measure import measure
from run import machine

BENCH = Path(__file__).resolve().parent
TRIP = {
    "pickup_lat": 38.8977,
    "pickup_lon": -77.0365,
    "dropoff_lat": 38.8973,
    "dropoff_lon": -77.0063,
    "pickup_at": "2024-05-14T08:30",
}


def requests_file(rows: int, folder: Path) -> Path:
    """`rows` trips between random points in DC at random times of 2024, with an id."""
    rng = np.random.default_rng(1)
    first = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    pickup = (first + rng.integers(0, 366 * 86400, rows)) * 1_000_000
    frame = pl.DataFrame(
        {
            "trip_ref": pl.int_range(rows, eager=True).cast(pl.String).str.zfill(8),
            "pickup_lat": rng.uniform(38.82, 38.98, rows),
            "pickup_lon": rng.uniform(-77.10, -76.92, rows),
            "dropoff_lat": rng.uniform(38.82, 38.98, rows),
            "dropoff_lon": rng.uniform(-77.10, -76.92, rows),
            # DC local wall-clock times without an offset, as the files planners write
            "pickup_at": pl.Series(pickup).cast(pl.Datetime("us")),
        }
    ).with_columns(pl.col("pickup_at").dt.strftime("%Y-%m-%dT%H:%M:%S"))
    path = folder / "trips.parquet"
    frame.write_parquet(path)
    frame.write_csv(folder / "trips.csv")
    return path


def batch_cases(models: Path, rows: int, folder: Path) -> list[dict]:
    requests_file(rows, folder)
    etl = [sys.executable, "-m", "etl", "predict", "--models", str(models)]
    results = []
    for ext in ("parquet", "csv"):
        name = f"etl predict --in/--out, {rows:,} trips, {ext}"
        out = folder / f"answers.{ext}"
        done = measure(name, [*etl, "--in", str(folder / f"trips.{ext}"), "--out", str(out)])
        assert done.exit_code == 0, name
        results.append(done.as_dict())
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def latency_cases(models: Path, total: int) -> list[dict]:
    """`total` requests at concurrency 1, and `total` again shared by 8 clients."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "etl", "serve", "--models", str(models), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url)
        _load(url, 1, 200)  # warm-up: imports, first predictions
        return [_load(url, clients, total // clients) for clients in (1, 8)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("etl serve did not start")


def _load(url: str, clients: int, per_client: int) -> dict:
    """`clients` threads, each sending `per_client` single-trip requests one after another."""
    latencies: list[float] = []
    failures: list[int] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(per_client):
                started = time.perf_counter()
                response = http.post("/v1/estimate", json=TRIP)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(response.status_code)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "name": f"etl serve, single-trip POST /v1/estimate, concurrency {clients}",
        "requests": len(latencies),
        "failed": len(failures),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "requests_per_s": round(len(latencies) / wall, 1),
    }


def write_results(batch: list[dict], service: list[dict], rows: int) -> Path:
    info = machine()
    stem = f"{datetime.now(UTC):%Y-%m-%d}-{info['commit']}-predict"
    lines = [
        f"# Prediction benchmark at commit {info['commit']}",
        "",
        f"{info['cores']} cores, {info['memory_gb']} GB, load average at the end"
        f" {', '.join(f'{x:.1f}' for x in info['load_average'])} (a machine shared with"
        " other work: compare within one run).",
        "",
        "| batch case | wall s | CPU s | peak MB |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {b['name']} | {b['wall_s']} | {b['cpu_s']} | {b['peak_rss_mb']:,.0f} |"
            for b in batch
        ),
        "",
        "| service case | requests | failed | p50 ms | p99 ms | requests/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {s['name']} | {s['requests']:,} | {s['failed']} | {s['p50_ms']} | {s['p99_ms']}"
            f" | {s['requests_per_s']} |"
            for s in service
        ),
        "",
    ]
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / f"{stem}.md").write_text("\n".join(lines))
    payload = {"machine": info, "rows": rows, "batch": batch, "service": service}
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    return out / f"{stem}.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("warehouse/models_out"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000, help="per concurrency level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="predict-bench-") as folder:
        batch = batch_cases(args.models, args.rows, Path(folder))
    service = latency_cases(args.models, args.requests)
    print(write_results(batch, service, args.rows).read_text())


if __name__ == "__main__":
    main()
