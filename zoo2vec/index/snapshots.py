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
        """One indexing run per zoo at a time. An OS file lock (filelock: flock on Linux): the kernel releases it when
        its process ends in any way, kill -9 included, so a crashed run never leaves a lock behind that blocks the next
        one. The file itself stays, with the pid of the run that last held it."""
        from filelock import FileLock, Timeout

        self.base.mkdir(parents=True, exist_ok=True)
        path = self.base / "index.lock"

        def owned(fd: int):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)

        lock = FileLock(path, timeout=0, on_acquired=owned)
        try:
            lock.acquire()
        except Timeout:
            pid = path.read_text().strip() if path.exists() else "?"
            raise ZooError(f"another indexing run (pid {pid or '?'}) holds {path}; wait for it to finish") from None
        try:
            yield
        finally:
            lock.release()

    def current(self) -> Path | None:
        try:
            sid = (self.base / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        path = self.snapshots / sid
        return path if path.is_dir() else None

    def create(self) -> Path:
        now = time.time_ns()  # microseconds in the id: runs within one second still sort in the order they began
        sid = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f"{now // 1000 % 10**6:06d}-{uuid.uuid4().hex[:6]}"
        path = self.snapshots / sid
        path.mkdir(parents=True)
        return path

    def publish(self, snapshot: Path, *, keep: int = KEEP):
        """Point CURRENT at `snapshot` in one atomic rename, after its files are on disk; then keep only the newest
        `keep` snapshots."""
        for f in snapshot.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        tmp = self.base / f".CURRENT.{uuid.uuid4().hex}"
        tmp.write_text(snapshot.name + "\n")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.base / "CURRENT")
        self.collect(keep)

    def collect(self, keep: int = KEEP):
        """Remove all but the newest `keep` published snapshots, unpublished leftovers of crashed runs and their
        half-written pointer files. Only the run that holds the lock calls this."""
        current = self.current()
        if current is None:
            return
        ids = sorted(p.name for p in self.snapshots.iterdir() if p.is_dir())
        at = ids.index(current.name)
        kept = set(ids[max(0, at - keep + 1) : at + 1])
        for sid in ids:
            if sid not in kept:
                shutil.rmtree(self.snapshots / sid, ignore_errors=True)
        for tmp in self.base.glob(".CURRENT.*"):
            tmp.unlink(missing_ok=True)

    def collect_probes(self, live: set[Path]) -> int:
        """Delete the cached probe outputs that are not in `live` (models removed or changed, or probed with an older
        probe set) and temporary files of killed workers; returns how many files went. Readers never need these
        files (a catalog keeps the outputs it was encoded from): they only spare a later run the forward passes."""
        if not self.probes.is_dir():
            return 0
        live = {Path(p) for p in live}
        gone = 0
        for path in sorted(self.probes.rglob("*"), reverse=True):  # files before their folders
            if path.is_file() and path not in live:
                path.unlink(missing_ok=True)
                gone += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return gone

