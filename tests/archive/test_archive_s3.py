"""Listing, probing and decoding from S3, against moto's real S3 server on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from raystack.archive import list_archive, materialise
from raystack.cli import app
from raystack.decode import open_reader
from raystack.errors import ArchiveError, UndecodableVideoError
from raystack.io.cache import cache_path, fetch
from raystack.io.s3 import s3_client
from raystack.scan.probe import probe_archive
from raystack.synth import synthesize


def _upload(folder: Path, bucket: str, prefix: str) -> None:
    client = s3_client()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("RAYSTACK_CACHE", str(path))
    return path


def test_s3_listing_has_the_same_ids_as_the_local_copy(s3_bucket, tiny_archive):
    _upload(tiny_archive, s3_bucket, "cams/site1")
    local = list_archive(tiny_archive)
    remote = list_archive(f"s3://{s3_bucket}/cams/site1")
    assert [s.relpath for s in remote] == [s.relpath for s in local]
    assert [s.video_id for s in remote] == [s.video_id for s in local]
    assert [s.size_bytes for s in remote] == [s.size_bytes for s in local]
    assert remote[0].uri == f"s3://{s3_bucket}/cams/site1/test/test_001.mp4"
    assert all(s.etag and '"' not in s.etag for s in remote)
    # A trailing slash names the same prefix; a sibling prefix with a common start does not leak in.
    s3_client().put_object(Bucket=s3_bucket, Key="cams/site10/other.mp4", Body=b"x")
    assert [s.relpath for s in list_archive(f"s3://{s3_bucket}/cams/site1/")] == [
        s.relpath for s in local
    ]
    [one] = list_archive(f"s3://{s3_bucket}/cams/site1/test/test_002.mp4")
    assert (one.relpath, one.kind) == ("test_002.mp4", "video")


def test_s3_listing_errors_name_the_problem(s3_bucket):
    with pytest.raises(ArchiveError, match="holds no objects"):
        list_archive(f"s3://{s3_bucket}/nothing/here")
    with pytest.raises(ArchiveError, match="NoSuchBucket"):
        list_archive("s3://no-such-bucket-raystack/x")


def test_s3_probe_reads_ranges_without_downloading(s3_bucket, tiny_archive, cache):
    _upload(tiny_archive, s3_bucket, "a")
    local = probe_archive(tiny_archive).to_pylist()
    remote = probe_archive(f"s3://{s3_bucket}/a").to_pylist()
    keys = ("relpath", "video_id", "frames", "fps", "width", "height", "codec", "probe_error",
            "content_id")  # the same bytes on S3 and on disk: the same content_id
    assert [[r[k] for k in keys] for r in remote] == [[r[k] for k in keys] for r in local]
    assert all(r["etag"] for r in remote) and all(r["content_id"] for r in remote)
    assert _files(cache) == []


def test_s3_decode_fetches_into_the_cache_once(s3_bucket, tiny_archive, cache):
    _upload(tiny_archive, s3_bucket, "a")
    src = list_archive(f"s3://{s3_bucket}/a")[0]
    want = open_reader(tiny_archive / src.relpath, size=(32, 32)).read(0, 24)
    for backend in ("decord", "pyav"):
        with open_reader(materialise(src), size=(32, 32), backend=backend) as r:
            assert r.uri == src.uri and r.num_frames == 24
            np.testing.assert_array_equal(r.read(0, 24), want)
    [cached] = _files(cache)
    assert cached == cache_path(src.uri, src.etag, cache)
    assert cached.is_relative_to(cache / s3_bucket) and src.etag in cached.name
    # A hit is not downloaded again (same file, same inode: nothing renamed over it) and
    # marks the file as recently used for the cache's size cap.
    first = cached.stat()
    past = first.st_mtime - 3600
    os.utime(cached, (past, past))
    assert fetch(src.uri, src.etag) == cached
    assert cached.stat().st_ino == first.st_ino and cached.stat().st_mtime > past + 3000
    # The object changes: a new listing carries a new ETag, so the reader fetches it again.
    s3_client().upload_file(
        str(tiny_archive / "test" / "test_002.mp4"), s3_bucket, "a/test/test_001.mp4"
    )
    changed = list_archive(f"s3://{s3_bucket}/a")[0]
    assert changed.etag != src.etag
    with open_reader(materialise(changed), size=(32, 32)) as r:
        np.testing.assert_array_equal(
            r.read(0, 24),
            open_reader(tiny_archive / "test" / "test_002.mp4", size=(32, 32)).read(0, 24),
        )
    assert len(_files(cache)) == 2
    # A stale listing is refused instead of silently reading the new content.
    with pytest.raises(ArchiveError, match="changed since it was listed"):
        fetch(src.uri, src.etag, cache_dir=cache / "other")
    assert not [p for p in _files(cache) if p.name.startswith(".part-")]


def test_s3_frame_folders_are_probed_in_place_and_materialised_once(s3_bucket, tmp_path, cache):
    local = tmp_path / "frames_archive"
    synthesize(local, seed=1, n_train=1, n_test=1, frames=12, size=(48, 32), fmt="frames")
    _upload(local, s3_bucket, "ped")
    remote = list_archive(f"s3://{s3_bucket}/ped")
    assert [(s.relpath, s.kind, len(s.members)) for s in remote] == [
        ("test/test_001", "frames", 12),
        ("train/train_001", "frames", 12),
    ]
    assert remote[0].members[:3] == tuple(
        f"s3://{s3_bucket}/ped/test/test_001/{i:04d}.jpg" for i in range(3)
    )
    assert remote[0].uri == f"s3://{s3_bucket}/ped/test/test_001"
    assert [s.video_id for s in remote] == [s.video_id for s in list_archive(local)]
    rows = probe_archive(remote).to_pylist()
    assert [(r["frames"], r["width"], r["height"], r["codec"], r["probe_error"]) for r in rows] == [
        (12, 48, 32, "jpg", None)
    ] * 2
    assert _files(cache) == []  # probing reads the first and last images, caches nothing
    media = materialise(remote[0])
    folder = Path(media.path)
    assert folder.is_relative_to(cache / s3_bucket) and remote[0].etag in folder.name
    assert media.uri == remote[0].uri and media.member_uris == remote[0].members
    assert sorted(_files(cache)) == sorted(Path(m) for m in media.members)
    with open_reader(media, size=None) as r:
        assert r.uri == remote[0].uri
        got = r.read(3, 7)
    with open_reader(local / "test" / "test_001", size=None) as r:
        np.testing.assert_array_equal(got, r.read(3, 7))
    first = folder.stat().st_mtime_ns
    assert materialise(remote[0]) == media and folder.stat().st_mtime_ns == first  # a hit


def test_s3_frame_deleted_after_listing_is_one_bad_frame_named_by_its_uri(
        s3_bucket, tmp_path, cache):
    local = tmp_path / "frames_archive"
    synthesize(local, seed=1, n_train=0, n_test=1, frames=12, size=(48, 32), fmt="frames")
    _upload(local, s3_bucket, "ped")
    [src] = list_archive(f"s3://{s3_bucket}/ped")
    gone = src.members[5]
    s3_client().delete_object(Bucket=s3_bucket, Key=gone.split("/", 3)[3])
    with open_reader(materialise(src), size=None) as r:
        frames = r.read(0, 12)
        assert list(r.bad_frames) == [5] and r.bad_frames[5].startswith(gone)
    np.testing.assert_array_equal(frames[5], frames[4])  # filled with the previous frame


def test_s3_bad_keys_and_files_are_reported_and_the_rest_probed(s3_bucket, tiny_archive, cache):
    client = s3_client()
    client.upload_file(str(tiny_archive / "train" / "train_001.mp4"), s3_bucket, "x/good.mp4")
    client.upload_file(
        str(tiny_archive / "train" / "train_001.mp4"), s3_bucket, "x/sub/../escape.mp4"
    )
    client.put_object(Bucket=s3_bucket, Key="x/zero.mp4", Body=b"")
    client.put_object(Bucket=s3_bucket, Key="x/text.mp4", Body=b"not a video\n" * 50)
    srcs = {s.relpath: s for s in list_archive(f"s3://{s3_bucket}/x")}
    assert set(srcs) == {"good.mp4", "sub/../escape.mp4", "zero.mp4", "text.mp4"}
    rows = {r["relpath"]: r for r in probe_archive(list(srcs.values())).to_pylist()}
    assert rows["good.mp4"]["probe_error"] is None and rows["good.mp4"]["frames"] == 24
    assert "unsafe S3 key" in rows["sub/../escape.mp4"]["probe_error"]
    assert "empty (0 bytes)" in rows["zero.mp4"]["probe_error"]
    assert "not a readable video container" in rows["text.mp4"]["probe_error"]
    with pytest.raises(UndecodableVideoError, match="unsafe S3 key"):
        materialise(srcs["sub/../escape.mp4"], cache_dir=str(cache))
    with pytest.raises(UndecodableVideoError, match="not a video"):
        open_reader(materialise(srcs["text.mp4"], cache_dir=str(cache)))
    # Nothing was ever written outside the cache folder.
    assert not (cache.parent / "escape.mp4").exists()
    assert all(p.is_relative_to(cache) for p in _files(cache))


def test_cache_path_never_leaves_the_cache(tmp_path):
    for uri in (
        "s3://b1/../../etc/passwd",
        "s3://b1/a/./b.mp4",
        "s3://../x.mp4",
        "s3://b1//abs.mp4",
    ):
        try:
            path = cache_path(uri, "etag", tmp_path)
        except UndecodableVideoError:
            continue
        assert path.resolve().is_relative_to(tmp_path.resolve()), uri
    with pytest.raises(UndecodableVideoError, match="unsafe S3 key"):
        cache_path("s3://b1/a/../../../x.mp4", "etag", tmp_path)


def test_cli_probe_against_s3(s3_bucket, tiny_archive):
    _upload(tiny_archive, s3_bucket, "a")
    res = CliRunner().invoke(app, ["probe", f"s3://{s3_bucket}/a"], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "test/test_001.mp4" in res.output and "64x48" in res.output and "error" not in res.output
