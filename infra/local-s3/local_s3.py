"""A local S3 server for trying raystack by hand: moto's S3 API on loopback, with buckets.

The tests start the same server in-process (``tests/conftest.py``); this script is for a
person at a shell. It creates the buckets asked for, optionally uploads local folders, prints
the environment that points boto3, pyarrow and raystack at it, then serves until Ctrl-C.
State lives in memory and is gone when it stops.

    python infra/local-s3/local_s3.py --port 5000 --bucket cams --bucket store \\
        --upload ./videos s3://cams/2024/
    # AWS_ENDPOINT_URL=http://127.0.0.1:5000
    # ...
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

# moto accepts any credentials; these are the ones the printed environment carries.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="infra/local-s3/run.sh",
        description="Serve moto's S3 API on loopback for manual raystack runs.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; the server has no auth)")
    p.add_argument("--port", type=int, default=5000, help="port (0 picks a free one)")
    p.add_argument("--bucket", action="append", default=[], metavar="NAME",
                   help="create this bucket (repeatable)")
    p.add_argument("--upload", nargs=2, action="append", default=[], metavar=("DIR", "S3_URI"),
                   help="upload the files under DIR to S3_URI (s3://bucket/prefix/; repeatable)")
    return p.parse_args(argv)


def upload_tree(client, folder: Path, uri: str) -> int:
    """Upload every file under ``folder`` to ``uri`` keeping relative paths; returns the count."""
    from raystack.io.s3 import parse_s3_uri

    if not folder.is_dir():
        msg = f"--upload {folder}: not a folder"
        raise SystemExit(msg)
    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, **CREDENTIALS}
    # raystack's client reads the endpoint and credentials from the environment.
    os.environ.update(env)
    os.environ.pop("AWS_PROFILE", None)
    from raystack.io.s3 import s3_client

    client = s3_client()
    try:
        for name in args.bucket:
            client.create_bucket(Bucket=name)
        for folder, uri in args.upload:
            n = upload_tree(client, Path(folder), uri)
            print(f"# uploaded {n} file(s) from {folder} to {uri}", file=sys.stderr)
    except BaseException:
        server.stop()
        raise

    # Stdout carries only the environment, so `eval "$(... | head -4)"`-style use works.
    for key, value in env.items():
        print(f"export {key}={value}")
    print(f"# local S3 at {endpoint}: buckets {sorted(args.bucket)}; Ctrl-C stops it",
          file=sys.stderr, flush=True)
    sys.stdout.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
