"""The Python entry point: zoo = zoo2vec.open(path); zoo.search(task=..., text=..., k=5, where=...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec import settings
from zoo2vec.data.task import Task
from zoo2vec.encoders.alignment import FEATURES
from zoo2vec.encoders.reference import TEXT_REFERENCE
from zoo2vec.errors import FilterError, IndexNotBuiltError, TaskError, ZooError
from zoo2vec.index.catalog import Catalog, ModelProfile
from zoo2vec.index.snapshots import SnapshotStore
from zoo2vec.index.vector_index import VectorIndex

WORDS_POOL = 300  # models a sentence alone is scored against: the card index's nearest, then the words scorer re-ranks


def fuse(parts: dict, words_weight: float) -> tuple[float, dict[str, float]]:
    """One score from the task score (samples) and the words score (sentence), with each component's share of it.

    The words score's own shares (card, concepts, prior) come from its scorer; with samples as well they are
    scaled by the words' weight, the task taking the rest."""
    if "task_score" in parts and "words_score" in parts:
        score = (1 - words_weight) * parts["task_score"] + words_weight * parts["words_score"]
        return score, {"task": 1 - words_weight, **{k: words_weight * v for k, v in parts.get("word_shares", {}).items()}}
    if "task_score" in parts:
        return parts["task_score"], {"task": 1.0}
    return parts["words_score"], dict(parts.get("word_shares", {}))


@dataclass(frozen=True)
class SearchResult:
    """One ranked model. `score` is what the ranking uses; the parts say where it came from."""

    rank: int
    name: str
    score: float
    kernel_alignment: float | None  # CKA of the model's and the task's decisions on the probe set
    concept_match: float | None  # mean similarity of each task class to a distinct model concept
    text_similarity: float | None  # cosine of the query text and the model card (MiniLM)
    card: dict[str, Any]
    why: str
    matches: tuple = field(default=(), repr=False)  # (task class, model concept, similarity) per task class
    shares: dict = field(default_factory=dict)  # each component's share of the score: task, card, concepts, prior
    words_score: float | None = None  # with text: the words scorer's predicted accuracy from the sentence alone
    features: dict = field(default_factory=dict, repr=False)  # the pair features the alignment scored (see encoders.alignment)
    measured: float | None = None  # with verify=n: the model's measured accuracy on the task (quick linear probe)
    verify_error: str | None = None  # with verify=n: why the model could not be measured

    def __str__(self) -> str:
        checked = f" measured {self.measured:.3f}" if self.measured is not None else (
            " measured: failed" if self.verify_error else "")
        return f"{self.rank:>2}. {self.name:<28} score {self.score:.3f}{checked}  {self.why}"


class SearchResults(list):
    """A list of SearchResult, printable, with .to_pandas()."""

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self) if self else "(no models matched)"

    def to_pandas(self):
        import pandas as pd

        rows = []
        for r in self:
            rows.append({"rank": r.rank, "model": r.name, "score": r.score, "measured": r.measured,
                         "kernel_alignment": r.kernel_alignment, "words_score": r.words_score,
                         "concept_match": r.concept_match, "text_similarity": r.text_similarity,
                         "modality": r.card.get("modality"), "license": r.card.get("license"),
                         "params": r.card.get("params"), "why": r.why})
        return pd.DataFrame(rows, columns=["rank", "model", "score", "measured", "kernel_alignment", "concept_match",
                                           "words_score", "text_similarity", "modality", "license", "params", "why"])


