"""Credentials out of URIs before they are written anywhere.

    redact_uri("s3://AKIA:secret@minio:9000/bucket/a.mp4")   # "s3://***@minio:9000/bucket/a.mp4"
    redact_uri("https://host/v.mp4?X-Amz-Signature=abc&x=1")  # "https://host/v.mp4?X-Amz-Signature=***&x=1"
    redact({"config": {"address": "ray://u:p@head:10001"}})   # the same, through dicts and lists

The user-info part of any ``scheme://user:password@host`` is replaced whole (a user name
alone can be a key id), and so are the values of the query parameters that carry
signatures and tokens in presigned URLs.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SCHEME = r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)"
# user:password@ where a pasted secret may hold "/" or "?" unescaped (AWS keys do), then
# a bare user@ that ends before the path.
_USER_PASSWORD = re.compile(_SCHEME + r"[^\s@:/]*:[^\s@]*@")
_USER = re.compile(_SCHEME + r"[^/?#@\s]*@")
_SECRET_PARAMS = re.compile(
    r"(?P<key>[?&](?:X-Amz-(?:Signature|Credential|Security-Token)|sig|signature|token|"
    r"access_token|password|passwd|secret|api_key|apikey)=)[^&#\s]*",
    re.IGNORECASE,
)


def redact_uri(text: str) -> str:
    """``text`` with the credentials of every URI in it masked."""
    text = _USER_PASSWORD.sub(rf"\g<scheme>{MASK}@", text)
    text = _USER.sub(rf"\g<scheme>{MASK}@", text)
    return _SECRET_PARAMS.sub(rf"\g<key>{MASK}", text)


def redact(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, strings) with every string redacted."""
    if isinstance(obj, str):
        return redact_uri(obj)
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact(v) for v in obj)
    return obj
