"""Read S3 objects in place, without the download cache: ranged reads and small whole reads.

Probing reads only the bytes it needs (a container's header, its index, its last frame)
through :class:`S3RangeFile`; the images of a frame folder are small and read whole with
:func:`read_object`.

    with S3RangeFile("s3://cams/a.mp4", size=27_000_000, etag="9b2c...") as f:
        head = f.read(1 << 20)
"""

from __future__ import annotations

import io

from raystack import retry
from raystack.io.cache import check_key
from raystack.io.s3 import client_error, s3_client


def read_object(uri: str) -> bytes:
    """The whole body of a small object (one image of a frame folder)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = check_key(uri)
    try:
        return retry.call(lambda: s3_client().get_object(Bucket=bucket, Key=key)["Body"].read(),
                          what="read", where=uri)
    except (ClientError, BotoCoreError) as e:
        raise client_error(uri, e, "read it") from e


class S3RangeFile(io.RawIOBase):
    """A read-only, seekable file over ranged GETs of one S3 object.

    Reads go through a block buffer (1 MiB by default), so a demuxer that reads a
    header and seeks to an index costs a few requests, not a download.
    """

    def __init__(self, uri: str, size: int, etag: str | None = None, block: int = 1 << 20) -> None:
        super().__init__()
        self.uri = uri
        self._bucket, self._key = check_key(uri)
        self._size = int(size)
        self._etag = etag
        self._block = block
        self._pos = 0
        self._buf = b""
        self._buf_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _fill(self, start: int, length: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        stop = min(self._size, start + max(length, self._block)) - 1
        kwargs = {"IfMatch": f'"{self._etag}"'} if self._etag else {}
        def get() -> bytes:
            resp = s3_client().get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{stop}", **kwargs
            )
            return resp["Body"].read()

        try:
            self._buf = retry.call(get, what="read a byte range of", where=self.uri)
        except (ClientError, BotoCoreError) as e:
            raise client_error(self.uri, e, "read a byte range") from e
        self._buf_start = start

    def readinto(self, b) -> int:
        if self._pos >= self._size:
            return 0
        want = min(len(b), self._size - self._pos)
        off = self._pos - self._buf_start
        if off < 0 or off + want > len(self._buf):
            self._fill(self._pos, want)
            off = 0
        chunk = self._buf[off : off + want]
        b[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)