class Zoo:
    """A model zoo folder and its current index snapshot."""

    def __init__(self, root: Path, alignment: str | None = None, words: str | None = None):
        from zoo2vec.encoders.alignment import load

        self.root = Path(root)
        self.alignment = load(alignment)
        self.words = load(words, words=True)
        self.words_weight = float(self.words.trained_on.get("fusion_weight", 0.5))
        self._store = SnapshotStore(self.root)
        self._loaded: Path | None = None

    def __repr__(self) -> str:
        return f"Zoo({str(self.root)!r})"

    def index(self, *, timeout_s: float = 120.0, trust_pickle: bool = False, progress=None):
        """Probe new or changed models and publish a new snapshot; returns an IndexReport."""
        from zoo2vec.jobs.indexing import run_index

        return run_index(self.root, timeout_s=timeout_s, trust_pickle=trust_pickle, progress=progress)

    def _snapshot(self):
        current = self._store.current()
        if current is None:
            raise IndexNotBuiltError(f"zoo {self.root} has no index yet: run `zoo2vec index {self.root}` or zoo.index()")
        if current != self._loaded:
            if self._loaded is not None:
                self._catalog.close()
            self._catalog = Catalog(current / "catalog.duckdb", read_only=True)
            self._task_index = VectorIndex.load(current / "task.faiss")
            self._card_index = VectorIndex.load(current / "card.faiss")
            self._references: dict[str, tuple[str, np.ndarray]] = {}  # probe set version -> (encoder, embeddings)
            self._profiles: dict[int, ModelProfile] = {}  # read once per snapshot, as candidates ask for them
            self._loaded = current
        return self._catalog

    def models(self):
        """The indexed models and their cards as a DataFrame."""
        return self._snapshot().models()

    def runs(self):
        """Every probe run recorded in this snapshot's history (status and failure reasons)."""
        return self._snapshot().runs()

    def _reference_for(self, modality: str) -> tuple[str, np.ndarray]:
        """The reference encoder the modality's models were encoded with, and the probe set's embeddings in it."""
        from zoo2vec.encoders import probe_set, reference

        version = self._catalog.probe_set_of(modality)
        if version not in self._references:
            if version is None:
                raise IndexNotBuiltError(f"the {modality} models of {self.root} were not all probed with one probe "
                                         f"set: run `zoo2vec index {self.root}` again")
            name = probe_set.config(version.split("@")[0])["reference_encoder"]
            embeddings = self._catalog.probe_embeddings(version, reference.identity(name))
            if not len(embeddings):
                raise IndexNotBuiltError(f"the {modality} models of {self.root} were encoded with another reference "
                                         f"encoder than {reference.identity(name)}: run `zoo2vec index {self.root}` again")
            self._references[version] = (name, embeddings)
        return self._references[version]

    def _profiles_of(self, ids: np.ndarray) -> dict[int, ModelProfile]:
        missing = [i for i in ids.tolist() if i not in self._profiles]
        if missing:
            self._profiles.update(self._catalog.profiles(missing))
        return self._profiles

    def _score_task(self, task: Task, allowed, n_candidates: int, scores: dict, matches: dict):
        """Kernel alignment from FAISS, then the pair features and the alignment's score for the candidates it returns."""
        from zoo2vec.encoders import alignment, know2vec, reference

        encoder, probe_embeddings = self._reference_for(task.modality)
        samples = reference.embed(encoder, list(task.samples))
        knowledge = know2vec.encode_task(samples, task.labels, probe_embeddings)
        label_vectors = reference.embed_text(list(task.label_names), memo=True)
        shape = task.samples[0].shape if task.modality == "image" else None
        ids, cka = self._task_index.search(knowledge.kernel_vector, n_candidates, allowed)
        profiles = self._profiles_of(ids)
        features = []
        for model_id, kernel in zip(ids.tolist(), cka.tolist()):
            p = profiles[model_id]
            _, matched = know2vec.concept_match(knowledge, task.label_names, p.prototypes, p.labels)
            features.append(alignment.pair_features(
                kernel, [m.similarity for m in matched], len(p.labels), task.n_classes, p.confidence, p.entropy, p.mass,
                label_match=alignment.label_match(label_vectors, p.label_vectors), has_labels=p.label_vectors is not None,
                input_match=alignment.input_match(shape, p.input_shape)))
            matches[model_id] = matched
        for model_id, f, score in zip(ids.tolist(), features, self.alignment.score(features)):
            scores[model_id] = {"task_score": float(score), **f}

    def _score_text(self, text: str, class_names, allowed, n_candidates: int, scores: dict):
        """The words score: card similarity, the named classes against each model's concepts, label names and
        decisions, and a prior from its behaviour on the probe set, for the task's candidates when there is a task,
        else for the allowed models nearest the sentence by card."""
        from zoo2vec.encoders import alignment, reference

        query = reference.embed_text([text])[0]
        names = list(class_names) or alignment.classes_named(text)
        purpose = text if class_names else text.rpartition(":")[0]
        class_vectors = reference.embed_text(names, memo=True) if names else query[None, :]
        pool = np.asarray(list(scores), dtype=np.int64) if scores else allowed
        ids, sims = self._card_index.search(query, len(pool) if scores else max(WORDS_POOL, n_candidates), pool)
        profiles = self._profiles_of(ids)
        kernels = self._word_kernels(names, purpose, ids, profiles)
        rows = []
        for model_id, sim in zip(ids.tolist(), sims.tolist()):
            p = profiles[model_id]
            in_words = p.encoder.endswith("/" + TEXT_REFERENCE)  # its concepts live in the sentence space
            rows.append(alignment.word_features(sim, class_vectors, query, len(p.labels), p.confidence, p.entropy, p.mass,
                                                label_vectors=p.label_vectors, text_prototypes=p.prototypes if in_words else None,
                                                kernels=kernels.get(model_id, (0.0, 0.0))))
        for model_id, sim, row, score in zip(ids.tolist(), sims.tolist(), rows, self.words.score(rows)):
            parts = scores.setdefault(model_id, {})
            parts.update(text_similarity=sim, words_score=float(score),
                         word_shares=alignment.shares(self.words, row, alignment.WORD_COMPONENTS))
            parts["word_features"] = row

    def _word_kernels(self, names: list[str], purpose: str, ids: np.ndarray, profiles) -> dict[int, tuple[float, float]]:
        """Per candidate, kernel alignment with two pseudo-tasks built from the words: one sample per class (its name),
        and one per class phrased "<purpose>: <class>". Only where the modality's reference encoder embeds words."""
        from zoo2vec.encoders import know2vec, reference

        if len(names) < 2:
            return {}
        out: dict[int, list[float]] = {}
        by_modality: dict[str, list[int]] = {}
        for model_id in ids.tolist():
            by_modality.setdefault(profiles[model_id].modality, []).append(model_id)
        labels = np.arange(len(names))
        for modality, members in by_modality.items():
            encoder, probe_embeddings = self._reference_for(modality)
            for samples in (names, [f"{purpose.strip()}: {c}" if purpose.strip() else c for c in names]):
                vectors = reference.embed_words(encoder, samples)
                if vectors is None:
                    break
                pseudo = know2vec.encode_task(vectors, labels, probe_embeddings)
                found, cka = self._task_index.search(pseudo.kernel_vector, len(members), np.asarray(members, dtype=np.int64))
                for model_id, value in zip(found.tolist(), cka.tolist()):
                    out.setdefault(model_id, []).append(value)
        return {m: (v[0], v[1]) for m, v in out.items() if len(v) == 2}

    def search(self, task: Task | str | Path | None = None, text: str | None = None, *, k: int = 5,
               where: dict[str, Any] | None = None, verify: int = 0) -> SearchResults:
        """Rank the zoo for a task (labelled samples, or a path to them), a sentence, or both.

        verify=n runs the first n candidates black-box on the task's samples, measures each with a quick
        linear probe (`measured`, next to the predicted `score`) and puts them first, best measured first.
        """
        catalog = self._snapshot()
        if task is None and not (text and text.strip()):
            raise TaskError("give a task (labelled samples), a text query, or both")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise TaskError(f"k must be a positive integer, got {k!r}")
        if isinstance(verify, bool) or not isinstance(verify, int) or verify < 0:
            raise TaskError(f"verify must be a whole number of models to run (0 for none), got {verify!r}")
        if task is not None and not isinstance(task, Task):
            task = Task.from_path(task)
        if verify and task is None:
            raise TaskError("verify runs models on labelled samples: give a task as well as the text")
        if verify and np.bincount(task.labels).min() < 2:
            raise TaskError("verify measures models by cross-validation: give at least two samples of every class")
        where = dict(where or {})
        if task is not None:
            wanted = where.get("modality")
            if wanted is not None and wanted != task.modality and wanted != ("=", task.modality):
                raise FilterError(f"the task is {task.modality}, but the filter asks for modality {wanted!r}: "
                                  f"drop the modality filter or bring a {wanted if isinstance(wanted, str) else ''} task".rstrip())
            if task.modality not in catalog.modalities():
                raise TaskError(f"the task is {task.modality}, but this zoo has no {task.modality} models")
            where["modality"] = task.modality
        allowed = catalog.allowed_ids(where)
        n_candidates = max(100, 5 * k)  # the alignment re-ranks what kernel alignment retrieves: keep the pool wide
        scores: dict[int, dict[str, float]] = {}
        matches: dict[int, list] = {}
        if task is not None:
            self._score_task(task, allowed, n_candidates, scores, matches)
        if text and text.strip():
            self._score_text(text, task.label_names if task is not None else (), allowed, n_candidates, scores)

        ranked = []
        for model_id, parts in scores.items():
            score, parts["shares"] = fuse(parts, self.words_weight)
            ranked.append((score, model_id))
        ranked.sort(key=lambda t: -t[0])
        measured: dict[int, Any] = {}
        if verify:
            ranked, measured = self._verify(task, ranked, verify)
        ranked = ranked[:k]
        cards = catalog.cards([m for _, m in ranked])
        results = SearchResults()
        for rank, (score, model_id) in enumerate(ranked, start=1):
            parts = scores[model_id]
            check = measured.get(model_id)
            results.append(SearchResult(
                rank=rank, name=cards[model_id]["name"], score=round(float(score), 4),
                kernel_alignment=_round(parts.get("kernel_alignment")), concept_match=_round(parts.get("concept_match")),
                text_similarity=_round(parts.get("text_similarity")), card=cards[model_id], shares=parts["shares"],
                words_score=_round(parts.get("words_score")),
                why=_why(parts, matches.get(model_id, []), learned=not self.alignment.untrained,
                         words_learned=not self.words.untrained), matches=tuple(matches.get(model_id, [])),
                features={f: parts[f] for f in FEATURES if f in parts} or dict(parts.get("word_features", {})),
                measured=None if check is None else check.accuracy,
                verify_error=None if check is None else (check.error or None),
            ))
        return results

    def _verify(self, task: Task, ranked: list, n: int) -> tuple[list, dict]:
        """Measure the first n candidates on the task; they go first, best measured first (failed ones last of them)."""
        from zoo2vec.zoo.measure import measure

        names = self._catalog.cards([m for _, m in ranked[:n]])
        measured = {model_id: measure(self.root / "models" / names[model_id]["name"], task) for _, model_id in ranked[:n]}
        head = sorted(ranked[:n], key=lambda t: (measured[t[1]].accuracy is None, -(measured[t[1]].accuracy or 0.0), -t[0]))
        return head + ranked[n:], measured


