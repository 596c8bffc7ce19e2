"""The exit codes of every ``raystack`` command, and the one function that picks them.

    exit_code(OSError(errno.ENOSPC, "No space left on device"))   # 3, UNAVAILABLE
    exit_code(ConfigError("bad --segment-frames"))                 # 2, INVALID
    describe(err)   # "no space left on device: ..." for storage errors, else str(err)

A scheduler (cron, Airflow, Kubernetes) decides from the code alone whether to alert, fix
the command, or simply run it again: 3 means "nothing is wrong with the job, the storage
or cluster was not there; run it again" and a rerun resumes where it stopped. The table
is also in the CLI's help epilog and in docs/cli.md.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterable, Iterator

OK = 0
FAILED = 1  # the command ran; some of its work failed (units, unreadable files, training)
INVALID = 2  # invalid settings, usage or input (bad option, missing or empty archive, bad SQL)
UNAVAILABLE = 3  # storage or infrastructure unavailable: disk full, read-only, S3/Ray down
INTERNAL = 4  # an unexpected error: a bug in raystack (the traceback is printed)
INTERRUPTED = 130  # Ctrl-C / SIGINT, as shells report it

TABLE = (  # one line each: the CLI's help epilog; docs/cli.md has examples
    (OK, "success"),
    (FAILED, "part of the work failed (units, unreadable files, training); each file named"),
    (INVALID, "invalid settings, usage or input, e.g. a missing or empty archive"),
    (UNAVAILABLE, "storage or infrastructure unavailable (disk full, read-only, S3 or Ray "
                  "down); rerun to resume"),
    (INTERNAL, "unexpected error, a bug in raystack (the traceback is printed)"),
    (INTERRUPTED, "interrupted (Ctrl-C); rerun to resume"),
)


def epilog() -> str:
    """The exit-code table as the CLI's help epilog (one line per code)."""
    lines = ["Exit codes of every command (docs/cli.md):"]
    lines += [f"{code:>3}  {text}" for code, text in TABLE]
    # Click rewraps paragraphs; \b keeps these lines as they are.
    return "\b\n" + "\n".join(lines)


# errno values that mean the storage, not the request, is at fault.
_STORAGE_ERRNO = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (read-only or not writable by this user)",
    errno.EPERM: "operation not permitted (read-only or not writable by this user)",
    errno.EIO: "input/output error on the device",
    errno.ENOTCONN: "storage not connected",
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.ETIMEDOUT: "connection timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ESTALE: "stale network file handle",
}
# botocore / S3 error codes of a service that is there but not answering.
_S3_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
            "Throttling", "ThrottlingException", "RequestTimeTooSkewed", "503", "500"}
# pyarrow's S3 filesystem reports outages as OSError text without an errno.
_ARROW_S3_OUTAGE = ("NETWORK_CONNECTION", "Couldn't connect", "curlCode", "SERVICE_UNAVAILABLE",
                    "SLOW_DOWN", "Timeout was reached", "INTERNAL_FAILURE", "REQUEST_TIMEOUT")
# Ray and raystack classes matched by name, so this module imports neither Ray nor the
# train/scan packages (it runs on every command, including `--help`).
_BY_NAME = {
    "TrainingFailed": FAILED,
    "RunFailed": FAILED,
    "ScanError": UNAVAILABLE,  # no scan worker could start on the cluster
    "InfrastructureError": UNAVAILABLE,
    "RaySystemError": UNAVAILABLE,
    "GetTimeoutError": UNAVAILABLE,
    "QueryCancelled": INTERRUPTED,
    "QueryTimeout": FAILED,  # the statement ran past its limit
}


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from, outermost first (bounded, no cycles)."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen and len(seen) < 16:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def storage_reason(err: BaseException) -> str | None:
    """What went wrong with the storage, in words, if ``err`` is a storage outage; else None."""
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNO:
            return _STORAGE_ERRNO[e.errno]
        if isinstance(e, (ConnectionError, TimeoutError)):
            return f"storage unreachable ({type(e).__name__})"
        if isinstance(e, OSError) and e.errno is None and any(
                s in str(e) for s in _ARROW_S3_OUTAGE):
            return "S3 unreachable or not answering"
        mod = type(e).__module__ or ""
        if mod.startswith("botocore") or mod.startswith("urllib3"):
            reason = _boto_reason(e)
            if reason:
                return reason
    return None


