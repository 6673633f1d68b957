"""Task scoring: how well each model fits a task's labelled samples.

Kernel alignment (the model's decisions on the probe set against the task's) retrieves the candidates from FAISS;
each task class is then matched to a distinct concept the model was found to know, and the alignment scores the pair
features (encoders.alignment.FEATURES) as a predicted accuracy. Reads nothing the words scoring computes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo2vec.data.task import Task
from zoo2vec.encoders.alignment import Alignment
from zoo2vec.encoders.know2vec import ConceptMatch, TaskKnowledge
from zoo2vec.index.catalog import ModelProfile
from zoo2vec.search.snapshot import Snapshot


@dataclass(frozen=True)
class TaskScore:
    """One model scored against the task's samples."""

    model_id: int
    score: float  # the alignment's predicted accuracy (untrained: the mean of kernel alignment and concept match)
    features: dict[str, float]  # the pair features it scored, by name (encoders.alignment.FEATURES)
    matches: tuple[ConceptMatch, ...]  # each task class and the model concept it was matched to

    @property
    def kernel_alignment(self) -> float:
        return self.features["kernel_alignment"]

    @property
    def concept_match(self) -> float:
        return self.features["concept_match"]


@dataclass(frozen=True)
class _TaskView:
    """The task as the pair features see it."""

    task: Task
    knowledge: TaskKnowledge
    label_vectors: np.ndarray  # the task's class names, embedded
    shape: tuple | None  # an image task's input shape, to compare with the model's


def score_task(snapshot: Snapshot, task: Task, among: np.ndarray, n_candidates: int,
               alignment: Alignment) -> list[TaskScore]:
    """The n_candidates models among `among` whose decisions agree most with the task's, scored, in retrieval order."""
    from zoo2vec.encoders.alignment import surrogate_scores_side_by_side

    view = _view(snapshot, task)
    ids, cka = snapshot.nearest_by_decisions(view.knowledge.kernel_vector, n_candidates, among)
    known = snapshot.profiles_of(ids)
    profiles = [known[model_id] for model_id in ids.tolist()]
    surrogates = surrogate_scores_side_by_side(view.knowledge, [p.outputs for p in profiles], task.labels)
    pairs = [_pair(view, kernel, p, surrogate) for kernel, p, surrogate in zip(cka.tolist(), profiles, surrogates)]
    predicted = alignment.score([features for features, _ in pairs])
    return [TaskScore(model_id=model_id, score=float(score), features=features, matches=tuple(matched))
            for model_id, (features, matched), score in zip(ids.tolist(), pairs, predicted)]


def _view(snapshot: Snapshot, task: Task) -> _TaskView:
    from zoo2vec.encoders import know2vec, reference

    encoder, probe_embeddings = snapshot.reference_for(task.modality)
    samples = reference.embed(encoder, list(task.samples))
    knowledge = know2vec.encode_task(samples, task.labels, probe_embeddings)
    label_vectors = reference.embed_text(list(task.label_names), memo=True)
    shape = task.samples[0].shape if task.modality == "image" else None
    return _TaskView(task, knowledge, label_vectors, shape)


def _pair(view: _TaskView, kernel: float, profile: ModelProfile,
          surrogate: dict[str, float]) -> tuple[dict[str, float], list[ConceptMatch]]:
    """The pair features of the task and one model (its surrogate scores computed with the other candidates'), and
    the concept each task class matched."""
    from zoo2vec.encoders import alignment, know2vec

    task, p = view.task, profile
    _, matched = know2vec.concept_match(view.knowledge, task.label_names, p.prototypes, p.labels)
    features = alignment.pair_features(
        kernel, [m.similarity for m in matched], len(p.labels), task.n_classes, p.confidence, p.entropy, p.mass,
        label_match=alignment.label_match(view.label_vectors, p.label_vectors), has_labels=p.label_vectors is not None,
        input_match=alignment.input_match(view.shape, p.input_shape), surrogate=surrogate)
    return features, matched
