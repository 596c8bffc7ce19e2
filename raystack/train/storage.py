"""Where a training run lives: ``STORAGE/<name>/`` on a local disk or S3, through pyarrow.fs.

Layout (the same for in-process and Ray Train runs, so either can resume the other):

    STORAGE/<name>/train.json                         config, data, history, selection
    STORAGE/<name>/<task>/checkpoint_epoch_0003/      one per epoch (task = fp | fr)
        model.pt    a raystack checkpoint of that epoch (load_checkpoint reads it)
        state.pt    optimizer, scheduler, RNG, epoch, history: what resume needs
    STORAGE/<name>/<task>.pt                          the exported, selected checkpoint

Ray Train writes its own bookkeeping (a snapshot json, a marker file) next to the epoch
folders; it runs with ``RunConfig(storage_path=STORAGE/<name>, name=<task>)``.

    rs = RunStorage("s3://bucket/runs", "night1")
    rs.checkpoints("fp")        # [(1, "fp/checkpoint_epoch_0001"), (2, ...)]
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from raystack.archive.s3 import is_s3_uri, parse_s3_uri

CHECKPOINT_RE = re.compile(r"^checkpoint_epoch_(\d+)$")
MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
SUMMARY_FILE = "train.json"


def checkpoint_dir_name(epoch: int) -> str:
    """Folder name of the checkpoint written after ``epoch`` (1-based) epochs."""
    return f"checkpoint_epoch_{epoch:04d}"


class RunStorage:
    """One run's folder on a pyarrow filesystem; paths below it are '/'-separated."""

    def __init__(self, storage: str, name: str) -> None:
        from pyarrow import fs

        self.is_s3 = is_s3_uri(storage)
        if self.is_s3:
            from raystack.archive.s3 import arrow_s3_filesystem

            bucket, prefix = parse_s3_uri(storage.rstrip("/"))
            self.fs = arrow_s3_filesystem()
            self.root = "/".join(p for p in (bucket, prefix.strip("/"), name) if p)
            self.display = f"s3://{self.root}"
        else:
            self.fs = fs.LocalFileSystem()
            self.root = str(Path(storage).expanduser().absolute() / name)
            self.display = self.root
        self.name = name

    def path(self, rel: str = "") -> str:
        """Filesystem path of ``rel`` inside the run."""
        return f"{self.root}/{rel}" if rel else self.root

    def uri(self, rel: str = "") -> str:
        """Readable location of ``rel`` (a local path or an s3:// URI)."""
        return f"{self.display}/{rel}" if rel else self.display

    def ray_storage(self) -> tuple[str, Any]:
        """``(storage_path, storage_filesystem)`` for Ray Train's ``RunConfig``."""
        return self.root, (self.fs if self.is_s3 else None)

    def exists(self, rel: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self.path(rel)).type != fs.FileType.NotFound

    def checkpoints(self, task: str) -> list[tuple[int, str]]:
        """``(epoch, rel)`` of the complete epoch checkpoints of ``task``, oldest first."""
        from pyarrow import fs

        selector = fs.FileSelector(self.path(task), allow_not_found=True)
        out = []
        for info in self.fs.get_file_info(selector):
            m = CHECKPOINT_RE.match(info.base_name)
            if info.type == fs.FileType.Directory and m:
                rel = f"{task}/{info.base_name}"
                # A folder without both files is a write cut short: not a checkpoint.
                if self.exists(f"{rel}/{STATE_FILE}") and self.exists(f"{rel}/{MODEL_FILE}"):
                    out.append((int(m.group(1)), rel))
        return sorted(out)

    def upload_dir(self, local: str | Path, rel: str) -> None:
        """Copy a local folder to ``rel`` (files written under a temporary name first)."""
        for f in sorted(Path(local).iterdir()):
            if f.is_file():
                self.put_file(f, f"{rel}/{f.name}")

    def put_file(self, local: str | Path, rel: str) -> None:
        """Copy one local file to ``rel``; a reader never sees a half-written file."""
        from pyarrow import fs

        dest = self.path(rel)
        self.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        if self.is_s3:
            # An S3 object appears whole when its upload completes.
            fs.copy_files(str(local), dest, source_filesystem=fs.LocalFileSystem(),
                          destination_filesystem=self.fs)
            return
        tmp = f"{dest}.tmp"
        fs.copy_files(str(local), tmp, source_filesystem=fs.LocalFileSystem(),
                      destination_filesystem=self.fs)
        self.fs.move(tmp, dest)

    def get_dir(self, rel: str, local: str | Path) -> Path:
        """Copy the folder ``rel`` into the local folder ``local`` (created); returns it."""
        from pyarrow import fs

        local = Path(local)
        local.mkdir(parents=True, exist_ok=True)
        fs.copy_files(self.path(rel), str(local), source_filesystem=self.fs,
                      destination_filesystem=fs.LocalFileSystem())
        return local

    def delete_dir(self, rel: str) -> None:
        self.fs.delete_dir(self.path(rel))

    def read_json(self, rel: str) -> dict[str, Any] | None:
        """The JSON document at ``rel``, or None when there is none."""
        if not self.exists(rel):
            return None
        with self.fs.open_input_stream(self.path(rel)) as f:
            return json.loads(f.read().decode())

    def write_json(self, rel: str, doc: dict[str, Any]) -> None:
        """Write ``doc`` to ``rel`` (replacing it as a whole)."""
        dest = self.path(rel)
        self.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        data = (json.dumps(doc, indent=2, default=str) + "\n").encode()
        tmp = dest if self.is_s3 else f"{dest}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        if tmp != dest:
            self.fs.move(tmp, dest)
