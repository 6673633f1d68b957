import gc
import os
import shutil
import time

import numpy as np
import pytest
from click.testing import CliRunner

import zoo2vec
from zoo2vec import ModelCard
from zoo2vec.cli import main
from zoo2vec.encoders import alignment
from zoo2vec.index.catalog import Catalog
from zoo2vec.index.snapshots import SnapshotStore
from zoo2vec.jobs.indexing import run_index
from zoo2vec.zoo.layout import ZooLayout
from zoo2vec.zoo.remote import InferenceServer


class Misbehaving:
    """A served text model that fails in one chosen way."""

    def __init__(self, name, how):
        self.card = ModelCard(name, "text", label_names=["a", "b"])
        self.how = how
        self.fixed = False

    def predict(self, batch):
        if self.fixed:
            return np.tile([0.3, 0.7], (len(batch), 1))
        if self.how == "raise":
            raise RuntimeError("weights corrupted")
        if self.how == "hang":
            time.sleep(2)
        if self.how == "nan":
            return np.full((len(batch), 2), np.nan)
        return np.ones((len(batch), 5))  # wrong number of classes


@pytest.fixture
def bad_models():
    models = [Misbehaving(f"bad-{how}", how) for how in ("raise", "hang", "nan", "shape")]
    with InferenceServer(models) as server:
        yield server, {m.how: m for m in models}


def _add_remote(zoo, server, model, timeout_s=0.5):
    folder = ZooLayout(zoo).model_folder(model.card.name)
    folder.mkdir()
    ModelCard.from_dict({**model.card.to_dict(), "adapter": {"kind": "http", "url": server.url, "timeout_s": timeout_s}}).save(folder)


def test_index_records_failures_and_keeps_the_rest(tiny_zoo, bad_models):
    server, models = bad_models
    for m in models.values():
        _add_remote(tiny_zoo, server, m)
    report = run_index(tiny_zoo)
    assert set(report.failed) == {"bad-raise", "bad-hang", "bad-nan", "bad-shape"}
    assert "RuntimeError: weights corrupted" in report.failed["bad-raise"]
    assert "timed out" in report.failed["bad-hang"]
    assert "NaN" in report.failed["bad-nan"]
    assert "card names 2 labels" in report.failed["bad-shape"]
    assert sorted(report.reused) == sorted(zoo2vec.open(tiny_zoo).models()["name"])  # the five real models
    runs = zoo2vec.open(tiny_zoo).runs()
    assert set(runs[runs.status == "failed"]["name"]) == set(report.failed)

    # the next run retries them; a fixed one is indexed, unchanged ones are not probed again
    models["nan"].fixed = True
    again = run_index(tiny_zoo)
    assert again.probed == ["bad-nan"]
    assert set(again.failed) == {"bad-raise", "bad-hang", "bad-shape"}
    assert "bad-nan" in set(zoo2vec.open(tiny_zoo).models()["name"])


def test_second_run_probes_nothing_and_changes_are_picked_up(tiny_zoo):
    first = run_index(tiny_zoo)
    assert first.probed == [] and len(first.reused) == 5
    card = ModelCard.load(ZooLayout(tiny_zoo).model_folder("bbc-bow"))
    ModelCard.from_dict({**card.to_dict(), "license": "cc-by-4.0"}).save(ZooLayout(tiny_zoo).model_folder("bbc-bow"))
    shutil.rmtree(ZooLayout(tiny_zoo).model_folder("digits8-linear-parity"))
    report = run_index(tiny_zoo)
    assert report.probed == ["bbc-bow"] and report.removed == ["digits8-linear-parity"]
    models = zoo2vec.open(tiny_zoo).models().set_index("name")
    assert models.loc["bbc-bow", "license"] == "cc-by-4.0" and "digits8-linear-parity" not in models.index


def test_a_model_added_later_is_searchable_without_retraining(tiny_zoo, make_task):
    src, dst = ZooLayout(tiny_zoo).model_folder("digits8-linear"), ZooLayout(tiny_zoo).model_folder("digits8-linear-copy")
    shutil.copytree(src, dst)
    card = ModelCard.load(dst)
    ModelCard.from_dict({**card.to_dict(), "name": "digits8-linear-copy"}).save(dst)
    report = run_index(tiny_zoo)
    assert report.probed == ["digits8-linear-copy"]
    forward, other = report.costs["digits8-linear-copy"]  # measured for the freshly probed model
    assert forward > 0 and other > 0
    zoo = zoo2vec.open(tiny_zoo)
    results = {r.name: r for r in zoo.search(make_task("sklearn-digits", [str(d) for d in range(10)]), k=5)}
    assert zoo.alignment.version == alignment.DEFAULT
    assert results["digits8-linear-copy"].features == results["digits8-linear"].features  # same model, same knowledge


