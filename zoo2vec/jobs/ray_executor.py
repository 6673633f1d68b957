"""The probe stage on a Ray cluster, for zoos that outgrow one machine: the same isolation as `LocalExecutor`, spread
over Ray's nodes.

Ray runs its actors in worker processes it can kill, but a model that segfaults or calls os._exit inside an actor
takes the actor down, and Ray has no per-call timeout that kills a hung call. So an actor does not run models itself:

- `RayExecutor` starts one actor per worker (`num_cpus=1`, never restarted by Ray), and each actor holds a
  `LocalExecutor` with one worker process. A model that hangs, segfaults, calls os._exit or blows the memory cap is
  killed and recorded inside the actor's node exactly as on one machine (executors.py), and the actor lives on;
- an actor keeps its worker process warm from job to job (torch, zoo2vec and the probe set are imported once per
  actor, not once per model): it appends each job to the queue of the one `LocalExecutor.run()` it started for its
  first job. The worker warms up the probe set of that first job; another probe set loads in the first job that
  needs it there.
  Measured on two busy cores (8 tiny models, one actor): the first answer came 3.0-3.5 s after `run()` when joining a
  running Ray (a local pool's: 3.3 s), 10.5 s when `ray.init` had to start one (6.7 s of it); after that a model took
  20 ms more than its forward pass, as in the local pool;
- a job's outputs are written to a node-local temporary folder and come back to this process through Ray's object
  store; this process writes them to the job's cache file (temp file + rename), so the probe-output cache needs to be
  writable here only;
- this process hands each actor one job at a time and yields `(job, Probed)` as each comes back. An actor that dies
  (its node lost, its process killed) fails the job it held, with the reason, and a fresh actor takes its place; an
  actor that could not start at all fails no model: its job goes to another actor, and when none could start the run
  stops with a ConfigError that says why;
- each worker's address space is capped as locally: `memory_mb`, else $ZOO2VEC_WORKER_MEMORY_MB of this process, else
  what `worker_memory_mb` gives on the actor's node for one worker per core there. With device "cuda" each actor
  holds an even share of the cluster's GPUs (Ray sets its CUDA_VISIBLE_DEVICES) and its worker has no cap;
- nothing starts before the first job. Then Ray is joined if this process is already connected to it, else
  `ray.init(address)` (None: a local instance with `workers` CPUs, or $RAY_ADDRESS; a host:port that takes no
  connection fails at once, where ray.init would retry for minutes). `close()` kills the actors, their
  worker processes die with them, and Ray is shut down only if this executor started it. A run that ends, an
  exception, Ctrl-C, or a caller that stops iterating all close it.

What every node needs: zoo2vec installed (the same version as here, with the extras the zoo's formats need) and the
model folders at the same path as here (a shared filesystem, e.g. NFS): the actors load each model from `job.folder`.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec.errors import ConfigError, require
from zoo2vec.jobs.executors import (
    MEMORY_VARIABLE,
    WORKER_MIN_MB,
    LocalExecutor,
    Probed,
    ProbeJob,
    _remove_temporary,
    _save,
    default_workers,
    reason_of,
    worker_memory_mb,
)

CONNECT_TIMEOUT_S = 10.0  # ray.init retries an address that does not answer for minutes: checked first, this long


@dataclass
class _Actor:
    handle: Any  # the Ray actor handle
    ready: Any  # its __ray_ready__ ref: resolved once the actor has started


class RayExecutor:
    """Probe jobs in `workers` Ray actors (default: the cluster's CPUs), each running one model at a time in a worker
    process of its own, killed after `timeout_s` seconds (None: never), its address space capped at `memory_mb` MiB
    (0: no cap), on `device` ("cpu", or "cuda": each actor then holds an even share of the cluster's GPUs, and its
    worker no cap). `address` as for ray.init (None: this process's Ray, or a local instance started here).

        with RayExecutor(address="head-node:6379", timeout_s=120) as executor:
            for job, probed in executor.run(jobs):   # as each model finishes, on whichever node
                ...
    """

    def __init__(self, workers: int | None = None, *, address: str | None = None, timeout_s: float | None = 120.0,
                 trust_pickle: bool = False, memory_mb: int | None = None, device: str = "cpu"):
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ConfigError(f"workers must be a whole number of Ray actors, 1 or more; got {workers!r}")
        if timeout_s is not None and not timeout_s > 0:
            raise ConfigError(f"timeout must be a positive number of seconds; got {timeout_s!r}")
        if memory_mb is not None and (not isinstance(memory_mb, int) or isinstance(memory_mb, bool) or memory_mb < 0
                                      or 0 < memory_mb < WORKER_MIN_MB):
            raise ConfigError(f"memory_mb={memory_mb!r}: a worker needs at least {WORKER_MIN_MB} MiB of address space "
                              "to import torch; give more, or 0 for no cap")
        if device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"device must be 'cpu', 'cuda' or 'auto' (cuda when the cluster has GPUs); got {device!r}")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigError(f"address must be a Ray address such as 'head-node:6379' or 'ray://head-node:10001'; "
                              f"got {address!r}")
        if memory_mb is None and os.environ.get(MEMORY_VARIABLE, "").strip():
            memory_mb = worker_memory_mb(1, "cpu") or 0  # this process's setting travels to every node (0: no cap)
        self.address, self.timeout_s, self.trust_pickle, self.memory_mb = address, timeout_s, trust_pickle, memory_mb
        self.device = device
        self.workers = workers if workers is not None else default_workers()  # the cluster's CPUs once joined
        self._asked = workers
        self._started_ray = False
        self._actor_class = None
        self._gpu_share = 0.0  # of one GPU, per actor (device "cuda")
        self._actors: list[_Actor] = []

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Kill the actors (their worker processes die with them) and shut Ray down if this executor started it.
        Idempotent."""
        actors, self._actors = self._actors, []
        if actors:
            import ray

            for actor in actors:
                try:
                    ray.kill(actor.handle, no_restart=True)
                except Exception:  # noqa: BLE001 - already dead, or Ray already shut down
                    pass
        if self._started_ray:
            import ray

            self._started_ray, self._actor_class = False, None  # a next run starts a fresh Ray
            ray.shutdown()

    def run(self, jobs: Iterable[ProbeJob]) -> Iterator[tuple[ProbeJob, Probed]]:
        """Each job with what came of it, in the order they finish. Ray and the actors start here, only when there
        is a job, and each actor gets its first job at once: they warm up while the caller does other work."""
        queue = deque(jobs)
        if not queue:
            return iter(())
        running: dict[Any, tuple[_Actor, ProbeJob, float]] = {}
        try:
            actors = self._connect(len(queue))
            for _ in range(actors):
                self._hand(self._start_actor(), queue.popleft(), running)
        except BaseException:
            self.close()
            raise
        return self._results(queue, running)

    # ------------------------------------------------------------------------------------------------------------

    def _connect(self, jobs: int) -> int:
        """Join Ray (or start it), settle the number of workers; how many actors this run starts."""
        ray = require("ray", "ray")
        if not ray.is_initialized():
            target = self.address or os.environ.get("RAY_ADDRESS") or None
            if target is not None:
                _check_reachable(target)
            try:
                ray.init(address=self.address, num_cpus=self._asked if target is None else None,
                         include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                         logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                if target is None:
                    raise ConfigError(f"could not start a local Ray instance: {type(exc).__name__}: {exc}; pass the "
                                      "address of a running cluster instead") from exc
                raise ConfigError(f"could not connect to the Ray cluster at {target!r}: {type(exc).__name__}: {exc}; "
                                  "check that it is running (`ray status` on its head node) and that its Ray version "
                                  f"is this one's ({ray.__version__})") from exc
            self._started_ray = True
        elif self.address is not None:
            _check_reachable(self.address)  # already connected, so ray.init is skipped: a dead address still fails
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 0))
        if self._asked is None:
            self.workers = cpus or default_workers()
        # an actor beyond the cluster's CPUs would wait for one forever, holding a job (an autoscaling cluster that
        # has not grown yet starts fewer actors: pass its final size as workers only once it has grown)
        actors = max(1, min(self.workers, jobs, cpus or self.workers))
        if self.device == "auto":  # the cluster's GPUs, not this process's: a head node often has none
            self.device = "cuda" if resources.get("GPU", 0) >= 1 else "cpu"
        if self.device == "cuda":
            if self.memory_mb:
                self.memory_mb = 0  # CUDA maps far more address space than it uses: a cap would stop it starting
            gpus = int(resources.get("GPU", 0))
            if not gpus:
                raise ConfigError("device cuda: the Ray cluster has no GPU (ray.cluster_resources() lists none); use "
                                  "device cpu, or add GPU nodes")
            # actors share the GPUs evenly, each a whole fraction of one, so that every actor fits on some GPU
            self._gpu_share = 1.0 / -(-actors // gpus)
        return actors

    def _start_actor(self) -> _Actor:
        import ray

        if self._actor_class is None:
            self._actor_class = ray.remote(num_cpus=1, max_restarts=0)(_ProbeActor)
        options = {"num_gpus": self._gpu_share} if self.device == "cuda" else {}
        handle = self._actor_class.options(**options).remote(self.timeout_s, self.trust_pickle, self.memory_mb,
                                                             self.device)
        actor = _Actor(handle, handle.__ray_ready__.remote())
        self._actors.append(actor)
        return actor

    def _drop(self, actor: _Actor):
        import ray

        if actor in self._actors:
            self._actors.remove(actor)
        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    @staticmethod
    def _hand(actor: _Actor, job: ProbeJob, running: dict):
        running[actor.handle.probe.remote(job)] = (actor, job, time.perf_counter())

    def _results(self, queue: deque, running: dict) -> Iterator[tuple[ProbeJob, Probed]]:
        import ray
        from ray.exceptions import RayActorError

        idle: list[_Actor] = []
        cannot_start = ""
        try:
            while running:
                [ref], _ = ray.wait(list(running), num_returns=1)
                actor, job, handed = running.pop(ref)
                probed = None
                try:
                    probed, outputs = ray.get(ref)
                    if probed.status == "ok":
                        probed = _write(probed, outputs, job)
                    idle.append(actor)
                except RayActorError as exc:
                    self._drop(actor)
                    if not _started(actor, exc):  # no model's fault: its job goes to another actor
                        cannot_start = _actor_error(exc)
                        queue.appendleft(job)
                    else:
                        probed = Probed("failed", f"the Ray actor that ran it died: {_actor_error(exc)}",
                                        seconds=time.perf_counter() - handed)
                        if queue:
                            idle.append(self._start_actor())
                except Exception as exc:  # noqa: BLE001 - any other Ray error fails this job alone
                    probed = Probed("failed", f"Ray could not run it: {_ray_error(exc)}",
                                    seconds=time.perf_counter() - handed)
                    idle.append(actor)
                while queue and idle:
                    self._hand(idle.pop(), queue.popleft(), running)
                if queue and not running:
                    raise ConfigError(f"no Ray actor could start: {cannot_start}; check that every node has zoo2vec "
                                      "installed (the same version as here) and that the settings are valid there")
                if probed is not None:
                    yield job, probed
        finally:
            self.close()


def _write(probed: Probed, outputs, job: ProbeJob) -> Probed:
    """The outputs that came back, into the job's cache file (temp file + rename); a write that fails fails the
    job."""
    if outputs is None:
        return replace(probed, status="failed", reason="the actor sent no outputs back")
    try:
        _save(outputs, Path(job.cache))
    except OSError as exc:
        _remove_temporary(Path(job.cache))
        return replace(probed, status="failed", reason=f"its outputs could not be written to {job.cache}: {exc}")
    return probed


def _started(actor: _Actor, exc: BaseException) -> bool:
    """Whether the actor had started before it died (then it died while it held a model)."""
    import ray

    if getattr(exc, "actor_init_failed", False):
        return False
    done, _ = ray.wait([actor.ready], timeout=1.0)  # resolved before the job's answer, when the actor started
    if not done:
        return False
    try:
        ray.get(done[0])
    except Exception:  # noqa: BLE001 - it never started
        return False
    return True


def _actor_error(exc: BaseException) -> str:
    """Why an actor died, in one line: Ray's explanation without its header and the actor's ids, or, for an actor
    that failed in its __init__, the exception it raised (the last line of the traceback Ray sends)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if getattr(exc, "actor_init_failed", False) or "creation task" in str(exc):
        why = lines[-1:]
    else:
        why = [line for line in lines[1:] if not line.startswith(("class_name:", "actor_id:", "pid:", "name:",
                                                                  "namespace:", "ip:"))] or lines[:1]
    return " ".join(why)[:300] or type(exc).__name__


def _ray_error(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # RayTaskError: what the actor raised
    if isinstance(cause, BaseException):
        return reason_of(cause)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _check_reachable(address: str):
    """A host:port address that takes no connection fails here, at once and saying so, instead of in ray.init's
    retries (minutes)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: ray.init says what it makes of it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc}; check that its head node is up "
                          "(`ray status` there), that the address is its GCS address host:port (port 6379 by "
                          "default; ray://host:10001 for Ray Client) and that no firewall stands between") from None


