"""Remote sources: files downloaded from a local HTTP server into the landing cache."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import DEFAULT_CONFIG, Warehouse
from dfhv import member_text, trip, write_zip

from etl.sources.remote import landing_path

REQUESTS: Counter = Counter()
# How the server misbehaves for a file name: "nolength-cut" sends the file's first half with
# neither a Content-Length nor chunked framing (the end shows only as the connection closing),
# "chunked-cut" sends it as one chunk and closes before the last, "drip" sends a byte at a
# time, "moved:URL" redirects to URL.
BEHAVIOUR: dict[str, str] = {}


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder; `/cut/NAME` announces the whole file but sends half of it."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        REQUESTS[self.path] += 1
        name = self.path.rsplit("/", 1)[-1]
        behaviour = BEHAVIOUR.get(name, "")
        if self.path.startswith("/cut/"):
            body = (Path(self.directory) / self.path.removeprefix("/cut/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
        elif behaviour.startswith("moved:"):
            self.send_response(302)
            self.send_header("Location", behaviour.removeprefix("moved:"))
            self.end_headers()
        elif behaviour:
            self.misbehave(behaviour, (Path(self.directory) / self.path.lstrip("/")).read_bytes())
        else:
            super().do_GET()

    def misbehave(self, behaviour: str, body: bytes) -> None:
        half = body[: body.index(b"\n", len(body) // 2) + 1]  # whole lines: it looks complete
        if behaviour == "chunked-cut":
            self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Last-Modified", self.date_time_string(int(time.time()) - 3600))
        if behaviour == "chunked-cut":
            self.send_header("Transfer-Encoding", "chunked")
        elif behaviour == "drip":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = True
        try:
            if behaviour == "nolength-cut":
                self.wfile.write(half)
            elif behaviour == "chunked-cut":
                self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
            elif behaviour == "drip":
                for k in range(len(body)):
                    self.wfile.write(body[k : k + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd, base = serve(served)
    REQUESTS.clear()
    BEHAVIOUR.clear()
    yield served, base
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


DISPATCH_LINES = [
    json.dumps({"job_id": f"J{k}", "status": "cancelled", "vehicle_id": "V1"}) + "\n"
    for k in range(400)
]


def dispatch_config(tmp_path: Path, urls: list[str], **limits) -> Path:
    """The project's sources.yaml with dispatch's files replaced by URLs (and no suite: its
    jobs here are cancelled ones, not trips)."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["sources"]["dispatch"]["files"] = urls
    config["sources"]["dispatch"].pop("suite")
    if limits:
        config["limits"] = limits
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "schemas").symlink_to(DEFAULT_CONFIG.parent / "schemas")
    return path


def serve_dispatch(served: Path, name: str = "dispatch_2016-01-15.jsonl") -> str:
    (served / name).write_text("".join(DISPATCH_LINES))
    return name


def failed(result) -> dict[str, str]:
    return {f.path: f.reason for f in result.files if f.status == "failed"}


@pytest.mark.parametrize("behaviour", ["nolength-cut", "chunked-cut"])
def test_a_cut_download_without_a_length_is_never_landed_nor_kept(tmp_path, server, behaviour):
    """Half a JSON Lines file, cut at a line end, looks whole. Without a length it must not
    land; nor may its Last-Modified be kept, or the next run's 304 would keep the half."""
    served, base = server
    name = serve_dispatch(served)
    url = f"{base}/{name}"
    wh = Warehouse(tmp_path / "w", dispatch_config(tmp_path, [url]))
    BEHAVIOUR[name] = behaviour
    first = wh.run()
    assert first.exit_code == 2
    reason = failed(first)[url]
    if behaviour == "nolength-cut":
        assert reason == (
            "the server sent neither a length nor chunked framing: "
            "a cut download could not be told from a whole one"
        )
    else:
        assert reason.startswith("download failed: ")
    assert not landing_path(url, "dispatch", wh.data).exists()
    del BEHAVIOUR[name]  # the server recovers; it answers 304 to a conditional request
    second = wh.run()
    assert [(f.status, f.rows_read) for f in second.files] == [("loaded", 400)]


