"""Credentials in URIs never reach run.json or other store documents (issue 12 A.6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raystack.redact import redact, redact_uri
from raystack.store import Store

SECRETS = ("AKIAEXAMPLE", "wJalr/K7MDENG", "hunter2", "sigsecret", "tok3n")


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("s3://AKIAEXAMPLE:hunter2@minio:9000/bucket/a.mp4", "s3://***@minio:9000/bucket/a.mp4"),
        ("s3://AKIAEXAMPLE:wJalr/K7MDENG@host/b/x@y.mp4", "s3://***@host/b/x@y.mp4"),
        ("http://user:hunter2@host/v.mp4", "http://***@host/v.mp4"),
        ("ray://admin:hunter2@head:10001", "ray://***@head:10001"),
        ("https://AKIAEXAMPLE@host/v.mp4", "https://***@host/v.mp4"),
        (
            "https://h/v.mp4?X-Amz-Signature=sigsecret&x=1",
            "https://h/v.mp4?X-Amz-Signature=***&x=1",
        ),
        ("https://h/v.mp4?a=1&token=tok3n#f", "https://h/v.mp4?a=1&token=***#f"),
        ("s3://bucket/prefix/a@b.mp4", "s3://bucket/prefix/a@b.mp4"),
        ("/data/cam@1/video.mp4", "/data/cam@1/video.mp4"),
        ("auto", "auto"),
    ],
)
def test_redact_uri(uri, shown):
    assert redact_uri(uri) == shown


def test_redact_walks_documents():
    doc = {"config": {"address": "ray://u:hunter2@h:1", "n": 3, "list": ["s3://k:hunter2@h/b"]}}
    assert redact(doc) == {"config": {"address": "ray://***@h:1", "n": 3, "list": ["s3://***@h/b"]}}


def test_run_json_and_documents_are_written_without_credentials(tmp_path):
    st = Store(tmp_path / "store").ensure()
    info = {
        "config": {
            "archive": "s3://AKIAEXAMPLE:wJalr/K7MDENG@minio:9000/cams",
            "store": str(tmp_path / "store"),
            "address": "ray://admin:hunter2@head:10001",
        },
        "identity": {"archive": "s3://AKIAEXAMPLE:wJalr/K7MDENG@minio:9000/cams"},
    }
    st.write_run_json("r1", info)
    st.write_json("notes/n.json", {"source": "https://h/v.mp4?token=tok3n"})
    written = "".join(p.read_text() for p in Path(st.uri).rglob("*.json"))
    assert not any(s in written for s in SECRETS)
    doc = st.read_run_json("r1")
    assert doc["config"]["address"] == "ray://***@head:10001"
    assert json.dumps(doc["identity"]) == json.dumps({"archive": "s3://***@minio:9000/cams"})


def test_a_resumed_scan_compares_the_recorded_archive_as_written():
    from raystack.scan.config import ScanConfig
    from raystack.scan.run import _check_resume, _identity

    cfg = ScanConfig(archive="s3://AKIAEXAMPLE:hunter2@minio:9000/cams")
    info = {
        "context": 4,
        "streams": ["fp"],
        "checkpoints": {"fp": {"sha256": "ab"}},
        "needs_flow": False,
    }
    identity = _identity(cfg, info)
    assert "hunter2" not in json.dumps(identity)
    recorded = redact({"identity": identity})
    _check_resume(recorded, _identity(cfg, info), "r1")  # same archive: resumes
