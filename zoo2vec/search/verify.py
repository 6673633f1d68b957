"""Verification: run the first n ranked models black-box on the task's samples (zoo.measure: a quick linear probe on
their outputs) and put them first, best measured first, those that could not be measured last among them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from zoo2vec.data.task import Task
from zoo2vec.index.catalog import Catalog
from zoo2vec.search.fusion import FusedScore
from zoo2vec.zoo.discovery import locate

if TYPE_CHECKING:
    from zoo2vec.zoo.measure import Measured


def verify(zoo_root: Path, catalog: Catalog, task: Task, ranking: list[FusedScore],
           n: int) -> tuple[list[FusedScore], dict[int, Measured]]:
    """The ranking with its first n re-ordered by measured accuracy, and each measured model's Measured by id."""
    from zoo2vec.zoo.measure import measure

    head = ranking[:n]
    cards = catalog.cards([f.model_id for f in head])
    measured = {f.model_id: measure(locate(zoo_root, cards[f.model_id]["name"]), task) for f in head}

    def order(f: FusedScore) -> tuple[bool, float, float]:
        accuracy = measured[f.model_id].accuracy
        return accuracy is None, -(accuracy or 0.0), -f.score

    return sorted(head, key=order) + ranking[n:], measured
