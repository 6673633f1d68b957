"""Model code in worker processes we can kill: the primitives the indexing job's executors (zoo2vec.jobs) and a
search's verification share, and the small warm pool verification runs models in.

A model's code may hang, segfault, call os._exit or eat the machine's memory; a thread cannot be stopped, a process
can. So a worker is spawned (never forked from a process that holds FAISS, DuckDB or torch threads), dies with the
process that started it (Linux), has its address space capped (RLIMIT_AS) and its thread pools sized to its share of
the cores; a call past its timeout is killed with its worker, and the pool starts a fresh one.
"""

from __future__ import annotations

import ast
import atexit
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from zoo2vec.errors import ConfigError

MEMORY_VARIABLE = "ZOO2VEC_WORKER_MEMORY_MB"
# The address space a worker needs before any model: Python, numpy, zoo2vec's probing modules and torch 2.x take
# 3.1 GiB of it (torch reserves most of that at import without using it), 3.2-3.7 GiB once a small model of the
# tiny zoo has run, transformers, onnxruntime or timm at most 3.5 GiB. Rounded up to leave room for another library.
WORKER_BASE_MB = 4096
WORKER_MIN_MB = 3584  # below this, importing torch itself fails: refused as a setting


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_memory_mb(workers: int, device: str = "cpu") -> int | None:
    """Each worker's address-space cap in MiB (None: no cap): $ZOO2VEC_WORKER_MEMORY_MB when set (0 turns the cap
    off), else what a worker needs before any model (WORKER_BASE_MB) plus the machine's memory shared between the
    workers, so that a runaway model fails before the workers together exhaust the machine. It caps address space,
    not resident memory: reserved but unused address space counts too (and CUDA reserves far more than it uses: turn
    the cap off for GPU workers)."""
    value = os.environ.get(MEMORY_VARIABLE, "").strip()
    if value:
        try:
            mb = int(value)
        except ValueError:
            raise ConfigError(f"{MEMORY_VARIABLE}={value!r} is not a whole number of MiB (0 turns the cap off)"
                              ) from None
        if mb < 0 or 0 < mb < WORKER_MIN_MB:
            raise ConfigError(f"{MEMORY_VARIABLE}={mb}: a worker needs at least {WORKER_MIN_MB} MiB of address space "
                              "to import torch; give more, or 0 for no cap")
        return mb or None
    if device != "cpu":
        return None  # CUDA maps far more address space than it uses: a cap would stop it from starting
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return WORKER_BASE_MB + physical // max(1, workers)


def died(exitcode: int | None) -> str:
    """Why a worker process ended, from its exit code (negative: the signal that killed it)."""
    if exitcode is None or exitcode == 0:
        return "the worker died"
    if exitcode > 0:
        return f"the worker exited: exit code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = "unknown signal"
    reason = f"the worker died: signal {-exitcode} ({name})"
    if -exitcode == signal.SIGKILL:
        reason += ", killed from outside the pool (the system's out-of-memory killer?)"
    return reason


def few_malloc_arenas(arenas: int):
    """glibc gives each thread that allocates its own 64 MiB arena, up to 8 per core: address space that counts
    towards the cap but holds nothing (32 threads of a model's thread pool: +1.2 GiB measured, +0.3 GiB with 2
    arenas). Capped workers keep a few."""
    if sys.platform.startswith("linux"):
        import ctypes

        M_ARENA_MAX = -8
        try:
            ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)
        except AttributeError:  # not glibc
            pass


