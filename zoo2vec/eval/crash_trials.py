"""Trials of the indexing job against crashes and of readers against snapshot swaps, counted (issues 13 and 14):

kill9   `zoo2vec index` killed with SIGKILL at random moments of a full run; after each kill a new run must finish
        with every model indexed, re-run no model whose outputs the killed run had cached, and leave no orphaned
        snapshot, temporary file, held lock or live worker; searches against the published snapshot answer as before.
swaps   queries issued from this process while `zoo2vec index` publishes snapshot after snapshot in another (every
        query counted is issued while that process runs); each must answer what it answered before the swaps.

Both drive the real CLI in child processes (the indexing job owns the index; this process only reads it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

QUERIES = ("handwritten digit recognition", "sentiment of movie reviews", "news topic classification",
           "spam detection", "fashion product photos")
MARK = "zoo2vec-trial-mark.txt"  # a file whose content changes a model folder's fingerprint (and nothing else)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from zoo2vec.cli import main; main()", *args]


def answers(zoo) -> list[list[str]]:
    """The top five of every query of QUERIES, by name."""
    return [[r.name for r in zoo.search(text=q, k=5)] for q in QUERIES]


def mark_all(root: Path, trial: int) -> int:
    """Give every model folder of the zoo (not a Hugging Face cache's) a new fingerprint: a full run follows. Returns
    how many folders."""
    from zoo2vec.zoo.layout import ZooLayout

    folders = [f for f in ZooLayout(root).models.iterdir() if f.is_dir()]
    for folder in folders:
        (folder / MARK).write_text(f"trial {trial}\n")
    return len(folders)


def unmark_all(root: Path) -> None:
    from zoo2vec.zoo.layout import ZooLayout

    for folder in ZooLayout(root).models.iterdir():
        (folder / MARK).unlink(missing_ok=True)


def spawned_children(pid: int) -> set[int]:
    """Worker processes (multiprocessing spawn) whose parent is `pid` (Linux: read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), -1)
        if ppid == pid and b"multiprocessing" in cmdline:
            found.add(int(entry.name))
    return found


def alive(pids: set[int]) -> set[int]:
    """The processes of `pids` still running (a zombie has exited)."""
    out = set()
    for pid in pids:
        try:
            state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                         if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if "Z" not in state.split()[1]:
            out.add(pid)
    return out


def orphans(root: Path, keep: int) -> list[str]:
    """What a finished run should not have left: more snapshots than kept, unpublished ones, temporary files, a held
    lock."""
    from zoo2vec.errors import ZooError
    from zoo2vec.index.snapshots import PUBLISHED, SnapshotStore

    store = SnapshotStore(root)
    left = []
    snapshots = sorted(p.name for p in store.snapshots.iterdir())
    current = store.current()
    unpublished = [s for s in snapshots if not (store.snapshots / s / PUBLISHED).exists()]
    if current is None or len(snapshots) > keep or snapshots[-1] != current.name or unpublished:
        left.append(f"snapshots {snapshots} (current {current and current.name}, unpublished {unpublished})")
    left += [str(p) for p in store.probes.rglob("*.tmp.npy")]
    left += [str(p) for p in [*store.base.glob(".CURRENT.*"), *store.base.glob(".folders.json.*")]]
    left += [str(p) for p in (store.base / "runs").glob("*")]  # run notes a published run should have carried
    try:
        with store.lock():
            pass
    except ZooError as exc:
        left.append(str(exc))
    return left