def _round(x):
    return None if x is None else round(float(x), 4)


def _why(parts: dict[str, float], matched: list, *, learned: bool = True, words_learned: bool = True) -> str:
    bits = []
    if "task_score" in parts:
        bits.append(f"{'predicted accuracy' if learned else 'task score'} {parts['task_score']:.2f}")
    if matched:
        shown = ", ".join(f"{m.task_class}→{m.model_concept} ({m.similarity:.2f}, {m.margin:+.2f})" if m.model_concept is not None
                          else f"{m.task_class}→∅" for m in matched[:6])
        more = f", +{len(matched) - 6} more" if len(matched) > 6 else ""
        bits.append(f"classes (similarity, margin over the next concept): {shown}{more}")
    if "kernel_alignment" in parts:
        bits.append(f"decisions agree {parts['kernel_alignment']:.2f}")
    if parts.get("has_labels"):
        bits.append(f"label names match {parts['label_match']:.2f}")
    elif "has_labels" in parts:
        bits.append("model names no labels")
    if parts.get("input_match", 1.0) < 1.0:
        bits.append("the task's images differ from the model's input shape")
    if "words_score" in parts:
        f = parts.get("word_features", {})
        said = f"words: predicted accuracy {parts['words_score']:.2f}" if words_learned else f"words score {parts['words_score']:.2f}"
        bits.append(f"{said} (card text {parts['text_similarity']:.2f}"
                    + (f", named classes vs label names {f['label_match']:.2f}" if f.get("has_labels") else "")
                    + (f", vs concepts found by probing {f['concept_words']:.2f}" if f.get("is_text") else "")
                    + (f", decisions agree with the named classes' {f['kernel_classes']:.2f}" if f.get("kernel_classes") else "")
                    + ")")
    if len(parts.get("shares", {})) > 1:
        bits.append("shares " + ", ".join(f"{name} {share:.0%}" for name, share in parts["shares"].items()))
    return "; ".join(bits)


def open(path: str | Path | None = None, *, alignment: str | None = None, words: str | None = None) -> Zoo:  # noqa: A001 - zoo2vec.open mirrors the built-in's shape on purpose
    """Open a zoo folder (default: the demo zoo in the data home). Does not index it."""
    root = Path(path) if path is not None else settings.demo_zoo_path()
    if not root.is_dir():
        hint = "build the demo zoo with `zoo2vec demo --no-app`" if path is None else "check the path"
        raise ZooError(f"no zoo at {root}: {hint}")
    return Zoo(root, alignment, words)
