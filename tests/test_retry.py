"""raystack.retry: which errors are retried, the budget, and the message when it runs out."""

from __future__ import annotations

import errno

import pytest

from raystack import retry
from raystack.errors import InfrastructureError


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(retry.time, "monotonic", lambda: c.t)
    return c


def _flaky(n: int, err: Exception):
    calls = {"n": 0}

    def fn():
        calls["n"] += 1
        if calls["n"] <= n:
            raise err
        return "ok"

    return fn, calls


def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def test_transient_errors_are_told_apart_from_errors_of_the_request():
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    transient = [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        TimeoutError("timed out"),
        OSError(errno.EIO, "I/O error"),  # a network filesystem whose server is away
        OSError("When reading information for key 'x': AWS Error NETWORK_CONNECTION during "
                "HeadObject operation: curlCode: 7, Couldn't connect to server"),  # pyarrow S3
        _client_error("SlowDown", 503),
        _client_error("InternalError", 500),
    ]
    permanent = [
        _client_error("NoSuchKey", 404),
        _client_error("AccessDenied", 403),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
        PermissionError(errno.EACCES, "denied"),
        FileNotFoundError(errno.ENOENT, "missing"),
        ValueError("bad"),
        InfrastructureError("already retried"),
    ]
    assert [retry.is_transient(e) for e in transient] == [True] * len(transient)
    assert [retry.is_transient(e) for e in permanent] == [False] * len(permanent)


def test_an_outage_shorter_than_the_budget_is_ridden_out_with_growing_waits(clock):
    fn, calls = _flaky(6, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    before = retry.stats()
    pol = retry.RetryPolicy(total_s=120, base_s=1, max_wait_s=8)
    assert retry.call(fn, what="write", where="s3://b/k", pol=pol, sleep=clock.sleep) == "ok"
    assert calls["n"] == 7
    caps = [min(8, 2 ** i) for i in range(6)]
    assert all(cap / 2 <= s <= cap for s, cap in zip(clock.sleeps, caps, strict=True))
    after = retry.stats()
    assert after["retries"] - before["retries"] == 6
    assert after["recovered"] - before["recovered"] == 1


def test_when_the_budget_runs_out_the_error_names_the_object_and_says_a_rerun_resumes(clock):
    fn, calls = _flaky(10**6, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    pol = retry.RetryPolicy(total_s=60, base_s=1, max_wait_s=8)
    with pytest.raises(InfrastructureError) as info:
        retry.call(fn, what="write", where="s3://store/manifest/x.parquet", pol=pol,
                   sleep=clock.sleep)
    text = str(info.value)
    assert "s3://store/manifest/x.parquet" in text and "ConnectionRefusedError" in text
    assert "rerun" in text and "resumes" in text
    assert 50 <= clock.t <= 60 and calls["n"] > 5


def test_errors_of_the_request_are_raised_at_once(clock):
    fn, calls = _flaky(1, _client_error("NoSuchKey", 404))
    with pytest.raises(Exception, match="NoSuchKey"):
        retry.call(fn, what="read", where="s3://b/k", sleep=clock.sleep)
    assert calls["n"] == 1 and clock.sleeps == []


def test_configure_sets_the_process_budget():
    old = retry.policy()
    try:
        assert retry.configure(total_s=7).total_s == 7 and retry.policy().total_s == 7
    finally:
        retry.configure(total_s=old.total_s)


def test_missing_s3_credentials_are_a_settings_error_naming_the_object_not_a_bug():
    from botocore.exceptions import NoCredentialsError

    from raystack.errors import ConfigError
    from raystack.exitcodes import INVALID, exit_code

    def fn():
        raise NoCredentialsError()

    with pytest.raises(ConfigError, match=r"read s3://cams/a\.mp4: no S3 credentials found") as e:
        retry.call(fn, what="read", where="s3://cams/a.mp4", sleep=lambda s: None)
    assert exit_code(e.value) == INVALID
