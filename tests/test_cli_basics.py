"""What a new user meets first: --version, -h, help that shows defaults and switches,
relative paths made absolute for every command, one-line errors, Ctrl-C hints, logs that
do not wrap when piped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raystack.cli import app
from raystack.config import absolute_path, load_config
from raystack.scan.config import ScanConfig

COMMANDS = ("synth", "probe", "train", "scan", "status", "sql", "events", "runs", "calibrate",
            "eval", "report")


def invoke(*args, **env):
    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **env})
    return res.exit_code, res.output


def test_version_and_short_help():
    from raystack import __version__

    assert invoke("--version") == (0, f"raystack {__version__}\n")
    code, out = invoke("-h")
    assert code == 0 and "train" in out and "--version" in out


def test_help_lists_the_commands_in_the_order_of_the_work():
    code, out = invoke("-h")
    listed = [line.split()[1] for line in out.splitlines()
              if len(line.split()) > 1 and line.split()[0] == "│" and line.split()[1] in COMMANDS]
    assert code == 0 and listed == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_works_and_shows_no_bool_metavar(command):
    code, out = invoke(command, "-h")
    assert code == 0 and "<bool>" not in out


def test_train_and_scan_help_show_the_config_defaults():
    _, train = invoke("train", "-h")
    assert "[default: (small)]" in train and "[default: (runs)]" in train
    assert "--progress" in train and "--no-progress" in train
    _, scan = invoke("scan", "-h")
    assert "[default: (512)]" in scan and "[default: (dis)]" in scan
    assert "--dry-run" in scan and "--no-dry-run" in scan


def test_absolute_path_leaves_uris_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_path("runs") == str(tmp_path / "runs")
    assert absolute_path(Path("a/b")) == tmp_path / "a" / "b"
    assert absolute_path(("x.pt", "s3://b/y.pt")) == (str(tmp_path / "x.pt"), "s3://b/y.pt")
    assert absolute_path("s3://bucket/store") == "s3://bucket/store"
    assert absolute_path("") == "" and absolute_path(None) is None
    cfg = load_config(ScanConfig, archive="cams", checkpoints=("fp.pt",), store="st",
                      cache_dir="~/c")
    assert (cfg.archive, cfg.checkpoints, cfg.store) == (
        str(tmp_path / "cams"), (str(tmp_path / "fp.pt"),), str(tmp_path / "st"))
    assert cfg.cache_dir == os.path.expanduser("~/c")


def test_scan_and_train_commands_pass_absolute_paths(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("raystack.scan.scan", lambda cfg: seen.setdefault("scan", cfg) and 1 / 0)
    code, _ = invoke("scan", "cams", "-c", "fp.pt", "--store", "st", "--dry-run")
    cfg = seen["scan"]
    assert cfg.dry_run is True and cfg.archive == str(tmp_path / "cams")
    assert cfg.checkpoints == (str(tmp_path / "fp.pt"),) and cfg.store == str(tmp_path / "st")

    def fake_train(cfg):
        seen["train"] = cfg
        raise KeyboardInterrupt

    monkeypatch.setattr("raystack.train.train", fake_train)
    code, out = invoke("train", "normal", "--workers", "2", "--storage", "runs",
                       "--name", "n1", "--export-dir", "models", "--no-progress")
    cfg = seen["train"]
    assert (cfg.archive, cfg.storage, cfg.export_dir) == (
        str(tmp_path / "normal"), str(tmp_path / "runs"), str(tmp_path / "models"))
    assert cfg.progress is False
    # Ctrl-C: one line that says how to resume, like scan's.
    assert code == 130 and f"--storage {tmp_path / 'runs'} --name n1 to resume" in out
    assert "Traceback" not in out


def test_wrong_preset_lists_the_user_facing_presets_and_the_closest(tmp_path):
    code, out = invoke("train", tmp_path, "--model", "fp+fr", "--preset", "smal")
    assert code == 2 and "did you mean 'small'" in out
    assert "tiny, small, ped2" in out and "vqmau_" not in out


def test_checkpoint_folder_and_npy_get_one_line_errors(tmp_path):
    import numpy as np

    np.save(tmp_path / "labels.npy", np.zeros(3))
    code, out = invoke("scan", tmp_path, "-c", tmp_path, "--store", tmp_path / "st")
    assert code == 2 and "is a folder, expected a checkpoint file" in out
    code, out = invoke("scan", tmp_path, "-c", tmp_path / "labels.npy", "--store", tmp_path / "s")
    assert code == 2 and "is a NumPy .npy array, not a model checkpoint" in out
    assert len(out.strip().splitlines()) == 1 and "weights_only" not in out


def test_logs_do_not_wrap_when_piped(capsys, monkeypatch):
    from raystack.train.progress import TrainProgress

    monkeypatch.delenv("COLUMNS", raising=False)
    line = "fp: epoch 1/2 " + "x" * 150 + " /a/very/long/path/to/a/checkpoint.pt"
    TrainProgress(enabled=False).handle({"kind": "line", "text": line})
    assert capsys.readouterr().err.rstrip("\n") == line


@pytest.mark.skipif(not hasattr(signal, "SIGPIPE"), reason="POSIX pipes")
def test_a_closed_pipe_ends_a_printing_command_as_cat_does():
    """`raystack ... | head`: the reader has gone; the command dies of SIGPIPE (141 in a
    shell), silently, not exit 1 (this CLI's 'units failed or pending')."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write meets EPIPE
    try:
        res = subprocess.run([sys.executable, "-m", "raystack.cli", "--help"], stdout=write,
                             stderr=subprocess.PIPE, timeout=120, check=False)
    finally:
        os.close(write)
    assert res.returncode == -signal.SIGPIPE, (res.returncode, res.stderr[-500:])
    assert b"Traceback" not in res.stderr and b"BrokenPipe" not in res.stderr
