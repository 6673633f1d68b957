"""A search request checked once, up front: every user mistake is a TaskError or FilterError naming the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec.data.task import Task
from zoo2vec.errors import FilterError, TaskError
from zoo2vec.index.catalog import Catalog


@dataclass(frozen=True)
class Query:
    """What to rank the zoo for. `text` is None when no words were given (or only blanks)."""

    task: Task | None
    text: str | None
    k: int
    where: dict[str, Any]
    verify: int  # how many of the first candidates to run on the task's samples (0: none)

    @classmethod
    def validate(cls, task: Task | str | Path | None, text: str | None, *, k: int, where: dict[str, Any] | None,
                 verify: int) -> Query:
        """The checked query; a task given as a path is loaded."""
        has_text = bool(text and text.strip())
        if task is None and not has_text:
            raise TaskError("give a task (labelled samples), a text query, or both")
        _check_counts(k, verify)
        if task is not None and not isinstance(task, Task):
            task = Task.from_path(task)
        _check_verifiable(task, verify)
        return cls(task=task, text=text if has_text else None, k=k, where=dict(where or {}), verify=verify)

    @property
    def n_candidates(self) -> int:
        """How many models kernel alignment retrieves: the alignment re-ranks them, so keep the pool wide."""
        return max(100, 5 * self.k)

    def filters(self, catalog: Catalog) -> dict[str, Any]:
        """The filters to search with: a task restricts the search to the models of its modality."""
        where = dict(self.where)
        if self.task is None:
            return where
        modality = self.task.modality
        wanted = where.get("modality")
        if wanted is not None and wanted != modality and wanted != ("=", modality):
            raise FilterError(f"the task is {modality}, but the filter asks for modality {wanted!r}: "
                              f"drop the modality filter or bring a {wanted if isinstance(wanted, str) else ''} task".rstrip())
        if modality not in catalog.modalities():
            raise TaskError(f"the task is {modality}, but this zoo has no {modality} models")
        where["modality"] = modality
        return where


def _check_counts(k: int, verify: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise TaskError(f"k must be a positive integer, got {k!r}")
    if isinstance(verify, bool) or not isinstance(verify, int) or verify < 0:
        raise TaskError(f"verify must be a whole number of models to run (0 for none), got {verify!r}")


def _check_verifiable(task: Task | None, verify: int) -> None:
    if verify and task is None:
        raise TaskError("verify runs models on labelled samples: give a task as well as the text")
    if verify and not verifiable(task):
        raise TaskError("verify measures models by cross-validation: give at least two samples of every class")


def verifiable(task: Task) -> bool:
    """Whether verify can measure models on the task: its probe's cross-validation needs two samples of every class."""
    return bool(np.bincount(task.labels).min() >= 2)
