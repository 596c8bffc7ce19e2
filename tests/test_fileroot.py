"""raystack.io.fileroot: whole-file writes and reads under a local folder or an S3 prefix
(moto's real S3 server), atomic and retried through outages; run storage built on it."""

from __future__ import annotations

import errno
import os

import pytest

from raystack.io.fileroot import FileRoot


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> FileRoot:
    if request.param == "local":
        return FileRoot(tmp_path / "root")
    bucket = request.getfixturevalue("s3_bucket")
    return FileRoot(f"s3://{bucket}/some/prefix/")


def test_round_trip(root, tmp_path):
    assert not root.exists() and root.list() == [] and root.get("a/b.bin") is None
    root.put("a/b.bin", b"\x00bytes")
    assert root.get("a/b.bin") == b"\x00bytes" and root.is_file("a/b.bin")
    assert root.exists("a") and not root.is_file("a") and root.exists()
    root.write_json("docs/x.json", {"k": [1, 2]})
    assert root.read_json("docs/x.json") == {"k": [1, 2]} and root.read_json("no.json") is None
    assert root.get("docs/x.json").endswith(b"}\n")  # indented, one trailing newline
    local = tmp_path / "up.bin"
    local.write_bytes(b"u" * 70_000)
    root.put_file(local, "a/c/up.bin")
    assert sorted(i.base_name for i in root.list("a", recursive=True)) == ["b.bin", "c", "up.bin"]
    back = root.get_dir("a/c", tmp_path / "back")
    assert (back / "up.bin").read_bytes() == b"u" * 70_000
    root.delete_dir("a")
    assert not root.exists("a") and root.is_file("docs/x.json")
    assert root.uri_of("a/b.bin") == (f"{root.uri}/a/b.bin")


def test_names(tmp_path, s3_env):
    s3 = FileRoot("s3://bucket/p/q/")
    assert (s3.uri, s3.root, s3.is_s3, s3.path("x")) == ("s3://bucket/p/q", "bucket/p/q", True,
                                                          "bucket/p/q/x")
    assert FileRoot("s3://bucket").uri_of("x") == "s3://bucket/x"
    local = FileRoot(f"file://{tmp_path}/r")
    assert (local.uri, local.is_s3, local.uri_of("x")) == (f"{tmp_path}/r", False,
                                                           f"{tmp_path}/r/x")
    with pytest.raises(ValueError, match="only local paths and s3://"):
        FileRoot("gs://bucket/x")


def test_invalid_json_names_the_file(root):
    root.put("bad.json", b"{broken")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        root.read_json("bad.json")


def test_a_failed_local_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    root = FileRoot(tmp_path / "r")
    root.put("f.txt", b"old")
    src = tmp_path / "new.txt"
    src.write_bytes(b"new")

    def crash(a, b):
        msg = "disk full"
        raise OSError(errno.ENOSPC, msg)  # not transient: raised at once

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        root.put("f.txt", b"new")
    with pytest.raises(OSError, match="disk full"):
        root.put_file(src, "f.txt")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "r") == ["f.txt"] and root.get("f.txt") == b"old"


def test_temp_names_are_hidden_and_chosen_by_the_owner(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(a, b):
        seen.append(os.path.basename(a))
        real(a, b)

    monkeypatch.setattr(os, "replace", spy)
    FileRoot(tmp_path / "a").put("x.json", b"{}")
    FileRoot(tmp_path / "b", temp_name=lambda n: f".mine-{n}").put("x.json", b"{}")
    assert seen[0].startswith(".x.json.") and seen[0].endswith(".tmp")
    assert seen[1] == ".mine-x.json"


def test_run_storage_writes_are_retried_through_a_transient_error(tmp_path, monkeypatch):
    from raystack.train.storage import RunStorage

    real, failures = os.replace, []

    def flaky(a, b):
        if len(failures) < 2:
            failures.append(b)
            raise OSError(errno.EIO, "Input/output error")  # a network filesystem away
        real(a, b)

    monkeypatch.setattr(os, "replace", flaky)
    rs = RunStorage(str(tmp_path / "runs"), "r1")
    rs.write_json("train.json", {"a": 1})
    assert len(failures) == 2
    assert rs.read_json("train.json") == {"a": 1}
    assert sorted(os.listdir(tmp_path / "runs" / "r1")) == ["train.json"]
