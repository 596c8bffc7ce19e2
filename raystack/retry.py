"""Retry storage and archive I/O through outages: exponential backoff within a time budget.

An overnight scan talks to S3 (or a network filesystem) hundreds of thousands of times; a
store that stops answering for a minute must not cost a single unit. Every write of the
store and every read of the archive goes through :func:`call`, which retries *transient*
errors (connection refused or reset, timeouts, 5xx and throttling answers, EIO/ESTALE of a
network filesystem) with exponential backoff until the budget runs out, then raises
:class:`~raystack.errors.InfrastructureError` naming the operation, the object and the
last error. Errors that say something about the request itself (no such key, access
denied, a full or read-only disk) are raised at once: waiting does not fix them.

    from raystack import retry
    retry.configure(total_s=300)                 # the process's budget (ScanConfig.storage_retry_s)
    body = retry.call(lambda: client.get_object(...), what="download", where=uri)
    retry.stats()                                 # {"retries": 12, "recovered": 3, "gave_up": 0}
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from raystack.errors import ConfigError, InfrastructureError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Filesystem errnos a network filesystem (NFS, SMB, FUSE over S3) gives while its server is
# away; a full or read-only disk (ENOSPC, EROFS) or a permission error is not among them.
_TRANSIENT_ERRNOS = {errno.EIO, errno.ETIMEDOUT, errno.ESTALE, errno.EAGAIN, errno.ECONNRESET,
                     errno.ECONNREFUSED, errno.ECONNABORTED, errno.EHOSTUNREACH,
                     errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE}
# S3 answers that mean "try again later".
_TRANSIENT_CODES = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable",
                    "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling",
                    "ThrottlingException", "RequestLimitExceeded", "BadGateway"}
# What pyarrow's S3 filesystem says (in an OSError) when the endpoint does not answer.
_ARROW_TRANSIENT = ("NETWORK_CONNECTION", "Couldn't connect", "curlCode", "Connection refused",
                    "Timeout", "timed out", "SERVICE_UNAVAILABLE", "SLOW_DOWN",
                    "INTERNAL_FAILURE", "Connection reset", "Empty reply")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: ``total_s`` of wall time, waits from ``base_s`` doubling up
    to ``max_wait_s`` with full jitter (so workers do not hammer a store in step)."""

    total_s: float = 300.0
    base_s: float = 0.5
    max_wait_s: float = 15.0

    def wait(self, retry_no: int) -> float:
        """Seconds to sleep before retry number ``retry_no`` (1-based)."""
        cap = min(self.max_wait_s, self.base_s * 2 ** (retry_no - 1))
        return random.uniform(cap / 2, cap)


_lock = threading.Lock()
_policy = RetryPolicy()
_stats = {"retries": 0, "recovered": 0, "gave_up": 0}
# During an outage every operation in flight retries; one line every few seconds says so.
WARN_EVERY_S = 10.0
_last_warning = [-WARN_EVERY_S]


def configure(total_s: float | None = None, **kw: float) -> RetryPolicy:
    """Set this process's policy (the driver and every scan worker call it from the config)."""
    global _policy
    if total_s is not None:
        kw["total_s"] = float(total_s)
    with _lock:
        _policy = dataclasses.replace(_policy, **kw)
        return _policy


def policy() -> RetryPolicy:
    return _policy


def stats() -> dict[str, int]:
    """Retries made, operations that recovered after retrying, and those given up (this process)."""
    with _lock:
        return dict(_stats)


def _count(key: str) -> None:
    with _lock:
        _stats[key] += 1


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is the kind of error an outage causes (so waiting may cure it)."""
    if isinstance(err, InfrastructureError):
        return False  # already retried for the whole budget below us
    code = _client_error_code(err)
    if code is not None:
        return code in _TRANSIENT_CODES
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError, IncompleteReadError

        # refused, reset, timed out, closed, a body cut short
        boto = (BotoConnectionError, HTTPClientError, IncompleteReadError)
        if isinstance(err, boto):
            return True
        from botocore.exceptions import BotoCoreError

        if isinstance(err, BotoCoreError):
            text = str(err)
            return any(s in text for s in ("Connection", "connect", "timed out", "reset"))
    except ImportError:  # boto3 is a dependency; this only guards a stripped environment
        pass
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    if isinstance(err, OSError):
        if err.errno in _TRANSIENT_ERRNOS:
            return True
        text = str(err)
        return err.errno is None and any(s in text for s in _ARROW_TRANSIENT)
    return False


def _client_error_code(err: BaseException) -> str | None:
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None
    err_doc = response.get("Error") or {}
    code = err_doc.get("Code")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if status is not None and int(status) >= 500:
        return "500"
    return str(code) if code is not None else None


def call(
    fn: Callable[[], T],
    *,
    what: str,
    where: str,
    transient: Callable[[BaseException], bool] = is_transient,
    pol: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried on transient errors within the policy's budget.

    Args:
        fn: the operation; it must be safe to repeat (a whole PUT, a whole GET).
        what: what it does, for messages ("write", "download a byte range").
        where: the object, file or store it does it to.
        transient: which errors to retry (default :func:`is_transient`).
        pol: the policy (default: this process's, see :func:`configure`).

    Raises:
        InfrastructureError: the budget ran out; names ``where``, the time waited and the
            last error. Non-transient errors propagate unchanged.
    """
    p = pol or _policy
    start = time.monotonic()
    tries = 0
    while True:
        try:
            out = fn()
        except Exception as e:
            if _missing_credentials(e):
                # botocore's own text names no object and no remedy; waiting cannot cure it.
                msg = (f"cannot {what} {where}: no S3 credentials found ({type(e).__name__}); "
                       "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
                raise ConfigError(msg) from e
            if not transient(e):
                raise
            tries += 1
            waited = time.monotonic() - start
            pause = p.wait(tries)
            if waited + pause > p.total_s:
                _count("gave_up")
                msg = (
                    f"cannot {what} {where}: the storage did not answer for {waited:.0f} s "
                    f"({tries} tries; last error {type(e).__name__}: {_first_line(e)}); "
                    "a rerun with the same run id resumes"
                )
                raise InfrastructureError(msg) from e
            _count("retries")
            if _due_warning():
                log.warning("%s %s failed (%s: %s); retrying for up to %.0f s", what, where,
                            type(e).__name__, _first_line(e), p.total_s - waited)
            sleep(pause)
            continue
        if tries:
            _count("recovered")
        return out


def _missing_credentials(err: BaseException) -> bool:
    """botocore's NoCredentialsError / PartialCredentialsError (by name: retry stays a leaf
    module that imports no S3 library)."""
    return (type(err).__module__.startswith("botocore")
            and type(err).__name__ in ("NoCredentialsError", "PartialCredentialsError"))


def _due_warning() -> bool:
    now = time.monotonic()
    with _lock:
        if now - _last_warning[0] < WARN_EVERY_S:
            return False
        _last_warning[0] = now
        return True


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""
