"""Reading files in pieces of whole lines: plain, gzipped, and zip members stored or deflated."""

from __future__ import annotations

import gzip
import hashlib
import zipfile

import pytest

from etl.sources.fetch import read_pieces
from etl.sources.files import FileRef, member_fingerprint

LINES = b"".join(b"%d|" % k + b"x" * (k % 37) + b"\n" for k in range(2_000))


def ref_for(tmp_path, kind: str, content: bytes) -> FileRef:
    """The file as discovery finds it, with the fingerprint the reader verifies."""
    if kind in ("plain", "gzip"):
        path = tmp_path / ("f.txt" if kind == "plain" else "f.txt.gz")
        path.write_bytes(content if kind == "plain" else gzip.compress(content))
        fingerprint = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        return FileRef("s", path.name, path, None, path.stat().st_size, fingerprint)
    path = tmp_path / "f.zip"
    method = zipfile.ZIP_STORED if kind == "stored" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("m.txt", content)
    info = zipfile.ZipFile(path).getinfo("m.txt")
    return FileRef("s", "f.zip!m.txt", path, "m.txt", len(content), member_fingerprint(info))


@pytest.mark.parametrize("kind", ["plain", "gzip", "stored", "deflated"])
@pytest.mark.parametrize("size", [1, 700, 10_000, 1 << 20])
@pytest.mark.parametrize("ending", [b"", b"last line without an end"])
def test_pieces_are_whole_lines_that_add_up_to_the_file(tmp_path, kind, size, ending):
    content = LINES + ending
    pieces = list(read_pieces(ref_for(tmp_path, kind, content), size))
    assert b"".join(p.data for p in pieces) == content
    assert [p.last for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert pieces[-1].sha256 == hashlib.sha256(content).hexdigest()
    longest = max(len(line) for line in content.splitlines(keepends=True))
    for piece in pieces[:-1]:
        assert piece.data.endswith(b"\n")
        # Cut at the first line end after `size` bytes.
        assert size <= len(piece.data) < size + longest
    if size >= len(content):
        assert len(pieces) == 1


@pytest.mark.parametrize("kind", ["plain", "gzip", "deflated"])
def test_empty_file_is_one_empty_last_piece(tmp_path, kind):
    pieces = list(read_pieces(ref_for(tmp_path, kind, b""), 100))
    assert [(p.data, p.last) for p in pieces] == [(b"", True)]


def test_a_line_longer_than_a_piece_stays_whole(tmp_path):
    content = b"short\n" + b"y" * 5_000 + b"\nend\n"
    pieces = [p.data for p in read_pieces(ref_for(tmp_path, "plain", content), 100)]
    assert pieces == [b"short\n" + b"y" * 5_000 + b"\n", b"end\n"]
