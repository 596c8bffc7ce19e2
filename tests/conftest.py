"""Shared fixtures. S3 tests run against moto's real S3 server on loopback, not mocks."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 and a free port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point the standard AWS environment at the local server; yields the endpoint URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env, request):
    """A fresh, empty bucket on the local server; yields its name."""
    from raystack.io.s3 import s3_client

    name = "rs-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")
    name = name[:60].rstrip("-")
    client = s3_client()
    client.create_bucket(Bucket=name)
    yield name
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]
    for k in keys:
        client.delete_object(Bucket=name, Key=k)
    client.delete_bucket(Bucket=name)


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
    os.environ.setdefault("RAYSTACK_TEST", "1")
