"""Words scoring: how well each model fits a sentence.

Per model: the sentence against its card, the classes the sentence names (after a colon, or the task's class names)
against its label names and, for text models, the concepts probing found; the model's decisions on the probe set
against pseudo-tasks made of those words; and a prior from its behaviour on the probe set. The words scorer turns
these word features (encoders.alignment.WORD_FEATURES) into a predicted accuracy. Reads nothing the task scoring
computes, only which models to score (`words_pool`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zoo2vec.encoders.alignment import Alignment
from zoo2vec.encoders.reference import TEXT_REFERENCE
from zoo2vec.index.catalog import ModelProfile
from zoo2vec.search.snapshot import Snapshot

WORDS_POOL = 300  # models a sentence alone is scored against: the card index's nearest, then the words scorer re-ranks


@dataclass(frozen=True)
class WordsScore:
    """One model scored against the sentence."""

    model_id: int
    text_similarity: float  # cosine of the sentence and the model card
    score: float  # the words scorer's predicted accuracy (untrained: the card similarity)
    features: dict[str, float]  # the word features it scored, by name (encoders.alignment.WORD_FEATURES)
    shares: dict[str, float]  # each component's share of `score`: card, concepts, decisions, prior ({} untrained)


def words_pool(task_candidates: Sequence[int], allowed: np.ndarray, n_candidates: int) -> tuple[np.ndarray, int]:
    """The models to score the sentence against, and how many: with a task, exactly the task's candidates (the words
    re-weigh them, they bring no others); else the allowed models, of which the WORDS_POOL nearest by card."""
    if len(task_candidates):
        return np.asarray(list(task_candidates), dtype=np.int64), len(task_candidates)
    return allowed, max(WORDS_POOL, n_candidates)


def score_words(snapshot: Snapshot, text: str, class_names: Sequence[str], pool: np.ndarray, n: int,
                scorer: Alignment) -> list[WordsScore]:
    """The n models of `pool` nearest the sentence by card, scored, nearest first. `class_names`: the task's classes
    when samples come too; else the classes the sentence names after its last colon, if any."""
    from zoo2vec.encoders import alignment, reference

    query = reference.embed_text([text])[0]
    names = list(class_names) or alignment.classes_named(text)
    purpose = text if class_names else text.rpartition(":")[0]
    class_vectors = reference.embed_text(names, memo=True) if names else query[None, :]
    ids, sims = snapshot.nearest_by_card(query, n, pool)
    profiles = snapshot.profiles_of(ids)
    kernels = _word_kernels(snapshot, names, purpose, ids, profiles)
    rows = [_features(sim, class_vectors, query, profiles[model_id], kernels.get(model_id, (0.0, 0.0)))
            for model_id, sim in zip(ids.tolist(), sims.tolist())]
    return [WordsScore(model_id=model_id, text_similarity=sim, score=float(score), features=row,
                       shares=alignment.shares(scorer, row, alignment.WORD_COMPONENTS))
            for model_id, sim, row, score in zip(ids.tolist(), sims.tolist(), rows, scorer.score(rows))]


def _features(card: float, class_vectors: np.ndarray, query: np.ndarray, p: ModelProfile,
              kernels: tuple[float, float]) -> dict[str, float]:
    from zoo2vec.encoders import alignment

    in_words = p.encoder.endswith("/" + TEXT_REFERENCE)  # its concepts live in the sentence space
    return alignment.word_features(card, class_vectors, query, len(p.labels), p.confidence, p.entropy, p.mass,
                                   label_vectors=p.label_vectors, text_prototypes=p.prototypes if in_words else None,
                                   kernels=kernels)


def _word_kernels(snapshot: Snapshot, names: list[str], purpose: str, ids: np.ndarray,
                  profiles: dict[int, ModelProfile]) -> dict[int, tuple[float, float]]:
    """Per model, kernel alignment with two pseudo-tasks built from the words: one sample per class (its name), and
    one per class phrased "<purpose>: <class>". Only where the modality's reference encoder embeds words."""
    if len(names) < 2:
        return {}
    phrases = [f"{purpose.strip()}: {c}" if purpose.strip() else c for c in names]
    out: dict[int, list[float]] = {}
    for modality, members in _by_modality(ids, profiles).items():
        for model_id, values in _pseudo_task_kernels(snapshot, modality, members, (names, phrases)).items():
            out.setdefault(model_id, []).extend(values)
    return {m: (v[0], v[1]) for m, v in out.items() if len(v) == 2}


def _by_modality(ids: np.ndarray, profiles: dict[int, ModelProfile]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for model_id in ids.tolist():
        groups.setdefault(profiles[model_id].modality, []).append(model_id)
    return groups


def _pseudo_task_kernels(snapshot: Snapshot, modality: str, members: list[int],
                         pseudo_tasks: tuple[list[str], ...]) -> dict[int, list[float]]:
    """Each member's kernel alignment with each pseudo-task (one sample per class); {} where the words cannot be
    embedded in the modality's reference space (pixels)."""
    from zoo2vec.encoders import know2vec, reference

    encoder, probe_embeddings = snapshot.reference_for(modality)
    out: dict[int, list[float]] = {}
    for samples in pseudo_tasks:
        vectors = reference.embed_words(encoder, samples)
        if vectors is None:
            break
        pseudo = know2vec.encode_task(vectors, np.arange(len(samples)), probe_embeddings)
        found, cka = snapshot.nearest_by_decisions(pseudo.kernel_vector, len(members), np.asarray(members, dtype=np.int64))
        for model_id, value in zip(found.tolist(), cka.tolist()):
            out.setdefault(model_id, []).append(value)
    return out
