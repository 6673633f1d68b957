"""Fusion: one score per model from its task score (samples) and its words score (sentence), and the ranking."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zoo2vec.search.task_scoring import TaskScore
from zoo2vec.search.words import WordsScore


@dataclass(frozen=True)
class FusedScore:
    """One model's place in the ranking: its score, each component's share of it, and the scores it came from."""

    model_id: int
    score: float
    shares: dict[str, float]  # task, and the words' card, concepts, decisions, prior
    task: TaskScore | None  # None without samples
    words: WordsScore | None  # None without a sentence


def fuse(task: TaskScore | None, words: WordsScore | None, words_weight: float) -> FusedScore:
    """Both: (1 - words_weight) of the task score plus words_weight of the words score; the words' own shares (from
    their scorer) are scaled by the words' weight, the task taking the rest. One alone: that score, its shares."""
    if task is not None and words is not None:
        score = (1 - words_weight) * task.score + words_weight * words.score
        shares = {"task": 1 - words_weight, **{k: words_weight * v for k, v in words.shares.items()}}
        return FusedScore(task.model_id, score, shares, task, words)
    if task is not None:
        return FusedScore(task.model_id, task.score, {"task": 1.0}, task, None)
    if words is None:
        raise ValueError("fuse needs a task score, a words score or both")
    return FusedScore(words.model_id, words.score, dict(words.shares), None, words)


def rank(task_scores: Iterable[TaskScore], words_scores: Iterable[WordsScore], words_weight: float) -> list[FusedScore]:
    """Every model scored by either, best first; ties keep retrieval order (the task's candidates, then the words')."""
    by_task = {s.model_id: s for s in task_scores}
    by_words = {s.model_id: s for s in words_scores}
    order = list(by_task) + [m for m in by_words if m not in by_task]
    return sorted((fuse(by_task.get(m), by_words.get(m), words_weight) for m in order), key=lambda f: -f.score)
