"""The Python entry point: zoo = zoo2vec.open(path); zoo.search(task=..., text=..., k=5, where=...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo2vec import settings
from zoo2vec.data.task import Task
from zoo2vec.errors import TaskError, ZooError
from zoo2vec.index import filters
from zoo2vec.search import engine
from zoo2vec.search.query import Query
from zoo2vec.search.results import SearchResult, SearchResults
from zoo2vec.search.snapshot import CurrentSnapshot
from zoo2vec.search.verify import RECOMMENDED, verify

__all__ = ["ModelDetails", "SearchResult", "SearchResults", "Zoo", "open"]  # the results are re-exported: code imports them from here


@dataclass(frozen=True)
class ModelDetails:
    """One indexed model as its page shows it: the card (and where each field came from), what probing found it to
    know, how it behaved on the probe set, the models nearest it, and its indexing history."""

    name: str
    card: dict[str, Any]  # the card it was indexed with
    origin: dict[str, str]  # card field -> where it was read (card.json, a file of the model...); {} when unknown
    concepts: Any  # DataFrame: label, labelled (the card names it), mass (mean P(class) over the probe set)
    confidence: float  # mean top-class probability on the probe set
    entropy: float  # mean entropy of its outputs on the probe set (nats)
    top_probability: Any = field(repr=False)  # ndarray (probe inputs,): the top-class probability on each probe input
    nearest: Any = field(repr=False)  # DataFrame: name, similarity (cosine of knowledge vectors), same modality only
    runs: Any = field(repr=False)  # DataFrame: this model's probe runs (snapshot_id, status, reason, seconds, ran_at)
    # its latest failed (or skipped) probe run: snapshot_id, status, reason, seconds, ran_at; None when none failed.
    # A model that fails now is not indexed (Zoo.failures() lists it): this is a failure since fixed.
    failure: dict[str, Any] | None = None


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
        names probed, reused, removed, failed and skipped (with reasons). `status` says how each ended: published,
        or failed, interrupted or killed (report: the stage it stopped in and why), or running (now)."""
        import pandas as pd

        from zoo2vec.errors import IndexNotBuiltError
        from zoo2vec.index.run_journal import RunJournal, as_history_row
        from zoo2vec.index.snapshots import SnapshotStore

        unpublished = pd.DataFrame([as_history_row(n) for n in RunJournal(SnapshotStore(self.root).base).notes()])
        try:
            published = self._current_snapshot.get().catalog.history(last)
        except IndexNotBuiltError:  # no run has published yet: the ones that tried are still worth showing
            if unpublished.empty:
                raise
            published = pd.DataFrame(columns=unpublished.columns)
        if unpublished.empty:
            return published
        unpublished = unpublished[~unpublished["snapshot_id"].isin(published["snapshot_id"])]  # carried just now
        runs = pd.concat([unpublished.reindex(columns=published.columns), published], ignore_index=True)
        return runs.sort_values("started_at", ascending=False, ignore_index=True).head(last or len(runs))

    def knowledge(self):
        """(names, vectors): every indexed model's knowledge vector, one unit-norm row per name (the sketch of how
        it decides on the probe set that search retrieves by). Rows of one modality share a probe set and compare by
        cosine; rows of different modalities do not compare."""
        catalog = self._current_snapshot.get().catalog
        ids, vectors = catalog.vectors("task")
        names = catalog.models().set_index("model_id")["name"]
        return [names[i] for i in ids.tolist()], vectors

    def task_vector(self, task: Task | str | Path):
        """A task's knowledge vector, comparable with knowledge()'s rows of the task's modality (the vector search
        retrieves candidates with)."""
        from zoo2vec.encoders import know2vec, reference

        snapshot = self._current_snapshot.get()
        task = task if isinstance(task, Task) else Task.from_path(task)
        encoder, probe_embeddings = snapshot.reference_for(task.modality)
        samples = reference.embed(encoder, list(task.samples))
        return know2vec.encode_task(samples, task.labels, probe_embeddings).kernel_vector

    def model(self, name: str, *, nearest: int = 5) -> ModelDetails:
        """One indexed model's details (see ModelDetails); ZooError naming the indexed models for an unknown name.
        Reads the catalog, and the model's card files for where each field came from; runs no model code."""
        import numpy as np
        import pandas as pd

        snapshot = self._current_snapshot.get()
        models = snapshot.catalog.models()
        row = models[models["name"] == name]
        if row.empty:
            shown = ", ".join(models["name"].head(20)) + (", ..." if len(models) > 20 else "")
            raise ZooError(f"no model {name!r} is indexed in {self.root}; indexed: {shown or 'none'}")
        model_id = int(row["model_id"].iloc[0])
        profile = snapshot.catalog.profiles([model_id])[model_id]
        labelled = row["label_names"].iloc[0] is not None
        concepts = pd.DataFrame({"label": list(profile.labels), "labelled": labelled,
                                 "mass": profile.mass.astype(float)})
        top = profile.outputs.max(axis=1) if profile.outputs is not None else np.zeros(0, dtype=np.float32)
        runs = snapshot.catalog.runs()
        runs = runs[runs["name"] == name].drop(columns="name").reset_index(drop=True)
        failed = runs[runs["status"] != "ok"]
        return ModelDetails(
            name=name, card=snapshot.catalog.cards([model_id])[model_id], origin=self._origin(name),
            concepts=concepts, confidence=profile.confidence, entropy=profile.entropy, top_probability=top,
            nearest=self._nearest(model_id, row["modality"].iloc[0], models, nearest),
            runs=runs, failure=None if failed.empty else failed.iloc[-1].to_dict())

    def _nearest(self, model_id: int, modality: str, models, n: int):
        import pandas as pd

        ids, vectors = self._current_snapshot.get().catalog.vectors("task")
        info = models.set_index("model_id")
        same = [i for i, m in enumerate(ids.tolist()) if info.at[m, "modality"] == modality]
        own = ids.tolist().index(model_id)
        others = [i for i in same if i != own]
        similarity = vectors[others] @ vectors[own]
        order = similarity.argsort()[::-1][:n]
        return pd.DataFrame({"name": [info.at[int(ids[others[i]]), "name"] for i in order],
                             "similarity": similarity[order].astype(float)})

    def _origin(self, name: str) -> dict[str, str]:
        """Where each card field of the model comes from, as its folder says now; {} when its folder is gone."""
        from zoo2vec.zoo.adapters import read_card
        from zoo2vec.zoo.discovery import locate

        try:
            resolved = read_card(locate(self.root, name), name)
        except (ZooError, OSError):
            return {}
        return {key: resolved.origin.get(key, "default") for key in resolved.card.to_dict()}

    def search(self, task: Task | str | Path | None = None, text: str | None = None, *, k: int = 5,
               where: dict[str, Any] | None = None, verify: int = 0) -> SearchResults:
        """Rank the zoo for a task (labelled samples, or a path to them), a sentence, or both.

        verify=n runs the first n candidates black-box on the task's samples (in worker processes) and puts them
        first, highest LogME of their outputs first (`logme`); each also gets a quick linear probe's accuracy
        (`measured`, next to the predicted `score`). n = 5 is what cross-validation chose (bench/VERIFY.md).
        """
        snapshot = self._current_snapshot.get()  # first: an unindexed zoo says so before any complaint about the query
        where = filters.checked(where)  # a FilterError naming the form `where` takes, before any work
        query = Query.validate(task, text, k=k, where=where, verify=verify)
        scorers = engine.Scorers(alignment=self.alignment, words=self.words, words_weight=self.words_weight)
        return engine.search(snapshot, query, scorers, self.root)

    def verify(self, results: SearchResults, task: Task | str | Path, n: int = RECOMMENDED) -> SearchResults:
        """Run the first n of a search's results black-box on the task's samples and put them first, highest LogME
        first: what search(task, verify=n) does, for a ranking already shown (the app shows it, then verifies).
        The results keep their length and are numbered afresh; a model that cannot be run is reported, not raised."""
        if task is None:
            raise TaskError("verify runs models on labelled samples: give the task the results were ranked for")
        query = Query.validate(task, None, k=max(len(results), 1), where=None, verify=n)
        other = [r.name for r in results[:n] if r.card.get("modality") != query.task.modality]
        if other:
            raise TaskError(f"the task is {query.task.modality}, but {', '.join(other)} take other inputs: verify the "
                            f"results of a search for this task")
        return verify(self.root, results, query.task, n) if n else SearchResults(results)


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
