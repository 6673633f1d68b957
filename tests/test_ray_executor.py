"""The probe stage on Ray: the same outputs as the local executor, the same isolation (a model that hangs or crashes
fails alone, with its reason), an actor that dies is replaced, and a Ray this executor did not start is left
running. Real Ray, started once for the module with 2 CPUs."""

import os
import subprocess
import sys
import time
from pathlib import Path

import faulty_models
import numpy as np
import pytest
from test_executors import TEST_CAP_MB

from zoo2vec import ConfigError
from zoo2vec.encoders import probe_set
from zoo2vec.jobs.executors import LocalExecutor, ProbeJob, make_executor
from zoo2vec.jobs.ray_executor import RayExecutor
from zoo2vec.zoo.adapters import read_card
from zoo2vec.zoo.layout import ZooLayout

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

GOOD = ("digits8-linear", "digits8-mlp-0to4", "bbc-bow")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray instance for the module. Its workers take their environment from this process when it starts:
    tests/ on their path (to unpickle faulty_models), homes and hubs as the autouse fixture sets them."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
        env.setenv("ZOO2VEC_HOME", str(tmp_path_factory.mktemp("ray-home")))
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("TRANSFORMERS_OFFLINE", "1")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield
    ray.shutdown()


def _job(folder: Path, out: Path) -> ProbeJob:
    card = read_card(folder).card
    return ProbeJob(card.name, folder, card.to_dict(), probe_set.default_for(card.modality), out / f"{card.name}.npy")


