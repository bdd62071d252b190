"""``pareco.atomic``: a write replaces the file whole or leaves the old one."""

import os

import pytest

from pareco.atomic import atomic_path, temporary_name, write_bytes_atomic, write_text_atomic


def test_write_text_replaces_and_leaves_no_staging_file(tmp_path):
    path = tmp_path / "front.json"
    path.write_text("old")
    assert write_text_atomic(path, "new ü") == path
    assert path.read_text(encoding="utf-8") == "new ü"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_staging_file(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


def test_durable_bytes_and_the_staging_name(tmp_path):
    path = tmp_path / "checkpoint.pt"
    write_bytes_atomic(path, b"\x00\x01", durable=True)
    assert path.read_bytes() == b"\x00\x01"
    staged = temporary_name(path)
    assert staged.parent == tmp_path and staged.name == f".checkpoint.pt.{os.getpid()}.tmp"
