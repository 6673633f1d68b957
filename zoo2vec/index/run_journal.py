"""Indexing runs that have not (or not yet) reached a published catalog's history.

<zoo>/.zoo2vec/runs/<snapshot id>.json
    written when a run starts (status "running", the stage it is in) and rewritten as it enters each stage; a run
    that raises marks its note "failed" (or "interrupted", for Ctrl-C) with the reason before its snapshot goes.
A note still "running" while no run holds the zoo's lock is a killed run's (kill -9, a lost machine): it says how far
that run got. The next run carries every note into the catalog it publishes (Catalog.record_run, status and stage in
the row) and deletes the notes once that catalog is published, so the history lists every run, published or not,
and a note outlives no publish.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path

STAGES = ("discover", "probe", "encode", "publish")


def _now() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat()


class RunJournal:
    def __init__(self, state: Path):
        self.folder = Path(state) / "runs"

    def _path(self, snapshot_id: str) -> Path:
        return self.folder / f"{snapshot_id}.json"

    def _write(self, note: dict):
        """The whole note, atomically: a reader sees the old note or the new one, never a part."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{note['snapshot_id']}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(note))
        os.replace(tmp, self._path(note["snapshot_id"]))

    def begin(self, snapshot_id: str, started_at: datetime, executor: str, workers: int):
        self._write({"snapshot_id": snapshot_id, "started_at": started_at.isoformat(), "executor": executor,
                     "workers": workers, "status": "running", "stage": STAGES[0], "host": socket.gethostname(),
                     "pid": os.getpid(), "seen_at": _now()})

    def stage(self, snapshot_id: str, stage: str):
        """The run enters `stage` (one of STAGES)."""
        self._update(snapshot_id, stage=stage, seen_at=_now())

    def end(self, snapshot_id: str, status: str, reason: str):
        """The run stopped without publishing: status "failed" or "interrupted", and why."""
        self._update(snapshot_id, status=status, reason=reason, seen_at=_now())

    def _update(self, snapshot_id: str, **fields):
        note = self._read(self._path(snapshot_id))
        if note is not None:
            self._write({**note, **fields})

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            note = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return note if isinstance(note, dict) and "snapshot_id" in note and "started_at" in note else None

    def notes(self, *, locked: bool = False) -> list[dict]:
        """Every note, oldest first. A "running" note reads "killed" when the caller holds the zoo's lock (`locked`:
        then no other run is alive), or when its process on this host is gone."""
        if not self.folder.is_dir():
            return []
        notes = [n for n in map(self._read, sorted(self.folder.glob("*.json"))) if n is not None]
        for note in notes:
            if note["status"] == "running" and (locked or not _alive(note)):
                note.update(status="killed", reason=f"the run ended without a word during its {note['stage']} stage "
                                                    "(killed, or its machine stopped)")
        return sorted(notes, key=lambda n: n["started_at"])

    def forget(self, snapshot_ids):
        """Drop the notes of runs now in a published history, and temporary files killed runs half wrote."""
        for sid in snapshot_ids:
            self._path(sid).unlink(missing_ok=True)
        for tmp in self.folder.glob(".*.tmp") if self.folder.is_dir() else ():
            tmp.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty


def _alive(note: dict) -> bool:
    """Whether the note's process may still run: on another host that cannot be told, so yes."""
    if note.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(note.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, TypeError):
        return True
    return True


def as_history_row(note: dict) -> dict:
    """A note as an index_runs row: what it knows (the counts of a run that did not finish are unknown, NULL)."""
    started = datetime.fromisoformat(note["started_at"])
    ended = datetime.fromisoformat(note["seen_at"]) if note.get("seen_at") else started
    return dict(snapshot_id=note["snapshot_id"], started_at=started, ended_at=ended, executor=note.get("executor"),
                workers=note.get("workers"), seconds=(ended - started).total_seconds(), status=note["status"],
                report={"stage": note.get("stage"), "reason": note.get("reason", "")})