# ----------------------------------------------------------------------------------------------------------------
# In the actor (a Ray worker process, on any node)


class _ProbeActor:
    """One worker's worth of probing on a node: a LocalExecutor with one worker process, kept warm between jobs."""

    def __init__(self, timeout_s: float | None, trust_pickle: bool, memory_mb: int | None, device: str):
        if memory_mb is None:  # this node's share, for one worker per core here
            memory_mb = worker_memory_mb(default_workers(), device) or 0
        self._executor = LocalExecutor(1, timeout_s=timeout_s, trust_pickle=trust_pickle, memory_mb=memory_mb,
                                       device=device)
        self._results: Iterator | None = None  # the executor's run(), suspended between jobs: its pool stays up
        self._feed: deque | None = None  # the queue that run() takes its next job from
        self.pools_started = 0

    def probe(self, job: ProbeJob) -> tuple[Probed, Any]:
        """Run one job in the worker process; its outputs (or None) come back with its Probed."""
        with tempfile.TemporaryDirectory(prefix="zoo2vec-ray-") as folder:
            local = replace(job, cache=Path(folder) / Path(job.cache).name)
            probed = self._probe(local)
            outputs = np.load(local.cache) if probed.status == "ok" else None
        return probed, outputs

    def _probe(self, job: ProbeJob) -> Probed:
        try:
            if self._feed is not None:
                self._feed.append(job)
            else:
                self._feed = deque([job])
                self._results = self._executor.run(self._feed)  # takes later jobs from the same deque
                self.pools_started += 1
            done, probed = next(self._results)
            if done is not job:
                raise RuntimeError(f"the worker pool answered for {done.name!r}")
            return probed
        except Exception as exc:  # noqa: BLE001 - StopIteration included: a fresh run() for the next job
            self._stop()
            return Probed("failed", f"the worker pool could not run it: {reason_of(exc)}")

    def _stop(self):
        results, self._results, self._feed = self._results, None, None
        if results is not None:
            results.close()  # the run's finally stops its pool
        self._executor.close()

