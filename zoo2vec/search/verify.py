"""Verification: run the first n ranked models black-box on the task's samples (zoo.measure) and put them first, ordered
by the LogME of their outputs there (highest first; leave-one-domain-out CV chose it, and n = 5, bench/VERIFY.md),
those that could not be measured last among them. Each also gets a quick linear probe's accuracy, to read.

It works on results already ranked, so `search(verify=n)` and `Zoo.verify(results, task, n)` (a ranking shown
first, then verified, as the app does) are one step and give the same order.

The models run in worker processes (zoo.isolation), never in the searching process: an app or REST server that
verifies survives a model that hangs, crashes or eats memory, and that model is reported as not measured, with why.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from zoo2vec.data.task import Task
from zoo2vec.errors import ZooError
from zoo2vec.search.results import SearchResult, SearchResults
from zoo2vec.zoo.discovery import locate
from zoo2vec.zoo.isolation import run_isolated

TIMEOUT_S = 120.0  # per model: loading it and its forward passes on the task's samples
RECOMMENDED = 5  # the n leave-one-domain-out CV chose (bench/VERIFY.md): the app's default for a task with samples


def verify(zoo_root: Path, results: list[SearchResult], task: Task, n: int) -> SearchResults:
    """The results with their first n measured and re-ordered by measured LogME (those that failed last among them,
    in their ranked order), ranks numbered afresh; the rest keep their order."""
    from zoo2vec.encoders.transferability import logme
    from zoo2vec.zoo.measure import Measured, measure

    head = results[:n]
    folders, checks = {}, {}
    for i, r in enumerate(head):
        try:
            folders[i] = locate(zoo_root, r.name)
        except ZooError as exc:  # gone since it was indexed: reported like a model that failed to run
            checks[i] = Measured(None, 0.0, 0, str(exc))
    started = time.perf_counter()
    calls = [(folder, task, logme) for folder in folders.values()]
    answers = run_isolated(measure, calls, timeout_s=TIMEOUT_S) if calls else []
    for i, (ok, answer) in zip(folders, answers):
        checks[i] = answer if ok else Measured(None, time.perf_counter() - started, len(task), answer)
    measured = [dataclasses.replace(r, measured=checks[i].accuracy, logme=checks[i].evidence,
                                    verify_error=checks[i].error or None) for i, r in enumerate(head)]
    measured.sort(key=lambda r: (r.logme is None, -(r.logme or 0.0)))  # stable: ranked order breaks ties
    return SearchResults(dataclasses.replace(r, rank=i) for i, r in enumerate(measured + list(results[n:]), start=1))