def test_a_crash_leaves_the_published_snapshot_untouched(tiny_zoo, monkeypatch):
    store = SnapshotStore(tiny_zoo)
    before = store.current()
    zoo = zoo2vec.open(tiny_zoo)
    answer = zoo.search(text="news topics", k=3)
    shutil.rmtree(ZooLayout(tiny_zoo).model_folder("bbc-bow"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Catalog, "record_run", crash)
    with pytest.raises(KeyboardInterrupt):
        run_index(tiny_zoo)
    assert store.current() == before
    assert [p.name for p in store.snapshots.iterdir()] == [before.name]  # the half-written one is gone
    assert [r.name for r in zoo2vec.open(tiny_zoo).search(text="news topics", k=3)] == [r.name for r in answer]
    with store.lock():  # released
        pass
    last = zoo2vec.open(tiny_zoo).history().iloc[0]  # the run is in the history all the same
    assert (last.status, last.report["stage"], last.report["reason"]) == ("interrupted", "publish", "interrupted (Ctrl-C)")


def test_a_run_that_fails_is_in_the_history_and_the_next_run_keeps_it_there(tiny_zoo, run_that_fails):
    run_that_fails(tiny_zoo)
    runs = zoo2vec.open(tiny_zoo).history()
    assert list(runs.status) == ["failed", "published"]  # newest first: this run, then the fixture's
    failed = runs.iloc[0]
    assert failed.report == {"stage": "publish", "reason": "OSError: [Errno 28] No space left on device"}
    assert failed.ended_at >= failed.started_at and np.isnan(failed.probed)
    shown = CliRunner().invoke(main, ["runs", str(tiny_zoo)]).output.splitlines()
    assert shown[1].split()[2:5] == ["failed", "local/cpu", "x2"] and shown[1].split()[5:8] == ["-", "-", "-"]
    assert shown[2].strip() == "stopped in its publish stage: OSError: [Errno 28] No space left on device"
    report = run_index(tiny_zoo)
    runs = zoo2vec.open(tiny_zoo).history()
    assert list(runs.status) == ["published", "failed", "published"]
    assert runs.iloc[0].snapshot_id == report.snapshot and runs.iloc[1].snapshot_id == failed.snapshot_id
    assert not (SnapshotStore(tiny_zoo).base / "runs").exists()  # carried into the published catalog, nothing left


_RUN = """
import sys
from zoo2vec.jobs.indexing import run_index
run_index(sys.argv[1], workers=1, timeout_s=60)
"""


def test_a_killed_run_is_in_the_history_with_the_stage_it_was_in(tiny_zoo, bad_models):
    import signal
    import subprocess
    import sys

    server, models = bad_models
    _add_remote(tiny_zoo, server, models["hang"], timeout_s=60)  # keeps the run in its probe stage
    notes = SnapshotStore(tiny_zoo).base / "runs"
    run = subprocess.Popen([sys.executable, "-c", _RUN, str(tiny_zoo)])
    deadline = time.time() + 60
    while '"stage": "probe"' not in "".join(p.read_text() for p in notes.glob("*.json")) and time.time() < deadline:
        time.sleep(0.1)
    live = zoo2vec.open(tiny_zoo).history().iloc[0]
    assert (live.status, live.report["stage"]) == ("running", "probe")
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    killed = zoo2vec.open(tiny_zoo).history().iloc[0]
    assert killed.status == "killed" and "during its probe stage" in killed.report["reason"]
    shutil.rmtree(ZooLayout(tiny_zoo).model_folder("bad-hang"))
    run_index(tiny_zoo)
    runs = zoo2vec.open(tiny_zoo).history()
    assert list(runs.status) == ["published", "killed", "published"] and runs.iloc[1].snapshot_id == killed.snapshot_id
    assert not notes.exists()


def test_readers_switch_to_a_new_snapshot(tiny_zoo):
    zoo = zoo2vec.open(tiny_zoo)
    assert "bbc-bow" in set(zoo.models()["name"])
    shutil.rmtree(ZooLayout(tiny_zoo).model_folder("bbc-bow"))
    run_index(tiny_zoo)
    assert "bbc-bow" not in set(zoo.models()["name"])


_HOLD_LOCK = """
import os, signal, sys, time
from zoo2vec.index.snapshots import SnapshotStore
with SnapshotStore(sys.argv[1]).lock():
    print("held", flush=True)
    if sys.argv[2] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)  # dies holding the lock, as a run killed with kill -9 does
    time.sleep(60)
"""


def _hold_lock(zoo, how):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(zoo), how], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_concurrent_runs_are_refused(tiny_zoo):
    holder = _hold_lock(tiny_zoo, "hold")
    try:
        with pytest.raises(zoo2vec.ZooError, match=f"another indexing run \\(pid {holder.pid} on host .+ since "):
            run_index(tiny_zoo)
    finally:
        holder.kill()
        holder.wait()
    assert run_index(tiny_zoo).indexed == 5  # free again once its holder is gone


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tiny_zoo):
    holder = _hold_lock(tiny_zoo, "crash")
    assert holder.wait() == -9
    lock = SnapshotStore(tiny_zoo).base / "index.lock"
    assert f'"pid": {holder.pid}' in lock.read_text()  # the file stays; the lock died with its process
    report = run_index(tiny_zoo)
    assert report.indexed == 5 and len(report.warnings) == 1
    assert f"took over {lock} from a run that ended without releasing it (pid {holder.pid} on host" in report.warnings[0]
    assert lock.read_text() == "" and run_index(tiny_zoo).warnings == []  # a clean release leaves nothing to take over
    lock.write_text(str(os.getpid()))  # a live process's pid, as older versions wrote it: blocks nothing
    assert run_index(tiny_zoo).indexed == 5
    lock.write_bytes(b"\xff\xfe garbage")
    assert "not a holder zoo2vec wrote" in run_index(tiny_zoo).warnings[0]


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_unfinished_snapshots_never_count_as_kept_and_readers_keep_theirs(tiny_zoo, monkeypatch):
    from zoo2vec.search.snapshot import Snapshot

    store = SnapshotStore(tiny_zoo)
    good = store.current()
    for _ in range(10):  # what ten runs killed with kill -9 leave: unpublished folders, a catalog half written
        (store.create() / "catalog.duckdb").write_bytes(b"partial")
    monkeypatch.setenv("ZOO2VEC_KEEP_SNAPSHOTS", "2")
    newer = run_index(tiny_zoo).snapshot
    assert sorted(p.name for p in store.snapshots.iterdir()) == [good.name, newer]  # the good one stays, leftovers go
    reader = Snapshot(store.current(), tiny_zoo)  # a reader on the current snapshot
    for _ in range(3):
        run_index(tiny_zoo)
    assert reader.folder.is_dir() and len(list(store.snapshots.iterdir())) == 3  # the 2 newest, and the one in use
    assert len(reader.catalog.indexed()) == 5
    reader.close()
    run_index(tiny_zoo)
    assert not reader.folder.exists() and len(list(store.snapshots.iterdir())) == 2
    zoo = zoo2vec.open(tiny_zoo)
    assert len(zoo.models()) == 5
    dropped = store.current()
    del zoo  # a reader dropped without closing pins nothing once it is collected
    gc.collect()
    run_index(tiny_zoo)
    run_index(tiny_zoo)
    assert not dropped.exists()


