"""Verification: run the first n ranked models black-box on the task's samples (zoo.measure) and put them first, ordered
by the LogME of their outputs there (highest first; leave-one-domain-out CV chose it, and n = 5, bench/VERIFY.md),
those that could not be measured last among them. Each also gets a quick linear probe's accuracy, to read.

The models run in worker processes (zoo.isolation), never in the searching process: an app or REST server that
verifies survives a model that hangs, crashes or eats memory, and that model is reported as not measured, with why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from zoo2vec.data.task import Task
from zoo2vec.index.catalog import Catalog
from zoo2vec.search.fusion import FusedScore
from zoo2vec.zoo.discovery import locate
from zoo2vec.zoo.isolation import run_isolated

if TYPE_CHECKING:
    from zoo2vec.zoo.measure import Measured

TIMEOUT_S = 120.0  # per model: loading it and its forward passes on the task's samples
RECOMMENDED = 5  # the n leave-one-domain-out CV chose (bench/VERIFY.md): the app's default for a task with samples


def verify(zoo_root: Path, catalog: Catalog, task: Task, ranking: list[FusedScore],
           n: int) -> tuple[list[FusedScore], dict[int, Measured]]:
    """The ranking with its first n re-ordered by measured LogME, and each measured model's Measured by id."""
    from zoo2vec.encoders.transferability import logme
    from zoo2vec.zoo.measure import Measured, measure

    head = ranking[:n]
    cards = catalog.cards([f.model_id for f in head])
    folders = [locate(zoo_root, cards[f.model_id]["name"]) for f in head]
    started = time.perf_counter()
    answers = run_isolated(measure, [(folder, task, logme) for folder in folders], timeout_s=TIMEOUT_S)
    measured = {f.model_id: answer if ok else Measured(None, time.perf_counter() - started, len(task), answer)
                for f, (ok, answer) in zip(head, answers)}

    def order(f: FusedScore) -> tuple[bool, float, float]:
        evidence = measured[f.model_id].evidence
        return evidence is None, -(evidence or 0.0), -f.score

    return sorted(head, key=order) + ranking[n:], measured