def test_two_urls_ending_in_one_name_are_two_files(tmp_path, server):
    served, base = server
    for folder, rows in (("a", [trip(1), trip(2)]), ("b", [trip(3)])):
        (served / folder).mkdir()
        write_zip(served / folder / "taxi_2016.zip", {"taxi_2016_01.txt": member_text(rows)})
    urls = [f"{base}/a/taxi_2016.zip", f"{base}/b/taxi_2016.zip"]
    wh = Warehouse(tmp_path / "w", remote_config(tmp_path, urls))
    result = wh.run()
    assert [(f.status, f.rows_read) for f in result.files] == [("loaded", 2), ("loaded", 1)]
    assert wh.scalar("SELECT count(DISTINCT source_record_id) FROM staging.dc_taxi") == 3
    metas = [landing_path(url, "dc_taxi", wh.data).with_suffix(".zip.meta.json") for url in urls]
    assert [json.loads(m.read_text())["url"] for m in metas] == urls


def test_download_past_its_deadline_fails_alone(tmp_path, server):
    served, base = server
    name = serve_dispatch(served)
    BEHAVIOUR[name] = "drip"
    write_zip(served / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    urls = [f"{base}/{name}"]
    wh = Warehouse(tmp_path / "w", dispatch_config(tmp_path, urls, download_deadline_s=0.5))
    result = wh.run()
    assert failed(result) == {
        urls[0]: "download not finished within 0.5 s (limits.download_deadline_s)"
    }
    assert result.exit_code == 2
    assert not list((wh.data / "_landing").rglob("*.partial"))


def test_redirects_are_followed_only_within_the_origin(tmp_path, server):
    served, base = server
    other, other_base = serve(served)  # the same files, on another port of the same host
    try:
        for year, target in (("2016", base), ("2017", other_base)):
            name = f"taxi_{year}.zip"
            write_zip(served / name, {f"taxi_{year}_01.txt": member_text([trip(int(year))])})
            BEHAVIOUR[f"moved_{year}.zip"] = f"moved:{target}/{name}"
        urls = [f"{base}/moved_2016.zip", f"{base}/moved_2017.zip"]
        wh = Warehouse(tmp_path / "w", remote_config(tmp_path, urls))
        result = wh.run()
    finally:
        other.shutdown()
    assert failed(result) == {urls[1]: f"redirected to another origin: {other_base}/taxi_2017.zip"}
    assert [f.rows_read for f in result.files if f.status == "loaded"] == [1]
    assert REQUESTS["/taxi_2016.zip"] == 1 and REQUESTS["/taxi_2017.zip"] == 0


def test_a_damaged_landing_record_means_downloading_again(tmp_path, server):
    served, base = server
    write_zip(served / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    url = f"{base}/taxi_2016.zip"
    wh = Warehouse(tmp_path / "w", remote_config(tmp_path, [url]))
    assert wh.run().exit_code == 0
    meta = landing_path(url, "dc_taxi", wh.data).with_suffix(".zip.meta.json")
    meta.write_text(meta.read_text()[:20])  # truncated, as by a full disk
    second = wh.run()
    assert (second.exit_code, second.files_skipped) == (0, 1)  # the same bytes: nothing new
    assert REQUESTS["/taxi_2016.zip"] == 2
    assert json.loads(meta.read_text())["url"] == url


@pytest.mark.parametrize("tail", ["%2e%2e", "..", "%2E%2E/", "a/%00"])
def test_url_naming_no_file_fails_alone(tmp_path, server, tail):
    served, base = server
    write_zip(served / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    urls = [f"{base}/taxi_2016.zip", f"{base}/x/{tail}"]
    wh = Warehouse(tmp_path / "w", remote_config(tmp_path, urls))
    result = wh.run()
    assert failed(result) == {urls[1]: "the URL names no file"}
    assert result.exit_code == 2
    assert wh.scalar("SELECT count(*) FROM staging.dc_taxi") == 1


def test_url_that_is_not_one_fails_alone(tmp_path, server):
    served, base = server
    write_zip(served / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    urls = [f"{base}/taxi_2016.zip", "http://[::1/taxi_2017.zip"]
    wh = Warehouse(tmp_path / "w", remote_config(tmp_path, urls))
    result = wh.run()
    assert failed(result) == {urls[1]: "not a valid URL (Invalid IPv6 URL)"}
    assert result.exit_code == 2