def die_with(parent: int):
    """Linux: the kernel kills this worker when the process that started it exits (also on kill -9), so no worker
    outlives the process that started it. (It follows the thread that started the worker; a pool's threads live as long as
    the pool does.)"""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def cap_address_space(memory_mb: int, threads: int) -> int:
    """In a worker: cap its address space at `memory_mb` MiB (or the hard limit in force, if lower), the hard limit
    too, so model code cannot lift it; returns the cap in MiB."""
    import resource

    few_malloc_arenas(max(2, threads))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = memory_mb * 2**20 if hard == resource.RLIM_INFINITY else min(memory_mb * 2**20, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return cap // 2**20


def refuse_unguarded_script() -> None:
    """Before starting workers: a ConfigError where they would run the caller's script again. A spawned worker
    imports the script that started its parent (multiprocessing's spawn), so a script that searches with verify or
    indexes at its top level, outside `if __name__ == "__main__":`, would have every worker do that too, each
    starting workers of its own, and the parent would wait for workers that never answer. Checked in the parent
    (the line that called, read from the script) and in a worker that is still importing the script."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(UNGUARDED.format(where="this script"))
    line = _unguarded_call_line()
    if line is not None:
        raise ConfigError(UNGUARDED.format(where=f"line {line} of {sys.modules['__main__'].__file__}"))


UNGUARDED = ("zoo2vec runs models in worker processes, and each one imports the script that started it: {where} "
             "starts them from the script's top level, so every worker would run it again. Put that code under "
             "`if __name__ == \"__main__\":`")


def _unguarded_call_line() -> int | None:
    """The line of the running script's top-level code this call came from, when Python itself runs that script
    (`python script.py`, `python -m module`) and the line is not inside `if __name__ == "__main__":`; else None
    (a REPL, a notebook, a script that another program runs, such as Streamlit's app, which spawned workers do
    not re-run as the program's main)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    frame, top = sys._getframe(), None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is main.__dict__:
            top = frame
        frame = frame.f_back
    if top is None:
        return None
    below = top.f_back
    while below is not None:  # only runpy (python -m) may have started it
        if below.f_globals.get("__name__") != "runpy":
            return None
        below = below.f_back
    line = top.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    guarded = any(isinstance(node, ast.If) and _tests_main(node.test) and node.lineno <= line <= node.end_lineno
                  for node in ast.walk(tree))
    return None if guarded else line


def _tests_main(test: ast.expr) -> bool:
    """Whether an `if` tests `__name__ == "__main__"` (either way round, alone or with more conditions): generous,
    since a script wrongly refused cannot run at all, while one wrongly let through still gets its workers' error."""
    main = {ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))}
    return any(isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)
               and {ast.dump(node.left), ast.dump(node.comparators[0])} == main for node in ast.walk(test))


# ----------------------------------------------------------------------------------------------------------------
# A warm pool for model code run on behalf of a search (verify): started on first use, kept for the process's later
# searches (an app or REST server verifies many), stopped at exit.

_pool = None
_pool_lock = threading.Lock()


def run_isolated(function: Callable, calls: Sequence[tuple], *, timeout_s: float) -> list[tuple[bool, Any]]:
    """`function(*args)` for each args in `calls`, in worker processes: (True, its result) or (False, why it did not
    answer: the exception it raised, killed after the timeout, the way its worker died). `function` must be importable
    by name (the workers are spawned). Never raises for what a call does; a ConfigError before any work where the
    workers would run the calling script again (refuse_unguarded_script)."""
    from pebble import ProcessExpired

    futures = [_warm_pool().schedule(function, args=args, timeout=timeout_s) for args in calls]
    answers = []
    for future in futures:
        try:
            answers.append((True, future.result()))
        except FutureTimeout:
            answers.append((False, f"killed after {timeout_s:g} s"))
        except ProcessExpired as exc:
            answers.append((False, died(exc.exitcode)))
        except Exception as exc:  # noqa: BLE001 - the call's own exception, carried back from the worker
            answers.append((False, f"{type(exc).__name__}: {exc}"[:500]))
    return answers


def _warm_pool():
    global _pool
    from pebble import ProcessPool

    with _pool_lock:
        if _pool is None or not _pool.active:
            refuse_unguarded_script()
            workers = default_workers()
            memory_mb = worker_memory_mb(workers)
            _pool = ProcessPool(max_workers=workers, initializer=_start, initargs=(memory_mb, os.getpid()),
                                context=multiprocessing.get_context("spawn"))
            atexit.register(_pool.stop)
        return _pool


def _start(memory_mb: int | None, parent: int) -> None:
    """Pool initializer: die with the parent, one thread per worker's core share, the cap; torch imported here, not
    in a call's timeout."""
    die_with(parent)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    if memory_mb:
        cap_address_space(memory_mb, 1)
    try:
        import torch  # noqa: F401
    except ImportError:  # a zoo without torch models
        pass
