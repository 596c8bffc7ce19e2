"""infra/ against the project: what infra/README.md quotes, and the local S3 script.

The deployment files cannot run here, so every name they use is checked against what
exists (helpers: infra_kit.py).
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys

from infra_kit import (
    CLUSTER,
    CLUSTER_CONFIGS,
    DOCKERFILE,
    INFRA,
    README,
    ROOT,
    image_name,
    load_docs,
)

# --- README: commands and paths it quotes ------------------------------------------------


def readme_commands(prefix: str) -> list[list[str]]:
    """Commands starting with ``prefix`` in the README's code blocks and inline code."""
    text = README.read_text()
    found = [ln.strip() for ln in text.splitlines() if ln.startswith("    ")]
    found += re.findall(r"`([^`\n]+)`", text)
    return [shlex.split(c.split(" #")[0]) for c in found if c.startswith(prefix + " ")]


def test_readme_documents_the_image_build():
    assert f"docker build -f infra/docker/Dockerfile -t {image_name()} ." in README.read_text()
    assert f"-t {image_name()} ." in DOCKERFILE.read_text()


def cli_parse_error(argv: list[str]) -> str | None:
    """Why ``raystack <argv>`` would not parse (unknown command or option, missing or bad
    argument), or None; nothing runs."""
    import typer

    from raystack.cli import app

    group = typer.main.get_command(app)
    name, args = argv[0], argv[1:]
    if name not in group.commands:
        return f"no command {name!r} (commands: {sorted(group.commands)})"
    try:
        group.commands[name].make_context(name, list(args))
    except Exception as err:  # typer vendors click: its UsageError is not click's
        return f"{type(err).__name__}: {err}"
    return None


def test_readme_raystack_commands_parse_with_the_cli():
    cmds = readme_commands("raystack")
    assert cmds, "infra/README.md quotes no raystack command"
    for argv in cmds:
        err = cli_parse_error(argv[1:])
        assert err is None, f"`{' '.join(argv)}` does not parse: {err}"
    assert "NoSuchOption" in cli_parse_error(["scan", "x", "--chekpoint", "fp.pt"])
    assert cli_parse_error(["scna", "x"]).startswith("no command")


def test_paths_quoted_in_infra_exist():
    """Repo paths the README and configs name, also as nodes see them (/home/ray/raystack/...)."""
    (target, _), = load_docs(CLUSTER)[0]["file_mounts"].items()
    texts = {p: p.read_text() for p in (README, CLUSTER, *CLUSTER_CONFIGS.values()) if p.exists()}
    for src, text in texts.items():
        for rel in re.findall(re.escape(target) + r"/([\w./-]+)", text):
            if rel.startswith("checkpoints/"):
                continue  # the user's own files, synced with the tree
            assert (ROOT / rel).exists(), f"{src.name} names {target}/{rel}: not in the repo"
        for rel in re.findall(r"(?<![\w/])((?:jobs|infra)/[\w./-]+\.(?:py|toml|yaml|sh))", text):
            assert (ROOT / rel).exists(), f"{src.name} names {rel}: not in the repo"


# --- local S3 ----------------------------------------------------------------------------


def test_local_s3_script_serves_buckets_and_uploads(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.txt").write_text("a")
    (tmp_path / "in" / "b.txt").write_text("b")
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.Popen(
        [str(INFRA / "local-s3" / "run.sh"), "--port", "0", "--bucket", "cams",
         "--upload", str(tmp_path / "in"), "s3://cams/pre"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        start_new_session=True,
    )
    try:
        # The four export lines come in one flush once the buckets and uploads are done.
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "local S3 printed nothing in 60 s"
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert all(ln.startswith("export ") for ln in lines), lines
        exports = dict(ln.removeprefix("export ").split("=", 1) for ln in lines)
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        import boto3

        client = boto3.client(
            "s3", endpoint_url=exports["AWS_ENDPOINT_URL"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            region_name=exports["AWS_DEFAULT_REGION"],
        )
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="cams")["Contents"])
        assert keys == ["pre/b.txt", "pre/sub/a.txt"]
        assert client.get_object(Bucket="cams", Key="pre/sub/a.txt")["Body"].read() == b"a"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
