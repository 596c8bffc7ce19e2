"""S3 clients shared by the archive listing, the download cache, the store and run storage.

Endpoint and credentials come from the standard AWS environment and config files
(``AWS_ENDPOINT_URL[_S3]``, ``AWS_ACCESS_KEY_ID``, ``~/.aws/config``, ...). Clients are
made per process and never pickled: Ray ships work to other processes, and a boto3
client holds sockets and locks.

    bucket, key = parse_s3_uri("s3://cams/2024/cam01.mp4")   # ("cams", "2024/cam01.mp4")
    s3_client().get_object(Bucket=bucket, Key=key)
"""

from __future__ import annotations

import os
import threading
from typing import Any

from raystack.errors import ArchiveError, RaystackError, UndecodableVideoError

_local = threading.local()


def is_s3_uri(uri: str) -> bool:
    return str(uri).startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/...`` -> ``(bucket, "key/...")``; the key may be empty (a bucket root)."""
    if not is_s3_uri(uri):
        msg = f"not an s3:// URI: {uri!r}"
        raise ArchiveError(msg)
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        msg = f"S3 URI {uri!r} names no bucket; expected s3://bucket/prefix"
        raise ArchiveError(msg)
    return bucket, key


def endpoint_url() -> str | None:
    """Custom endpoint (MinIO, moto, Ceph...) from the standard AWS variables, if any."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_client(retries: str = "standard", max_attempts: int = 5) -> Any:
    """A boto3 S3 client for this process and thread, created on first use."""
    key = (os.getpid(), retries, max_attempts, endpoint_url())
    cache = getattr(_local, "clients", None)
    if cache is None:
        cache = _local.clients = {}
    if key not in cache:
        import boto3
        from botocore.config import Config

        extra: dict[str, Any] = {}
        if endpoint_url():
            # boto3 >= 1.36 sends checksums that some non-AWS S3 servers reject.
            extra = {
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            }
        config = Config(retries={"mode": retries, "max_attempts": max_attempts}, **extra)
        session = boto3.session.Session()
        cache[key] = session.client("s3", endpoint_url=endpoint_url(), config=config)
    return cache[key]


def arrow_s3_filesystem() -> Any:
    """A ``pyarrow.fs.S3FileSystem`` configured from the same environment as :func:`s3_client`."""
    from pyarrow import fs

    kwargs: dict[str, Any] = {}
    ep = endpoint_url()
    if ep:
        scheme, _, host = ep.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs.update(
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            session_token=os.environ.get("AWS_SESSION_TOKEN"),
        )
    return fs.S3FileSystem(**kwargs)


def client_error(uri: str, err: Exception, what: str) -> RaystackError:
    """The domain error for a boto3 error on ``uri`` while trying to ``what``."""
    code = getattr(err, "response", {}).get("Error", {}).get("Code", type(err).__name__)
    if code in ("412", "PreconditionFailed"):
        msg = f"{uri}: the object changed since it was listed; list the archive again"
        return ArchiveError(msg)
    if code in ("404", "NoSuchKey", "NotFound"):
        return UndecodableVideoError(uri, f"object does not exist ({what})")
    msg = f"{uri}: cannot {what}: {code}: {err}"
    return ArchiveError(msg)
