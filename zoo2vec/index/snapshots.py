"""Index snapshots: each indexing run writes a new folder and then swaps a pointer to it.

<zoo>/.zoo2vec/ (the zoo's state folder, zoo.layout)
    CURRENT                 the id of the snapshot readers use (replaced atomically)
    snapshots/<id>/         catalog.duckdb, task.faiss, card.faiss
    probes/<probe set>/     cached black-box outputs, one .npy per model fingerprint and adapter entry
A reader opens whatever CURRENT names; a crashed run leaves only an unreferenced folder.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from zoo2vec.errors import ZooError
from zoo2vec.zoo.layout import ZooLayout

KEEP = 3  # snapshots kept, so that a reader that opened an older one can finish


class SnapshotStore:
    def __init__(self, zoo_root: Path):
        self.base = ZooLayout(zoo_root).state
        self.snapshots = self.base / "snapshots"
        self.probes = self.base / "probes"

    @contextmanager
    def lock(self):
        """One indexing run per zoo at a time; a lock left by a dead process is taken over."""
        self.base.mkdir(parents=True, exist_ok=True)
        path = self.base / "index.lock"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = int(path.read_text().strip() or 0)
            if _alive(pid):
                raise ZooError(f"another indexing run (pid {pid}) holds {path}; wait for it to finish") from None
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def current(self) -> Path | None:
        try:
            sid = (self.base / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        path = self.snapshots / sid
        return path if path.is_dir() else None

    def create(self) -> Path:
        sid = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        path = self.snapshots / sid
        path.mkdir(parents=True)
        return path

    def publish(self, snapshot: Path):
        """Point CURRENT at `snapshot` in one atomic rename, after its files are on disk."""
        for f in snapshot.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        tmp = self.base / f".CURRENT.{uuid.uuid4().hex}"
        tmp.write_text(snapshot.name + "\n")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.base / "CURRENT")
        self.collect()

    def collect(self):
        """Remove all but the newest KEEP published snapshots, and unpublished leftovers of crashed runs."""
        current = self.current()
        if current is None:
            return
        ids = sorted(p.name for p in self.snapshots.iterdir() if p.is_dir())
        at = ids.index(current.name)
        keep = set(ids[max(0, at - KEEP + 1) : at + 1])
        for sid in ids:
            if sid not in keep:
                shutil.rmtree(self.snapshots / sid, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