def _utc(epoch_s: float):
    """An epoch time as the history's timestamps keep it (UTC, no zone)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch_s, timezone.utc).replace(tzinfo=None)


def kill9(root: Path, trials: int, *, seed: int = 0, workers: int = 2,
          progress: Callable[[str], None] | None = None) -> dict:
    """`trials` runs of `zoo2vec index root` each killed with SIGKILL at a random moment of a full run, each
    followed by a run that must finish; counts (see the module's docstring) and one row per trial."""
    import zoo2vec
    from zoo2vec.index.snapshots import SnapshotStore
    from zoo2vec.jobs.indexing import run_index, snapshots_kept

    say = progress or (lambda text: None)
    mark_all(root, -1)
    t0 = time.perf_counter()
    first = run_index(root, workers=workers)
    full_s = time.perf_counter() - t0
    n_models = first.indexed
    reader = zoo2vec.open(root)
    expected = answers(reader)
    say(f"{n_models} models, a full run {full_s:.1f} s")
    rng = np.random.default_rng(seed)
    out = {"trials": 0, "resumed": 0, "orphans": 0, "workers_left": 0, "search_mismatches": 0, "searches": 0,
           "cached_run_again": 0, "killed": 0, "killed_in_history": 0, "full_run_s": full_s, "details": []}
    store = SnapshotStore(root)
    for trial in range(trials):
        changed = mark_all(root, trial)
        kill_at = float(rng.uniform(0.5, full_s))
        launched = time.time()
        child = subprocess.Popen(_cli("index", str(root), "--workers", str(workers)), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        started = time.perf_counter()
        pids: set[int] = set()
        while time.perf_counter() - started < kill_at and child.poll() is None:
            out["searches"] += 1
            out["search_mismatches"] += answers(reader) != expected
            pids |= spawned_children(child.pid)
            time.sleep(0.2)
        finished_first = child.poll() is not None
        began = any((store.base / "runs").glob("*.json"))  # the run had begun (its note written), not still importing
        if not finished_first:
            os.kill(child.pid, signal.SIGKILL)
            out["killed"] += began
        child.wait()
        time.sleep(1.0)  # the kernel's death signal reaches the workers
        left = alive(pids)
        cached = sum(1 for p in store.probes.rglob("*.npy") if p.stat().st_mtime >= launched and "tmp" not in p.name)
        resumed = subprocess.run(_cli("index", str(root), "--workers", str(workers), "--json"), capture_output=True,
                                 text=True)
        try:
            report = json.loads(resumed.stdout)
        except ValueError:
            report = {}
        left_behind = orphans(root, snapshots_kept())
        if began and not finished_first:  # the killed run is in the history, as killed (or failed, had it raised)
            history = reader.history(4)
            out["killed_in_history"] += bool((history.status.isin(["killed", "failed"])
                                              & (history.started_at >= _utc(launched))).any())
        ok = resumed.returncode == 0 and report.get("indexed") == n_models and not report.get("failed")
        run_again = len(report.get("costs", {}))
        out["cached_run_again"] += max(0, run_again - (changed - cached))  # a model the killed run had cached
        out["searches"] += 1
        out["search_mismatches"] += answers(reader) != expected
        out["trials"] += 1
        out["resumed"] += ok
        out["orphans"] += bool(left_behind)
        out["workers_left"] += len(left)
        out["details"].append({"kill_at_s": round(kill_at, 2), "run_had_finished": finished_first,
                               "resumed_exit": resumed.returncode, "indexed": report.get("indexed"),
                               "models_run_again": run_again, "cached_before": cached, "changed": changed,
                               "orphans": left_behind, "workers_left": len(left),
                               "error": resumed.stderr.strip().splitlines()[-1:] if resumed.returncode else []})
        say(f"trial {trial + 1}/{trials}: killed at {kill_at:.1f} s, next run exit {resumed.returncode}, "
            f"{report.get('indexed')} indexed, {cached} of {changed} cached, {run_again} run again, "
            f"left behind {left_behind}")
    del reader  # its snapshot pin goes with it
    unmark_all(root)
    return out


def swaps(root: Path, n_swaps: int, *, min_queries: int = 1000, progress: Callable[[str], None] | None = None) -> dict:
    """Queries from this process while a child process runs `zoo2vec index root` again and again (each run publishes
    a new snapshot of the same models), until the child has published `n_swaps` snapshots and `min_queries` queries
    were issued while it ran; the child stops between two runs when asked. Counts queries that raised and that
    answered differently from before the swaps."""
    import zoo2vec
    from zoo2vec.index.snapshots import SnapshotStore

    say = progress or (lambda text: None)
    reader = zoo2vec.open(root)
    expected = answers(reader)
    store = SnapshotStore(root)
    stop = Path(tempfile.mkdtemp(prefix="zoo2vec-swaps-")) / "stop"
    script = ("import sys, pathlib\nfrom zoo2vec.jobs.indexing import run_index\n"
              "stop = pathlib.Path(sys.argv[2])\nwhile not stop.exists():\n"
              "    run_index(sys.argv[1], workers=1)\n    print(run_index.__name__, flush=True)\n")
    seen = {store.current().name}
    out = {"queries": 0, "swaps": 0, "failed": 0, "wrong": 0, "errors": []}
    log = tempfile.TemporaryFile("w+")  # not a pipe: a child that writes much to a pipe no one reads blocks
    child = subprocess.Popen([sys.executable, "-c", script, str(root), str(stop)], stdout=subprocess.PIPE,
                             stderr=log, text=True)
    published = []
    reading = threading.Thread(target=lambda: published.extend(child.stdout), daemon=True)  # one line per publish
    reading.start()
    started = time.perf_counter()
    while child.poll() is None and (len(published) < n_swaps or out["queries"] < min_queries):
        for query, before in zip(QUERIES, expected):
            out["queries"] += 1
            try:
                got = [r.name for r in reader.search(text=query, k=5)]
            except Exception as exc:  # counted, and the first few kept: what a failed query is  # noqa: BLE001
                out["failed"] += 1
                if len(out["errors"]) < 5:
                    out["errors"].append(f"{type(exc).__name__}: {exc}")
                continue
            out["wrong"] += got != before
        current = store.current()
        if current is not None:
            seen.add(current.name)
        if out["queries"] % 500 < len(QUERIES):
            say(f"{out['queries']} queries, {len(published)} snapshots published, {len(seen) - 1} seen")
    stop.touch()
    child.wait()
    reading.join(10)
    stop.unlink(missing_ok=True)
    stop.parent.rmdir()
    log.seek(0)
    errors = log.read()
    log.close()
    out["swaps"] = len(published)  # every query above was issued while the child was still publishing
    out["swaps_seen"] = len(seen) - 1  # of which this reader saw as current between two batches of queries
    out["child_exit"] = child.returncode
    out["child_error"] = errors.strip().splitlines()[-1:] if child.returncode else []
    out["seconds"] = time.perf_counter() - started
    del reader  # its snapshot pin goes with it
    return out
