"""The probe stage's worker processes: models are loaded and run there, never in the indexing process; a model that
hangs, segfaults, exits, blows its memory cap or raises fails alone, with its reason, and leaves no process behind."""

import os
import shutil
import time
from pathlib import Path

import faulty_models
import numpy as np
import pytest
from click.testing import CliRunner

import zoo2vec
from zoo2vec import ConfigError
from zoo2vec.cli import main
from zoo2vec.data.images import resize
from zoo2vec.encoders import probe_set
from zoo2vec.jobs import executors
from zoo2vec.jobs.executors import LocalExecutor, ProbeJob, died, worker_memory_mb
from zoo2vec.jobs.indexing import run_index
from zoo2vec.zoo.adapters import load_model, read_card
from zoo2vec.zoo.blackbox import checked_predict
from zoo2vec.zoo.layout import ZooLayout

TEST_CAP_MB = 5120  # a worker with torch and the text probe set takes about 3.2 GiB of address space


def _children() -> dict[int, str]:
    """This process's child processes (zombies included), pid -> command line; multiprocessing's resource tracker
    (one per process that used spawn, not a worker: it exits with us) left out."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and "resource_tracker" not in cmdline:
            found[int(stat.parent.name)] = cmdline
    return found


def _refuse_pools(monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail("a worker pool was started, but no model needed probing")

    monkeypatch.setattr(executors, "start_pool", refuse)


def _probe_files(zoo, pattern: str) -> list[str]:
    return sorted(p.name for p in (ZooLayout(zoo).state / "probes").rglob(pattern))


def test_faulty_models_fail_alone_with_their_reasons_and_leave_no_worker(tiny_zoo, monkeypatch):
    monkeypatch.setenv(executors.MEMORY_VARIABLE, str(TEST_CAP_MB))
    models = ZooLayout(tiny_zoo).models
    for how in faulty_models.HOW:
        faulty_models.save(models, f"bad-{how}", how)
    faulty_models.save(models, "fine-pickle", "fine")
    before = _children()

    report = run_index(tiny_zoo, timeout_s=3, trust_pickle=True, workers=2)
    assert set(report.failed) == {f"bad-{how}" for how in faulty_models.HOW}, report.summary()
    assert report.failed["bad-hang"] == "killed after 3 s"
    assert report.failed["bad-segfault"] == "the worker died: signal 11 (SIGSEGV)"
    assert report.failed["bad-exit"] == "the worker exited: exit code 3"
    assert report.failed["bad-memory"].startswith("out of memory (the worker's cap is 5.0 GiB): MemoryError")
    assert report.failed["bad-raise"] == "RuntimeError: weights corrupted"
    assert report.probed == ["fine-pickle"] and len(report.reused) == 5  # the tiny zoo's, unchanged
    forward, other = report.costs["fine-pickle"]
    assert forward > 0 and other > 0
    assert _children() == before  # every worker stopped, none left a zombie
    zoo = zoo2vec.open(tiny_zoo)
    assert "fine-pickle" in set(zoo.models()["name"])
    runs = zoo.runs()
    assert set(runs[runs.status == "failed"]["name"]) == set(report.failed)
    assert _probe_files(tiny_zoo, "*.tmp.npy") == [] and _probe_files(tiny_zoo, "bad-*") == []

    # the next run tries the failed ones again, and only them
    again = run_index(tiny_zoo, timeout_s=3, trust_pickle=True, workers=2)
    assert set(again.failed) == set(report.failed) and again.probed == [] and len(again.reused) == 6
    assert _children() == before

    # a run where nothing needs probing starts no worker at all
    for how in faulty_models.HOW:
        shutil.rmtree(models / f"bad-{how}")
    _refuse_pools(monkeypatch)
    last = run_index(tiny_zoo, timeout_s=3, trust_pickle=True, workers=2)
    assert last.failed == {} and len(last.reused) == 6 and last.probed == []


def test_pool_outputs_equal_those_computed_in_process(tiny_zoo, tmp_path):
    jobs = []
    for name in ("digits8-mlp-0to4", "bbc-bow"):
        folder = ZooLayout(tiny_zoo).model_folder(name)
        card = read_card(folder).card
        jobs.append(ProbeJob(name, folder, card.to_dict(), probe_set.default_for(card.modality),
                             tmp_path / f"{name}.npy"))
    before = _children()
    with LocalExecutor(workers=1, timeout_s=60) as executor:
        results = {job.name: probed for job, probed in executor.run(jobs)}
    assert _children() == before
    for job in jobs:
        assert results[job.name].status == "ok" and results[job.name].forward_s > 0
        card = read_card(job.folder).card
        probes = probe_set.load(job.probe_set)
        inputs = resize(list(probes.inputs), card.input_shape) if card.modality == "image" else list(probes.inputs)
        expected = checked_predict(load_model(job.folder, card=card), inputs)
        np.testing.assert_allclose(np.load(job.cache), expected, atol=1e-6)


def test_an_interrupted_run_stops_its_workers(tiny_zoo, monkeypatch):
    faulty_models.save(ZooLayout(tiny_zoo).models, "bad-hang", "hang")
    faulty_models.save(ZooLayout(tiny_zoo).models, "fine-pickle", "fine")
    before = _children()
    seen = {}

    def interrupt(self, modality):  # what this process does while the workers run, cut short by Ctrl-C
        time.sleep(3)
        seen.update(_children())
        raise KeyboardInterrupt

    monkeypatch.setattr("zoo2vec.jobs.indexing._ProbeContext.embeddings", interrupt)
    current = ZooLayout(tiny_zoo).state / "CURRENT"
    published = current.read_text()
    with pytest.raises(KeyboardInterrupt):
        run_index(tiny_zoo, timeout_s=60, trust_pickle=True, workers=2)
    assert len(set(seen) - set(before)) == 2  # two workers were running
    assert _children() == before
    assert current.read_text() == published


def test_a_cached_run_starts_no_pool(tiny_zoo, monkeypatch):
    _refuse_pools(monkeypatch)
    report = run_index(tiny_zoo)
    assert report.probed == [] and len(report.reused) == 5


def test_settings_say_what_is_wrong(monkeypatch):
    with pytest.raises(ConfigError, match="workers must be"):
        LocalExecutor(workers=0)
    with pytest.raises(ConfigError, match="timeout must be"):
        LocalExecutor(workers=1, timeout_s=0)
    monkeypatch.setenv(executors.MEMORY_VARIABLE, "lots")
    with pytest.raises(ConfigError, match="not a whole number"):
        worker_memory_mb(2)
    monkeypatch.setenv(executors.MEMORY_VARIABLE, "1000")
    with pytest.raises(ConfigError, match="at least 3584 MiB"):
        worker_memory_mb(2)
    monkeypatch.setenv(executors.MEMORY_VARIABLE, "0")
    assert worker_memory_mb(2) is None  # no cap
    monkeypatch.delenv(executors.MEMORY_VARIABLE)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert worker_memory_mb(2) == executors.WORKER_BASE_MB + physical // 2
    assert "--workers" in CliRunner().invoke(main, ["index", "--help"]).output
    assert CliRunner().invoke(main, ["index", "--workers", "0"]).exit_code == 2


def test_why_a_worker_died():
    assert died(-11) == "the worker died: signal 11 (SIGSEGV)"
    assert died(3) == "the worker exited: exit code 3"
    assert died(-9).startswith("the worker died: signal 9 (SIGKILL), killed from outside")


def test_a_worker_that_cannot_start_fails_its_jobs_instead_of_restarting_forever(tiny_zoo, tmp_path):
    folder = ZooLayout(tiny_zoo).model_folder("bbc-bow")
    job = ProbeJob("bbc-bow", folder, read_card(folder).card.to_dict(), "text-v1", tmp_path / "out.npy")
    with LocalExecutor(workers=1, timeout_s=60, memory_mb=1024) as executor:  # too little to import torch
        [(_, probed)] = list(executor.run([job]))
    assert probed.status == "failed" and probed.reason.startswith("the worker could not start: ")
    assert not job.cache.exists()


class BreakingPool:
    """A stand-in for pebble's pool whose first `breaks` jobs come back as a broken pool (what pebble reports when it
    loses track of a worker); the others answer at once."""

    started = 0

    def __init__(self, breaks):
        self.breaks = breaks
        self.active = True
        BreakingPool.started += 1

    def schedule(self, function, args, timeout):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        future = Future()
        if BreakingPool.broken < self.breaks:
            BreakingPool.broken += 1
            future.set_exception(BrokenProcessPool("All workers expired"))
        else:
            future.set_result(executors.Probed("ok", forward_s=0.1, seconds=0.2))
        return future

    def stop(self):
        self.active = False

    def join(self):
        pass


@pytest.mark.parametrize("breaks, expected", [(1, {"a": "ok", "b": "ok"}), (99, {"a": "failed", "b": "failed"})])
def test_a_broken_pool_is_replaced_and_each_job_gets_one_more_try(monkeypatch, tmp_path, breaks, expected):
    BreakingPool.started, BreakingPool.broken = 0, 0
    monkeypatch.setattr(executors, "start_pool", lambda workers, initargs: BreakingPool(breaks))
    jobs = [ProbeJob(name, tmp_path, {}, "text-v1", tmp_path / f"{name}.npy") for name in ("a", "b")]
    with LocalExecutor(workers=1, timeout_s=5, memory_mb=0) as executor:
        results = {job.name: probed for job, probed in executor.run(jobs)}
    assert {name: probed.status for name, probed in results.items()} == expected
    assert BreakingPool.started == (2 if breaks == 1 else 4)  # a fresh pool after each break
    if breaks > 1:
        assert results["a"].reason == "the worker pool broke twice while it held this model"


def test_the_device_choice():
    import torch

    from zoo2vec.jobs.executors import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA device"):
            resolve_device("cuda")
    assert worker_memory_mb(2, "cuda") is None  # CUDA would not start under an address-space cap