def test_every_run_is_kept_in_the_history(tiny_zoo, bad_models):
    server, models = bad_models
    _add_remote(tiny_zoo, server, models["raise"])
    report = run_index(tiny_zoo, workers=1, device="cpu")
    history = zoo2vec.open(tiny_zoo).history()
    latest = history.iloc[0]
    assert latest.snapshot_id == report.snapshot and len(history) == 2  # the fixture's first run, then this one
    assert (latest.executor, latest.workers, latest.models, latest.probed, latest.reused, latest.failed) == (
        "local/cpu", 1, 5, 0, 5, 1)
    assert latest.ended_at >= latest.started_at and latest.seconds > 0
    assert "weights corrupted" in latest.report["failed"]["bad-raise"]
    assert sorted(latest.report["reused"]) == sorted(report.reused)


def _age(zoo, seconds=3600):
    """Every model file of the zoo last modified `seconds` ago (a zoo that has settled since it was written)."""
    then = time.time() - seconds
    for path in ZooLayout(zoo).models.rglob("*"):
        os.utime(path, (then, then))


def test_an_unchanged_folder_is_neither_hashed_nor_its_card_read_again(tiny_zoo, monkeypatch):
    for folder in ZooLayout(tiny_zoo).models.iterdir():
        (folder / "notes.txt").write_text("aaaa")
    _age(tiny_zoo)
    assert len(run_index(tiny_zoo).probed) == 5  # a new file in every folder: new fingerprints
    with monkeypatch.context() as m:
        m.setattr("zoo2vec.zoo.adapters.fingerprint", lambda folder: pytest.fail(f"{folder} was hashed again"))
        m.setattr("zoo2vec.zoo.adapters.read_card", lambda folder, name=None: pytest.fail(f"{folder}'s card read again"))
        assert len(run_index(tiny_zoo).reused) == 5
    notes = ZooLayout(tiny_zoo).model_folder("bbc-bow") / "notes.txt"
    with notes.open("r+") as f:  # rewritten in place: same size, same inode, a later time
        f.write("bbbb")
    assert run_index(tiny_zoo).probed == ["bbc-bow"]


