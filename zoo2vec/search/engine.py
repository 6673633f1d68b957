"""The search, step by step: filters -> task scoring and words scoring -> fusion -> verification -> results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo2vec.encoders.alignment import FEATURES, Alignment
from zoo2vec.search.explain import why
from zoo2vec.search.fusion import FusedScore, rank
from zoo2vec.search.query import Query
from zoo2vec.search.results import SearchResult, SearchResults
from zoo2vec.search.snapshot import Snapshot
from zoo2vec.search.task_scoring import TaskScore, score_task
from zoo2vec.search.verify import verify
from zoo2vec.search.words import WordsScore, score_words, words_pool


@dataclass(frozen=True)
class Scorers:
    """The learned parts a search scores with."""

    alignment: Alignment  # pair features -> predicted accuracy on the task's samples
    words: Alignment  # word features -> predicted accuracy from the sentence
    words_weight: float  # the words score's weight when samples come too


def search(snapshot: Snapshot, query: Query, scorers: Scorers, zoo_root: Path) -> SearchResults:
    """The zoo ranked for the query: its first query.k models (the first query.verify of them measured)."""
    allowed = snapshot.allowed_ids(query.filters(snapshot.catalog))
    task_scores = _score_task(snapshot, query, allowed, scorers)
    words_scores = _score_words(snapshot, query, allowed, [s.model_id for s in task_scores], scorers)
    ranking = rank(task_scores, words_scores, scorers.words_weight)[:max(query.k, query.verify)]
    cards = snapshot.catalog.cards([entry.model_id for entry in ranking])
    results = SearchResults(_result(n, entry, cards[entry.model_id], scorers) for n, entry in enumerate(ranking, start=1))
    if query.verify:
        results = verify(zoo_root, results, query.task, query.verify)
    return SearchResults(results[:query.k])


def _score_task(snapshot: Snapshot, query: Query, allowed: np.ndarray, scorers: Scorers) -> list[TaskScore]:
    if query.task is None:
        return []
    return score_task(snapshot, query.task, allowed, query.n_candidates, scorers.alignment)


def _score_words(snapshot: Snapshot, query: Query, allowed: np.ndarray, task_candidates: list[int],
                 scorers: Scorers) -> list[WordsScore]:
    if query.text is None:
        return []
    pool, n = words_pool(task_candidates, allowed, query.n_candidates)
    class_names = query.task.label_names if query.task is not None else ()
    return score_words(snapshot, query.text, class_names, pool, n, scorers.words)


def _result(position: int, entry: FusedScore, card: dict, scorers: Scorers) -> SearchResult:
    task, words = entry.task, entry.words
    return SearchResult(
        rank=position, name=card["name"], score=round(float(entry.score), 4),
        kernel_alignment=_round(task.kernel_alignment) if task else None,
        concept_match=_round(task.concept_match) if task else None,
        text_similarity=_round(words.text_similarity) if words else None, card=card, shares=entry.shares,
        words_score=_round(words.score) if words else None,
        why=why(entry, learned=not scorers.alignment.untrained, words_learned=not scorers.words.untrained),
        matches=task.matches if task else (), features=_features(task, words))


def _features(task: TaskScore | None, words: WordsScore | None) -> dict[str, float]:
    """What was scored: the pair features with samples, else the word features."""
    scored = {f: task.features[f] for f in FEATURES if f in task.features} if task else {}
    return scored or (dict(words.features) if words else {})


def _round(x: float) -> float:
    return round(float(x), 4)
