"""One exit-code table for every command (raystack/exitcodes.py, docs/cli.md)."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

from raystack import exitcodes
from raystack.cli import app
from raystack.errors import ArchiveError, ConfigError, InfrastructureError, RaystackError


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer from e
    except BaseException as e:
        return e


@pytest.mark.parametrize(("err", "code"), [
    (OSError(errno.ENOSPC, "No space left on device"), exitcodes.UNAVAILABLE),
    (OSError(errno.EROFS, "Read-only file system"), exitcodes.UNAVAILABLE),
    (PermissionError(errno.EACCES, "Permission denied", "/st/x"), exitcodes.UNAVAILABLE),
    (ConnectionResetError(errno.ECONNRESET, "reset"), exitcodes.UNAVAILABLE),
    (OSError("When uploading part: AWS Error NETWORK_CONNECTION during PutObject"),
     exitcodes.UNAVAILABLE),
    (FileNotFoundError(errno.ENOENT, "No such file", "fp.pt"), exitcodes.INVALID),
    (ConfigError("segment_frames must be >= 1"), exitcodes.INVALID),
    (ArchiveError("archive x does not exist"), exitcodes.INVALID),
    (ValueError("bad --size"), exitcodes.INVALID),
    (InfrastructureError("store x: no space left"), exitcodes.UNAVAILABLE),
    (KeyboardInterrupt(), exitcodes.INTERRUPTED),
    (RuntimeError("boom"), exitcodes.INTERNAL),
    # A domain error caused by an outage is the outage (e.g. S3 listing during a cut).
    (_wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ArchiveError("list")),
     exitcodes.UNAVAILABLE),
])
def test_exit_code_of_each_kind_of_error(err, code):
    assert exitcodes.exit_code(err) == code


def test_botocore_outage_and_busy_s3_are_unavailable_but_access_denied_is_invalid():
    from botocore.exceptions import ClientError, EndpointConnectionError

    assert exitcodes.exit_code(EndpointConnectionError(endpoint_url="http://s3")) == 3
    busy = ClientError({"Error": {"Code": "SlowDown"},
                        "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
    assert exitcodes.exit_code(busy) == 3
    denied = ClientError({"Error": {"Code": "AccessDenied"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    assert exitcodes.exit_code(_wrapped(denied, ArchiveError("x"))) == 2


def test_classes_matched_by_name_training_failed_and_scan_error():
    from raystack.scan.pipeline import ScanError
    from raystack.train.ray_train import TrainingFailed

    assert exitcodes.exit_code(TrainingFailed("worker group died")) == exitcodes.FAILED
    assert exitcodes.exit_code(ScanError("no worker ready")) == exitcodes.UNAVAILABLE


def test_storage_guard_names_the_store_the_reason_and_the_resume():
    with pytest.raises(InfrastructureError) as info, \
            exitcodes.storage_guard("store /data/st", "rerun with --run-id r1 to resume"):
        raise OSError(errno.ENOSPC, "No space left on device")
    text = str(info.value)
    assert text.startswith("store /data/st: no space left on device")
    assert "rerun with --run-id r1 to resume" in text and "[Errno 28]" not in text.split("(")[0]
    # Anything that is not an outage passes through untouched.
    with pytest.raises(ConfigError), exitcodes.storage_guard("store x", "rerun"):
        msg = "bad"
        raise ConfigError(msg)


def test_table_is_in_the_help_epilog_and_in_docs():
    from pathlib import Path

    res = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for code, _ in exitcodes.TABLE:
        assert f"\n{code:>3}  " in res.output or f"{code:>3}  " in res.output
        assert f"| {code} |" in doc


def test_unexpected_error_exits_internal_with_traceback_not_1(monkeypatch):
    import raystack.scan.probe

    def boom(*a, **k):
        msg = "unexpected state"
        raise RuntimeError(msg)

    monkeypatch.setattr(raystack.scan.probe, "probe_archive", boom)
    res = CliRunner().invoke(app, ["probe", "."])
    assert res.exit_code == exitcodes.INTERNAL
    assert "a bug in raystack" in res.output and "unexpected state" in res.output


def test_storage_outage_in_any_command_exits_3(monkeypatch, tmp_path):
    import raystack.scan.probe

    def outage(*a, **k):
        msg = "cannot list"
        raise RaystackError(msg) from ConnectionRefusedError(
            errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr(raystack.scan.probe, "probe_archive", outage)
    res = CliRunner().invoke(app, ["probe", str(tmp_path)])
    assert res.exit_code == exitcodes.UNAVAILABLE, res.output
    assert "connection refused" in res.output


@pytest.mark.parametrize("kind", ["empty", "missing", "no-videos"])
def test_scan_of_empty_or_wrong_folder_is_an_error_and_creates_no_store(
        kind, tmp_path, tiny_fp_checkpoint):
    archive = tmp_path / "archive"
    if kind != "missing":
        archive.mkdir()
    if kind == "no-videos":
        (archive / "notes.txt").write_text("not a video")
    store = tmp_path / "store"
    res = CliRunner().invoke(app, ["scan", str(archive), "-c", tiny_fp_checkpoint, "--store",
                                   str(store), "--run-id", "r1", "--no-progress"],
                             env={"COLUMNS": "300"})
    assert res.exit_code == exitcodes.INVALID, res.output
    assert str(archive) in " ".join(res.output.split())
    assert ("holds no videos" if kind != "missing" else "does not exist") in res.output
    assert not store.exists()


def test_probe_of_empty_folder_is_an_error(tmp_path):
    res = CliRunner().invoke(app, ["probe", str(tmp_path)])
    assert res.exit_code == exitcodes.INVALID and "holds no videos" in res.output


@pytest.fixture(scope="module")
def tiny_fp_checkpoint(tmp_path_factory):
    import torch

    from raystack.models import create_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "fp.pt"
    return str(save_checkpoint(path, create_model("vqmau_fp.tiny"), preset="vqmau_fp.tiny",
                               data_fingerprint="random"))


def test_the_scan_job_entrypoint_uses_the_same_table(tmp_path, tiny_fp_checkpoint, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "jobs" / "scan.py"
    spec = importlib.util.spec_from_file_location("scan_job", path)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    (tmp_path / "empty").mkdir()
    cfg = tmp_path / "scan.toml"
    cfg.write_text(f'[scan]\narchive = "{tmp_path / "empty"}"\n'
                   f'checkpoints = ["{tiny_fp_checkpoint}"]\nstore = "{tmp_path / "st"}"\n')
    assert job.main(["--config", str(cfg)]) == exitcodes.INVALID
    assert "holds no videos" in capsys.readouterr().err and not (tmp_path / "st").exists()


def test_a_run_whose_units_failed_on_infrastructure_exits_3_not_1():
    bad_file = "UndecodableVideoError: /a/x.mp4: not a readable video container"
    outage = "EndpointConnectionError: Could not connect to the endpoint URL: http://s3/b/k"
    died = "worker died: RayActorError: The actor died unexpectedly"
    gone = "no live scan worker left (every worker crashed more often than 20 times in 600 s)"
    assert exitcodes.run_exit_code(True, []) == exitcodes.OK
    assert exitcodes.run_exit_code(False, []) == exitcodes.FAILED  # pending units
    assert exitcodes.run_exit_code(False, [("input", bad_file)]) == exitcodes.FAILED
    assert exitcodes.run_exit_code(False, [("input", bad_file), ("infrastructure", outage)]
                                   ) == exitcodes.UNAVAILABLE
    # The manifest's failure_kind decides, not the wording of the error.
    assert exitcodes.run_exit_code(False, [("infrastructure", died)]) == exitcodes.UNAVAILABLE
    assert exitcodes.run_exit_code(False, [("infrastructure", gone)]) == exitcodes.UNAVAILABLE
    looks_like_outage = "UndecodableVideoError: /a/Timeout was reached.mp4: truncated"
    assert exitcodes.run_exit_code(False, [("input", looks_like_outage)]) == exitcodes.FAILED
    # Rows from before the failure_kind column: the error text decides, as it did then.
    full = "OSError: [Errno 28] No space left on device"
    assert exitcodes.run_exit_code(False, [(None, full)]) == exitcodes.UNAVAILABLE
    assert exitcodes.run_exit_code(False, [(None, bad_file)]) == exitcodes.FAILED
    assert exitcodes.run_exit_code(False, [(None, died)]) == exitcodes.FAILED


def _store_with_failures(tmp_path, failures):
    from raystack.scan.manifest import Manifest, manifest_row
    from raystack.scan.plan import Outcome
    from raystack.store import Store

    st = Store(tmp_path / "st").ensure()
    st.write_run_json("r1", {"plan": {"entries": len(failures) + 1}})
    m = Manifest(st, "r1")
    m.record(manifest_row(Outcome("a-1", "a-1", "/a/a-1.mp4", "done", 0, None), "done"))
    for uid, err, kind in failures:
        m.record(manifest_row(Outcome(uid, uid, f"/a/{uid}.mp4", "failed", 0, None), "failed",
                              error=err, failure_kind=kind))
    return st


@pytest.mark.parametrize(("kind", "code"), [("infrastructure", exitcodes.UNAVAILABLE),
                                            ("input", exitcodes.FAILED)])
def test_status_exit_code_follows_the_failure_kind_of_the_manifest(tmp_path, kind, code):
    from raystack.scan import status

    st = _store_with_failures(tmp_path, [("b-1", "worker died: RayActorError: killed", kind)])
    assert status(st.uri, "r1").failure_kinds == {"b-1": kind}
    res = CliRunner().invoke(app, ["status", st.uri, "--run-id", "r1"], env={"COLUMNS": "200"})
    assert res.exit_code == code, res.output


def test_status_of_a_run_with_an_outage_failure_exits_3(tmp_path):
    st = _store_with_failures(tmp_path, [
        ("b-1", "ConnectTimeoutError: Connect timeout on endpoint URL", "infrastructure")])
    res = CliRunner().invoke(app, ["status", st.uri, "--run-id", "r1"], env={"COLUMNS": "200"})
    assert res.exit_code == exitcodes.UNAVAILABLE and "ConnectTimeoutError" in res.output


def test_status_names_the_stride_the_gate_floor_and_how_to_resume(tmp_path):
    st = _store_with_failures(tmp_path, [("b-1", "worker died", "infrastructure")])
    st.write_run_json("r1", {"plan": {"entries": 3},
                             "config": {"stride": 2, "gate": True, "gate_floor": 0.25,
                                        "gate_diff_floor": 3.5}})
    res = CliRunner().invoke(app, ["status", st.uri, "--run-id", "r1"], env={"COLUMNS": "200"})
    assert res.exit_code == exitcodes.UNAVAILABLE, res.output
    assert "stride 2 (one frame in 2 scored)" in res.output
    assert "motion gating on, floor 0.25 px" in res.output
    assert "change stage on, floor 3.5 levels (still stretches skip their flow)" in res.output
    assert "1 failed and 1 pending units: rerun the same `raystack scan` command with " \
           "--run-id r1 to resume" in res.output
    # status has no invocation of its own: its wall time is the manifest's span, said so
    assert "wall time (units, first start to last end)" in res.output
    st.write_run_json("r1", {"plan": {"entries": 1}, "config": {"stride": 1, "gate": False}})
    st2 = _store_with_failures(tmp_path / "ok", [])
    res = CliRunner().invoke(app, ["status", st2.uri, "--run-id", "r1"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "settings:" not in res.output and "to resume" not in res.output


def test_status_takes_the_run_as_an_argument_and_lists_runs_without_one(tmp_path):
    st = _store_with_failures(tmp_path, [])
    env = {"COLUMNS": "200"}
    by_option = CliRunner().invoke(app, ["status", st.uri, "--run-id", "r1"], env=env)
    by_argument = CliRunner().invoke(app, ["status", st.uri, "r1"], env=env)
    assert by_argument.exit_code == by_option.exit_code == 0, by_argument.output
    assert by_argument.output == by_option.output
    res = CliRunner().invoke(app, ["status", st.uri], env=env)
    assert res.exit_code == exitcodes.INVALID and "which run? runs in" in res.output
    assert "r1" in res.output
    res = CliRunner().invoke(app, ["status", st.uri, "r1", "--run-id", "r2"], env=env)
    assert res.exit_code == exitcodes.INVALID and "two runs given" in res.output
