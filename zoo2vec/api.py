"""The Python entry point: zoo = zoo2vec.open(path); zoo.search(task=..., text=..., k=5, where=...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo2vec import settings
from zoo2vec.data.task import Task
from zoo2vec.errors import ZooError
from zoo2vec.index import filters
from zoo2vec.search import engine
from zoo2vec.search.query import Query
from zoo2vec.search.results import SearchResult, SearchResults
from zoo2vec.search.snapshot import CurrentSnapshot

__all__ = ["SearchResult", "SearchResults", "Zoo", "open"]  # the results are re-exported: code imports them from here


class Zoo:
    """A model zoo folder and its current index snapshot."""

    def __init__(self, root: Path, alignment: str | None = None, words: str | None = None):
        from zoo2vec.encoders.alignment import load

        self.root = Path(root)
        self.alignment = load(alignment)
        self.words = load(words, words=True)
        self.words_weight = float(self.words.trained_on.get("fusion_weight", 0.5))
        self._current_snapshot = CurrentSnapshot(self.root)

    def __repr__(self) -> str:
        return f"Zoo({str(self.root)!r})"

    def index(self, *, timeout_s: float = 120.0, trust_pickle: bool = False, workers: int | None = None,
              executor: str = "local", address: str | None = None, device: str = "cpu", progress=None):
        """Probe new or changed models (in `workers` processes of the executor, "local" by default, or "ray" at
        `address`; on `device`: cpu, cuda or auto) and publish a new snapshot; returns an IndexReport."""
        from zoo2vec.jobs.indexing import run_index

        return run_index(self.root, timeout_s=timeout_s, trust_pickle=trust_pickle, workers=workers,
                         executor=executor, address=address, device=device, progress=progress)

    def models(self):
        """The indexed models and their cards as a DataFrame."""
        return self._current_snapshot.get().catalog.models()

    def runs(self):
        """Every model's probe runs recorded in this snapshot's history (status and failure reasons)."""
        return self._current_snapshot.get().catalog.runs()

    def failures(self):
        """The models that fail now, once each (name, status: failed or skipped, reason, ran_at): what the latest
        indexing run could not index. Failures of earlier runs since fixed, and of models since deleted, are not
        in it; runs() keeps every probe run."""
        return self._current_snapshot.get().catalog.failures()

    def history(self, last: int | None = None):
        """The zoo's indexing runs, newest first: start, end, executor, counts, seconds, and a `report` dict with the
        names probed, reused, removed, failed and skipped (with reasons)."""
        return self._current_snapshot.get().catalog.history(last)

    def search(self, task: Task | str | Path | None = None, text: str | None = None, *, k: int = 5,
               where: dict[str, Any] | None = None, verify: int = 0) -> SearchResults:
        """Rank the zoo for a task (labelled samples, or a path to them), a sentence, or both.

        verify=n runs the first n candidates black-box on the task's samples, measures each with a quick
        linear probe (`measured`, next to the predicted `score`) and puts them first, best measured first.
        """
        snapshot = self._current_snapshot.get()  # first: an unindexed zoo says so before any complaint about the query
        where = filters.checked(where)  # a FilterError naming the form `where` takes, before any work
        query = Query.validate(task, text, k=k, where=where, verify=verify)
        scorers = engine.Scorers(alignment=self.alignment, words=self.words, words_weight=self.words_weight)
        return engine.search(snapshot, query, scorers, self.root)


ZOO_VARIABLE = "ZOO2VEC_ZOO"


def default_zoo() -> tuple[Path, str]:
    """The zoo used when none is named: $ZOO2VEC_ZOO when set, else the demo zoo in the data home; and what to do
    when it is missing. The CLI and zoo2vec.open() both ask here, so they agree."""
    import os

    named = os.environ.get(ZOO_VARIABLE, "").strip()
    if named:
        return Path(named).expanduser(), f"${ZOO_VARIABLE} names it; point it at a zoo folder, or unset it"
    return settings.demo_zoo_path(), "build the demo zoo with `zoo2vec demo --no-app`"


def open(path: str | Path | None = None, *, alignment: str | None = None, words: str | None = None) -> Zoo:  # noqa: A001 - zoo2vec.open mirrors the built-in's shape on purpose
    """Open a zoo folder (default: $ZOO2VEC_ZOO, else the demo zoo in the data home). Does not index it."""
    root, hint = (Path(path), "check the path") if path is not None else default_zoo()
    if not root.is_dir():
        raise ZooError(f"no zoo at {root}: {hint}")
    return Zoo(root, alignment, words)