def test_a_folder_changed_within_one_clock_tick_of_a_run_is_not_taken_for_unchanged(tiny_zoo):
    notes = ZooLayout(tiny_zoo).model_folder("bbc-bow") / "notes.txt"
    notes.write_text("cccc")
    assert run_index(tiny_zoo).probed == ["bbc-bow"]  # run while the file is fresh: its signature is not kept
    stamp = notes.stat()
    notes.write_text("dddd")
    os.utime(notes, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same size, inode and time as the file the run saw
    assert run_index(tiny_zoo).probed == ["bbc-bow"]


def test_old_snapshots_and_unused_probe_outputs_are_collected(tiny_zoo, monkeypatch):
    store = SnapshotStore(tiny_zoo)
    outputs = {p.name for p in store.probes.rglob("*.npy")}
    assert len(outputs) == 5
    (store.probes / "some-old-probe-set").mkdir()
    (store.probes / "some-old-probe-set" / "gone-model-abc-def.npy").write_bytes(b"x")
    killed = next(store.probes.rglob("*.npy")).with_suffix(".1234.tmp.npy")
    killed.write_bytes(b"x")  # what a worker killed while writing leaves
    (store.base / ".CURRENT.deadbeef").write_text("x")  # a pointer a crashed run did not rename
    shutil.rmtree(ZooLayout(tiny_zoo).model_folder("bbc-bow"))
    monkeypatch.setenv("ZOO2VEC_KEEP_SNAPSHOTS", "2")
    for _ in range(3):
        run_index(tiny_zoo)
    assert len(list(store.snapshots.iterdir())) == 2 and store.current().name in os.listdir(store.snapshots)
    left = {p.name for p in store.probes.rglob("*") if p.is_file()}
    assert len(left) == 4 and left < outputs and not any(name.startswith("bbc-bow-") and name.count("-") == 3
                                                         for name in left)  # bbc-bow's own file, not bbc-bow-business-tech's
    assert not (store.probes / "some-old-probe-set").exists() and not list(store.base.glob(".CURRENT.*"))
    monkeypatch.setenv("ZOO2VEC_KEEP_SNAPSHOTS", "none")
    with pytest.raises(zoo2vec.ConfigError, match="ZOO2VEC_KEEP_SNAPSHOTS"):
        run_index(tiny_zoo)


def test_a_catalog_of_an_older_schema_is_rebuilt_from_cached_probes(tiny_zoo, monkeypatch):
    current = SnapshotStore(tiny_zoo).current()
    with Catalog(current / "catalog.duckdb") as cat:
        cat.con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    # models are loaded only in worker processes: no pool started, no model loaded
    monkeypatch.setattr("zoo2vec.jobs.executors.start_pool", lambda *a, **k: pytest.fail("probe outputs should come from the cache"))
    report = run_index(tiny_zoo)
    assert len(report.probed) == 5 and not report.failed
    assert len(zoo2vec.open(tiny_zoo).search(text="digits", k=5)) == 5


def test_not_a_zoo(tmp_path):
    with pytest.raises(zoo2vec.ZooError, match="no models/ folder"):
        run_index(tmp_path)


def test_card_name_must_match_folder(tiny_zoo):
    src = ZooLayout(tiny_zoo).model_folder("bbc-bow")
    shutil.copytree(src, ZooLayout(tiny_zoo).model_folder("bbc-bow-copy"))
    report = run_index(tiny_zoo)
    assert "holds a card named 'bbc-bow'" in report.failed["bbc-bow-copy"]


def test_the_catalog_keeps_each_models_probe_outputs(tiny_zoo):
    """Search reads back what probing measured: per model, its probabilities on every probe input."""
    run_index(tiny_zoo)
    snapshot = zoo2vec.open(tiny_zoo)._current_snapshot.get()
    ids = snapshot.allowed_ids({})
    for model_id, profile in snapshot.profiles_of(ids).items():
        _, probes = snapshot.reference_for(profile.modality)
        assert profile.outputs.shape == (len(probes), len(profile.labels))
        np.testing.assert_allclose(profile.outputs.sum(axis=1), 1.0, atol=1e-3)
