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

import re
from pathlib import Path
from typing import Any

from raystack.io.fileroot import FileRoot
from raystack.io.s3 import is_s3_uri

CHECKPOINT_RE = re.compile(r"^checkpoint_epoch_(\d+)$")
MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
SUMMARY_FILE = "train.json"


def checkpoint_dir_name(epoch: int) -> str:
    """Folder name of the checkpoint written after ``epoch`` (1-based) epochs."""
    return f"checkpoint_epoch_{epoch:04d}"


class RunStorage:
    """One run's folder (a :class:`~raystack.io.fileroot.FileRoot`); paths below it are
    '/'-separated.

    The pyarrow filesystem is made at construction, so an instance pickled to Ray Train
    workers carries the driver's S3 endpoint and keys.
    """

    def __init__(self, storage: str, name: str) -> None:
        if is_s3_uri(storage):
            where = f"{storage.rstrip('/')}/{name}"
        else:
            where = str(Path(storage).expanduser().absolute() / name)
        self.files = FileRoot(where)
        self.fs = self.files.fs
        self.is_s3 = self.files.is_s3
        self.root = self.files.root
        self.display = self.files.uri
        self.name = name

    def path(self, rel: str = "") -> str:
        """Filesystem path of ``rel`` inside the run."""
        return self.files.path(rel)

    def uri(self, rel: str = "") -> str:
        """Readable location of ``rel`` (a local path or an s3:// URI)."""
        return self.files.uri_of(rel)

    def ray_storage(self) -> tuple[str, Any]:
        """``(storage_path, storage_filesystem)`` for Ray Train's ``RunConfig``."""
        return self.root, (self.fs if self.is_s3 else None)

    def exists(self, rel: str) -> bool:
        return self.files.exists(rel)

    def checkpoints(self, task: str) -> list[tuple[int, str]]:
        """``(epoch, rel)`` of the complete epoch checkpoints of ``task``, oldest first."""
        from pyarrow import fs

        out = []
        for info in self.files.list(task):
            m = CHECKPOINT_RE.match(info.base_name)
            if info.type == fs.FileType.Directory and m:
                rel = f"{task}/{info.base_name}"
                # A folder without both files is a write cut short: not a checkpoint.
                if self.exists(f"{rel}/{STATE_FILE}") and self.exists(f"{rel}/{MODEL_FILE}"):
                    out.append((int(m.group(1)), rel))
        return sorted(out)

    def upload_dir(self, local: str | Path, rel: str) -> None:
        """Copy a local folder to ``rel``, each file appearing whole."""
        for f in sorted(Path(local).iterdir()):
            if f.is_file():
                self.put_file(f, f"{rel}/{f.name}")

    def put_file(self, local: str | Path, rel: str) -> None:
        """Copy one local file to ``rel``; a reader never sees a half-written file."""
        self.files.put_file(local, rel)

    def get_dir(self, rel: str, local: str | Path) -> Path:
        """Copy the folder ``rel`` into the local folder ``local`` (created); returns it."""
        return self.files.get_dir(rel, local)

    def delete_dir(self, rel: str) -> None:
        self.files.delete_dir(rel)

    def read_json(self, rel: str) -> dict[str, Any] | None:
        """The JSON document at ``rel``, or None when there is none."""
        return self.files.read_json(rel)

    def write_json(self, rel: str, doc: dict[str, Any]) -> None:
        """Write ``doc`` to ``rel`` (replacing it as a whole)."""
        self.files.write_json(rel, doc)