def _actor_processes() -> dict[int, int]:
    """Processes of this machine that are probe actors, or their worker processes: pid -> parent pid."""
    actors, parents = set(), {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        if cmdline.startswith("ray::_ProbeActor") and fields[0] != "Z":
            actors.add(pid)
    return {pid: parent for pid, parent in parents.items() if pid in actors or parent in actors}


def _gone(pids, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not set(pids) & set(_actor_processes()):
            return True
        time.sleep(0.2)
    return False


def test_outputs_equal_the_local_executors_and_a_ray_it_did_not_start_stays_up(ray_cluster, tiny_zoo_master,
                                                                                tmp_path):
    jobs = [_job(ZooLayout(tiny_zoo_master).model_folder(name), tmp_path / "ray") for name in GOOD]
    with LocalExecutor(workers=1, timeout_s=60) as local:
        expected = {job.name: np.load(job.cache) for job, probed in
                    local.run([_job(job.folder, tmp_path / "local") for job in jobs]) if probed.status == "ok"}
    assert sorted(expected) == sorted(GOOD)

    with RayExecutor(workers=1, timeout_s=60, device="auto") as executor:  # one actor: it takes the three in turn
        results = executor.run(jobs)
        first = [next(results), next(results)]
        actor = executor._actors[0].handle
        pools = ray.get(actor.__ray_call__.remote(lambda self: self.pools_started))  # after the third job
        finished = first + list(results)
        assert executor._actors == []  # the run's end killed its actor
        assert executor.device == "cpu"  # auto, on a cluster without GPUs
    assert pools == 1  # the actor's worker process stayed up from model to model
    assert sorted(job.name for job, _ in finished) == sorted(GOOD)  # each job came back once
    for job, probed in finished:
        assert probed.status == "ok" and probed.forward_s > 0, probed
        np.testing.assert_allclose(np.load(job.cache), expected[job.name], atol=1e-6)
    assert not list((tmp_path / "ray").glob("*.tmp.npy"))
    assert ray.is_initialized()  # not started by the executor: left running
    executor.close()  # again: nothing left to do
    assert ray.is_initialized() and not executor._started_ray
    assert list(RayExecutor(workers=2).run([])) == []  # no job, nothing started


def test_faulty_models_fail_alone_with_their_reasons(ray_cluster, tiny_zoo_master, tmp_path):
    models = tmp_path / "models"
    for how in faulty_models.HOW:
        faulty_models.save(models, f"bad-{how}", how)
    faulty_models.save(models, "fine-pickle", "fine")
    jobs = [_job(models / f"bad-{how}", tmp_path / "out") for how in faulty_models.HOW]
    jobs += [_job(models / "fine-pickle", tmp_path / "out"),
             _job(ZooLayout(tiny_zoo_master).model_folder("bbc-bow"), tmp_path / "out")]

    with RayExecutor(workers=2, timeout_s=20, trust_pickle=True, memory_mb=TEST_CAP_MB) as executor:
        results = {}
        for job, probed in executor.run(jobs):
            assert job.name not in results
            results[job.name] = probed
    assert executor.workers == 2
    failed = {name: probed.reason for name, probed in results.items() if probed.status == "failed"}
    assert set(failed) == {f"bad-{how}" for how in faulty_models.HOW}, results
    assert failed["bad-hang"] == "killed after 20 s"
    assert failed["bad-segfault"] == "the worker died: signal 11 (SIGSEGV)"
    assert failed["bad-exit"] == "the worker exited: exit code 3"
    assert failed["bad-memory"].startswith("out of memory (the worker's cap is 5.0 GiB): MemoryError")
    assert failed["bad-raise"] == "RuntimeError: weights corrupted"
    assert results["fine-pickle"].status == results["bbc-bow"].status == "ok"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bbc-bow.npy", "fine-pickle.npy"]
    assert _gone(_actor_processes())  # no actor, and no worker of one, outlives the run


def test_an_actor_that_dies_fails_its_model_and_is_replaced(ray_cluster, tiny_zoo_master, tmp_path):
    faulty_models.save(tmp_path / "models", "bad-hang", "hang")
    jobs = [_job(tmp_path / "models" / "bad-hang", tmp_path / "out")]
    jobs += [_job(ZooLayout(tiny_zoo_master).model_folder(name), tmp_path / "out") for name in GOOD[:2]]
    with RayExecutor(workers=1, timeout_s=60, trust_pickle=True) as executor:
        results = executor.run(jobs)  # the one actor takes the hanging model at once
        [actor] = executor._actors
        ray.get(actor.ready)
        deadline = time.monotonic() + 60
        while not (workers := [pid for pid, parent in _actor_processes().items() if parent in _actor_processes()]):
            assert time.monotonic() < deadline, "the actor started no worker process"
            time.sleep(0.2)
        ray.kill(actor.handle)  # as when its node is lost
        finished = {job.name: probed for job, probed in results}
    assert finished["bad-hang"].status == "failed"
    assert finished["bad-hang"].reason.startswith("the Ray actor that ran it died: ")
    assert "ray.kill" in finished["bad-hang"].reason
    assert [finished[name].status for name in GOOD[:2]] == ["ok", "ok"]  # in the actor that replaced it
    assert _gone(workers)  # the hanging model's worker process died with its actor


def test_settings_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="workers must be"):
        RayExecutor(workers=0)
    with pytest.raises(ConfigError, match="timeout must be"):
        RayExecutor(workers=1, timeout_s=0)
    with pytest.raises(ConfigError, match="at least 3584 MiB"):
        RayExecutor(workers=1, memory_mb=1000)
    job = ProbeJob("x", tmp_path, {}, "text-v1", tmp_path / "x.npy")
    executor = make_executor("ray", 1, address="127.0.0.1:1")
    assert isinstance(executor, RayExecutor)
    with pytest.raises(ConfigError, match=r"cannot reach the Ray cluster at '127\.0\.0\.1:1'.*ray status"):
        executor.run([job])
    assert executor._actors == []


def test_cuda_on_a_cluster_without_gpus_is_refused(ray_cluster, tmp_path):
    with pytest.raises(ConfigError, match="device must be 'cpu', 'cuda' or 'auto'"):
        RayExecutor(workers=1, device="gpu")
    executor = RayExecutor(workers=1, device="cuda")
    with pytest.raises(ConfigError, match="the Ray cluster has no GPU"):
        executor.run([ProbeJob("x", tmp_path, {}, "text-v1", tmp_path / "x.npy")])
    assert executor._actors == [] and ray.is_initialized()


def test_importing_the_executor_does_not_import_ray():
    code = "import sys, zoo2vec.jobs.ray_executor; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
