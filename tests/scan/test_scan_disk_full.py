"""A full or read-only store disk: exit 3, a message naming the store, and a rerun resumes.

Caused for real where the tests run as root (a tiny tmpfs mounted as the store, filled by
the scan itself, then remounted larger; a tmpfs remounted read-only), and everywhere by
making the filesystem's fsync fail with ENOSPC in the driver part-way through a run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess

import pytest
from typer.testing import CliRunner

from raystack import exitcodes
from raystack.cli import app
from raystack.scan import status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_here():
    import ray

    ray.init(address="local", num_cpus=2, object_store_memory=128 * 1024**2,
             include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


def _scan(archive, store, ckpt, run_id="night"):
    args = ["scan", str(archive), "-c", ckpt, "--store", str(store), "--run-id", run_id,
            "--workers", "1", "--segment-frames", "1", "--no-progress"]
    return CliRunner().invoke(app, args, env={"COLUMNS": "400"})


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def _tmpfs(path, size: str):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _remount(path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], check=True)


def test_a_store_disk_that_fills_up_mid_run_exits_3_and_a_rerun_resumes(
        ray_here, tiny_checkpoints, tiny_archive, tmp_path):
    with _tmpfs(tmp_path / "disk", "160k") as disk:
        store = disk / "store"
        res = _scan(tiny_archive, store, tiny_checkpoints["fp"])
        text = _one_line(res.output)
        assert res.exit_code == exitcodes.UNAVAILABLE, res.output
        assert f"store {store}: no space left on device" in text
        assert "rerun with --run-id night to resume" in text and "Traceback" not in text
        before = status(store, "night")
        assert 0 < before.done < 60 and before.pending > 0
        _remount(disk, "size=64m")  # space freed
        res = _scan(tiny_archive, store, tiny_checkpoints["fp"])
        assert res.exit_code == 0, res.output
        after = status(store, "night")
        assert after.ok and after.done == 60
        assert "resumed:" in res.output  # the units done before the disk filled were kept


def test_a_read_only_store_disk_exits_3_naming_the_store(
        ray_here, tiny_checkpoints, tiny_archive, tmp_path):
    with _tmpfs(tmp_path / "disk", "8m") as disk:
        store = disk / "store"
        store.mkdir()
        _remount(disk, "ro")
        res = _scan(tiny_archive, store, tiny_checkpoints["fp"])
        assert res.exit_code == exitcodes.UNAVAILABLE, res.output
        assert f"store {store}: read-only file system" in _one_line(res.output)


def test_enospc_from_the_filesystem_part_way_through_a_run(
        ray_here, tiny_checkpoints, tiny_archive, tmp_path, monkeypatch):
    """The driver's fsync starts failing after 8 store files (no root needed)."""
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 8:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    store = tmp_path / "store"
    with monkeypatch.context() as mp:
        mp.setattr(os, "fsync", fsync)
        res = _scan(tiny_archive, store, tiny_checkpoints["fp"])
    text = _one_line(res.output)
    assert res.exit_code == exitcodes.UNAVAILABLE, res.output
    assert f"store {store}: no space left on device" in text and "--run-id night" in text
    res = _scan(tiny_archive, store, tiny_checkpoints["fp"])
    assert res.exit_code == 0 and status(store, "night").done == 60