def _boto_reason(e: BaseException) -> str | None:
    name = type(e).__name__
    if name in ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
                "ConnectTimeoutError", "ConnectionError", "ProxyConnectionError",
                "HTTPClientError", "NewConnectionError", "ProtocolError"):
        return f"S3 unreachable ({name})"
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _S3_BUSY or int(status) >= 500:
            return f"S3 not answering ({code or status})"
    return None


def exit_code(err: BaseException) -> int:
    """The exit code for an exception that ended a command (see :data:`TABLE`)."""
    if isinstance(err, KeyboardInterrupt):
        return INTERRUPTED
    if storage_reason(err) is not None:
        return UNAVAILABLE
    for klass in type(err).__mro__:
        if klass.__name__ in _BY_NAME:
            return _BY_NAME[klass.__name__]
    from raystack.errors import RaystackError

    if isinstance(err, (RaystackError, ValueError, OSError)):
        # OSError here is not a storage outage (checked above): a missing or wrong path.
        return INVALID
    return INTERNAL


def describe(err: BaseException) -> str:
    """The one-line message for ``err``: the storage reason first when it is an outage."""
    text = str(err) or type(err).__name__
    reason = storage_reason(err)
    if reason is None or reason in text:
        return text
    where = next((str(e.filename) for e in _chain(err)
                  if isinstance(e, OSError) and e.filename), None)
    if where and where not in text:
        return f"{reason}: {where}: {text}"
    return f"{reason}: {text}"


@contextlib.contextmanager
def storage_guard(where: str, resume: str) -> Iterator[None]:
    """Turn a storage outage raised inside the block into an :class:`InfrastructureError`
    whose message names ``where`` (the store), what happened and how a rerun resumes.

    Every other exception passes through unchanged.
    """
    from raystack.errors import InfrastructureError

    try:
        yield
    except InfrastructureError:
        raise
    except Exception as e:
        reason = storage_reason(e)
        if reason is None:
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        msg = f"{where}: {reason} ({type(e).__name__}: {first}); {resume}"
        raise InfrastructureError(msg) from e


# How an infrastructure failure reads in the manifest's error column ("Type: message").
_INFRA_ERROR_TEXT = ("No space left on device", "Read-only file system", "Disk quota exceeded",
                     "Errno 28]", "Errno 30]", "Errno 122]", *_ARROW_S3_OUTAGE)
_INFRA_ERROR_TYPES = ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
                      "ConnectTimeoutError", "ConnectionError", "ConnectionRefusedError",
                      "ConnectionResetError", "TimeoutError", "InfrastructureError")


def is_infrastructure_failure(error: str | None) -> bool:
    """Whether a failed unit's recorded error reads as the storage's fault, not the input's
    (for manifest rows without a ``failure_kind``)."""
    text = error or ""
    return text.split(":", 1)[0].strip() in _INFRA_ERROR_TYPES or any(
        s in text for s in _INFRA_ERROR_TEXT)


def run_exit_code(ok: bool, failures: Iterable[tuple[str | None, str | None]]) -> int:
    """The code of a scan or status that finished: 0, 1 (units failed or pending), or 3 when
    any unit failed because of the infrastructure, so a scheduler reruns it (a rerun
    retries exactly the failed units; one that then fails on its input exits 1).

    ``failures`` holds ``(failure_kind, error)`` of each failed unit's latest attempt: the
    manifest's ``failure_kind`` (``"infrastructure"``: its worker died, the store or the
    network stayed away; ``"input"``: the file) decides. Rows written before that column
    existed have no kind; their error text decides (:func:`is_infrastructure_failure`).
    """
    if ok:
        return OK
    for kind, error in failures:
        if kind == "infrastructure" or (kind is None and is_infrastructure_failure(error)):
            return UNAVAILABLE
    return FAILED
