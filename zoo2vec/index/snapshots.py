"""Index snapshots: each indexing run writes a new folder and then swaps a pointer to it.

<zoo>/.zoo2vec/ (the zoo's state folder, zoo.layout)
    CURRENT                 the id of the snapshot readers use (replaced atomically)
    snapshots/<id>/         catalog.duckdb, task.faiss, card.faiss; PUBLISHED once CURRENT named it
    probes/<probe set>/     cached black-box outputs, one .npy per model fingerprint and adapter entry
    folders.json            each model folder's file signature, fingerprint and card from the last run (jobs.memo)
A reader opens whatever CURRENT names and pins that folder while it has it open; a crashed run leaves only an
unreferenced, unpublished folder, which the next run removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from zoo2vec.errors import ZooError
from zoo2vec.zoo.layout import ZooLayout

KEEP = 3  # snapshots kept, so that a reader that opened an older one can finish
PUBLISHED = "PUBLISHED"  # written into a snapshot's folder just before CURRENT names it


class SnapshotStore:
    def __init__(self, zoo_root: Path):
        self.base = ZooLayout(zoo_root).state
        self.snapshots = self.base / "snapshots"
        self.probes = self.base / "probes"

    @contextmanager
    def lock(self):
        """One indexing run per zoo at a time. An OS file lock (filelock: flock on Linux): the kernel releases it when
        its process ends in any way, kill -9 included, so a crashed run never leaves a lock behind that blocks the next
        one, and a pid in the file that some other process has since taken blocks nothing. The holder writes who it
        is (host, pid, start time) into the file and empties it when it releases the lock; yields what the lock file
        said of a holder that ended without releasing it (a crashed run, or content that does not read), else None."""
        from filelock import FileLock, Timeout

        self.base.mkdir(parents=True, exist_ok=True)
        path = self.base / "index.lock"
        left: list[str] = []

        def owned(fd: int):
            before = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            if before:
                left.append(f"took over {path} from a run that ended without releasing it ({_holder(before)})")
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                      "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode(), 0)

        lock = FileLock(path, timeout=0, on_acquired=owned)
        try:
            lock.acquire()
        except Timeout:
            said = path.read_text(errors="replace").strip() if path.exists() else ""
            raise ZooError(f"another indexing run ({_holder(said)}) holds {path}; wait for it to finish") from None
        try:
            yield left[0] if left else None
        finally:
            with contextlib.suppress(OSError):
                os.truncate(path, 0)  # released cleanly: the next run has nothing to take over
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
        """Mark `snapshot` published and point CURRENT at it in one atomic rename, after its files are on disk; then
        collect the snapshots no longer kept."""
        (snapshot / PUBLISHED).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        for f in snapshot.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        tmp = self.base / f".CURRENT.{uuid.uuid4().hex}"
        tmp.write_text(snapshot.name + "\n")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.base / "CURRENT")
        self.collect(keep)

    def collect(self, keep: int = KEEP) -> list[str]:
        """Remove the snapshots not kept: kept are the current one and the `keep` newest published up to it (a folder
        a crashed run left unfinished never counts), and any other that a reader still has open (Snapshot pins its
        folder); also the pointer and memo files crashed runs half wrote. Only the run that holds the lock calls this.
        Returns the ids removed."""
        for tmp in [*self.base.glob(".CURRENT.*"), *self.base.glob(".folders.json.*")]:  # FolderMemo's
            tmp.unlink(missing_ok=True)
        current = self.current()
        if current is None or not self.snapshots.is_dir():
            return []
        ids = sorted(p.name for p in self.snapshots.iterdir() if p.is_dir())
        published = [sid for sid in ids if sid <= current.name
                     and (sid == current.name or (self.snapshots / sid / PUBLISHED).exists())]
        kept = set(published[-max(keep, 1):]) | {current.name}
        removed = []
        for sid in ids:
            if sid not in kept and not in_use(self.snapshots / sid):
                shutil.rmtree(self.snapshots / sid, ignore_errors=True)
                removed.append(sid)
        return removed

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


def _holder(said: str) -> str:
    """A lock file's content in words: "pid 12 on host h since 2026-12-01T02:00:00Z", or why it does not say."""
    try:
        who = json.loads(said)
        return f"pid {int(who['pid'])} on host {who['host']} since {who['started']}"
    except (ValueError, TypeError, KeyError):
        return f"its lock file says {said[:80]!r}, which is not a holder zoo2vec wrote" if said else "holder unknown"


def pin(folder: Path) -> int | None:
    """Hold a shared lock on a snapshot folder while a reader has it open, so that no run collects it (in_use); the
    descriptor to close when done. None where the system has no flock (the newest snapshots are still kept)."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


def in_use(folder: Path) -> bool:
    """Whether some reader pins the folder (it holds a shared lock that an exclusive one cannot be taken over)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
