"""Remote sources: files downloaded from a local HTTP server into the landing cache."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import DEFAULT_CONFIG, Warehouse
from dfhv import member_text, trip, write_zip

from etl.sources.remote import landing_path

REQUESTS: Counter = Counter()


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder; `/cut/NAME` announces the whole file but sends half of it."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        REQUESTS[self.path] += 1
        if self.path.startswith("/cut/"):
            body = (Path(self.directory) / self.path.removeprefix("/cut/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    REQUESTS.clear()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def remote_config(tmp_path: Path, urls: list[str]) -> Path:
    """The project's sources.yaml with dc_taxi's files replaced by URLs."""
    text = DEFAULT_CONFIG.read_text()
    listed = ", ".join(f'"{u}"' for u in urls)
    text = text.replace('files: ["dc_taxi/*.zip"]', f"files: [{listed}]", 1)
    config = tmp_path / "sources.yaml"
    config.write_text(text)
    (tmp_path / "schemas").symlink_to(DEFAULT_CONFIG.parent / "schemas")
    return config


def test_remote_zip_is_landed_loaded_and_not_downloaded_again(tmp_path, server):
    served, base = server
    write_zip(served / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1), trip(2)])})
    wh = Warehouse(tmp_path / "w", remote_config(tmp_path, [f"{base}/taxi_2016.zip"]))

    first = wh.run()
    assert first.exit_code == 0
    landed = landing_path(f"{base}/taxi_2016.zip", "dc_taxi", wh.data)
    relative = landed.relative_to(wh.data).as_posix()
    assert [f.path for f in first.files] == [f"{relative}!taxi_2016_01.txt"]
    assert wh.scalar("SELECT count(*) FROM staging.dc_taxi") == 2
    assert landed.read_bytes() == (served / "taxi_2016.zip").read_bytes()

    second = wh.run()  # the server answers 304: nothing is downloaded or loaded
    assert second.files == [] and second.files_skipped == 1
    assert REQUESTS["/taxi_2016.zip"] == 2


def test_unreachable_or_truncated_download_fails_that_file_only(tmp_path, server):
    served, base = server
    write_zip(served / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    write_zip(
        served / "taxi_2017.zip",
        {"taxi_2017_01.txt": member_text([trip(k) for k in range(2, 400)])},
    )
    urls = [f"{base}/taxi_2016.zip", f"{base}/missing.zip", f"{base}/cut/taxi_2017.zip"]
    wh = Warehouse(tmp_path / "w", remote_config(tmp_path, urls))

    result = wh.run()
    assert result.exit_code == 2
    failed = {f.path: f.reason for f in result.files if f.status == "failed"}
    assert failed[f"{base}/missing.zip"] == "HTTP 404"
    assert failed[f"{base}/cut/taxi_2017.zip"].startswith("download failed")
    assert wh.scalar("SELECT count(*) FROM staging.dc_taxi") == 1
    landing = wh.data / "_landing" / "dc_taxi"
    assert sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*.*")) == [
        landing_path(urls[0], "dc_taxi", landing).parent.name + "/" + name
        for name in ("taxi_2016.zip", "taxi_2016.zip.meta.json")
    ]
