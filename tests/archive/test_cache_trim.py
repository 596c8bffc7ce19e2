"""The S3 video cache stays under its size cap: least recently used out, recent ones spared."""

from __future__ import annotations

import os
import time

import pytest

from raystack.io.cache import cache_path, fetch, trim_cache


def _file(path, size: int, age_s: float, now: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_trim_removes_least_recently_used_until_under_the_cap(tmp_path):
    now = time.time()
    old = _file(tmp_path / "b" / "old.mp4", 400, 3000, now)
    mid = _file(tmp_path / "b" / "sub" / "mid.mp4", 400, 2000, now)
    new = _file(tmp_path / "b" / "new.mp4", 400, 1000, now)
    assert trim_cache(tmp_path, 900, now=now) == [old]
    assert not old.exists() and mid.exists() and new.exists()
    assert trim_cache(tmp_path, 900, now=now) == []  # already under the cap
    assert set(trim_cache(tmp_path, 0, now=now)) == {mid, new}


def test_trim_spares_recent_and_kept_files_and_sweeps_stale_parts(tmp_path):
    now = time.time()
    kept = _file(tmp_path / "kept.mp4", 500, 5000, now)
    recent = _file(tmp_path / "recent.mp4", 500, 10, now)  # within the grace period
    stale_part = _file(tmp_path / ".part-abc.mp4", 100, 7200, now)
    live_part = _file(tmp_path / ".part-def.mp4", 100, 60, now)  # a download in progress
    removed = trim_cache(tmp_path, 0, keep=[kept], now=now)
    assert removed == [stale_part]
    assert kept.exists() and recent.exists() and live_part.exists()


@pytest.mark.slow
def test_fetch_with_a_cap_evicts_old_videos_and_keeps_the_new_one(s3_bucket, tmp_path):
    from raystack.io.s3 import s3_client

    client = s3_client()
    uris = []
    for i in range(3):
        client.put_object(Bucket=s3_bucket, Key=f"cams/v{i}.mp4", Body=b"v" * 1000)
        uris.append(f"s3://{s3_bucket}/cams/v{i}.mp4")
    cache = tmp_path / "cache"
    paths = [fetch(u, cache_dir=cache, max_bytes=2500) for u in uris[:2]]
    past = time.time() - 3600
    for p in paths:  # both used an hour ago: past the grace period
        os.utime(p, (past, past))
    os.utime(paths[1], (past + 60, past + 60))  # v1 used more recently than v0
    third = fetch(uris[2], cache_dir=cache, max_bytes=2500)
    assert third.exists() and not paths[0].exists() and paths[1].exists()
    etag = client.head_object(Bucket=s3_bucket, Key="cams/v0.mp4")["ETag"].strip('"')
    assert cache_path(uris[0], etag, cache) == paths[0]
    again = fetch(uris[0], cache_dir=cache)  # evicted: fetched again, whole
    assert again.read_bytes() == b"v" * 1000


def test_scan_config_carries_the_cap_in_bytes():
    from raystack.errors import ConfigError
    from raystack.scan.config import ScanConfig, check_config

    assert ScanConfig().cache_max_bytes() == 50 * 2**30
    assert ScanConfig(cache_max_gb=0).cache_max_bytes() is None
    with pytest.raises(ConfigError, match="cache_max_gb"):
        check_config(ScanConfig(archive="a", store="s", checkpoints=("fp.pt",), cache_max_gb=-1))
