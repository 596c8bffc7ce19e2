"""archive.materialise: a listed video as local media, fetched into the cache when on S3."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from raystack.archive import list_archive, materialise
from raystack.errors import ArchiveError
from raystack.media import LocalMedia
from raystack.synth import write_frames


def test_local_sources_are_used_where_they_are(tmp_path):
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    write_frames(tmp_path / "a" / "Test001", frames, ext=".png")
    (tmp_path / "a" / "cam.mp4").write_bytes(b"not decoded here")
    srcs = {s.relpath: s for s in list_archive(tmp_path / "a")}
    video = materialise(srcs["cam.mp4"])
    assert video == LocalMedia(str(tmp_path / "a" / "cam.mp4"), "video",
                               str(tmp_path / "a" / "cam.mp4"))
    folder = materialise(str(tmp_path / "a" / "Test001"))  # a path names one source
    assert folder.kind == "frames" and folder.path == str(tmp_path / "a" / "Test001")
    assert [Path(m).name for m in folder.members] == ["0000.png", "0001.png", "0002.png"]
    assert folder.member_names == folder.members
    with pytest.raises(ArchiveError, match="does not exist"):
        materialise(tmp_path / "missing.mp4")


def test_an_s3_uri_is_fetched_into_the_given_cache(s3_bucket, tmp_path):
    from raystack.io.s3 import s3_client

    s3_client().put_object(Bucket=s3_bucket, Key="cams/v.mp4", Body=b"v" * 100)
    media = materialise(f"s3://{s3_bucket}/cams/v.mp4", cache_dir=tmp_path / "cache")
    assert media.uri == f"s3://{s3_bucket}/cams/v.mp4" and media.kind == "video"
    assert Path(media.path).is_relative_to(tmp_path / "cache" / s3_bucket)
    assert Path(media.path).read_bytes() == b"v" * 100


def test_a_frame_folder_under_a_cache_cap_keeps_its_images_and_evicts_old_files(
        s3_bucket, tmp_path):
    from raystack.io.s3 import s3_client

    client = s3_client()
    for i in range(4):
        client.put_object(Bucket=s3_bucket, Key=f"ped/T1/{i:03d}.jpg", Body=b"i" * 300)
    cache = tmp_path / "cache"
    old = cache / "other" / "old.mp4"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"o" * 1000)
    past = time.time() - 3600
    os.utime(old, (past, past))
    [src] = list_archive(f"s3://{s3_bucket}/ped")
    media = materialise(src, cache_dir=cache, max_bytes=1500)
    assert all(Path(m).read_bytes() == b"i" * 300 for m in media.members)
    assert not old.exists()
    assert media.member_uris == src.members and len(media.members) == 4
