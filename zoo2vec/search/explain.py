"""The `why` of a result: where its score came from, in a line, e.g.
`predicted accuracy 0.93; classes (similarity, margin over the next concept): 0→0 (0.96, +0.30), ...; decisions agree 0.56`."""

from __future__ import annotations

from zoo2vec.search.fusion import FusedScore
from zoo2vec.search.task_scoring import TaskScore
from zoo2vec.search.words import WordsScore

SHOWN_CLASSES = 6  # class matches spelled out; the rest are counted


def why(entry: FusedScore, *, learned: bool = True, words_learned: bool = True) -> str:
    """`learned`/`words_learned`: whether the task/words scores are a trained scorer's predicted accuracy."""
    bits = _task_bits(entry.task, learned) if entry.task is not None else []
    if entry.words is not None:
        bits.append(_words_bit(entry.words, words_learned))
    if len(entry.shares) > 1:
        bits.append("shares " + ", ".join(f"{name} {share:.0%}" for name, share in entry.shares.items()))
    return "; ".join(bits)


def _task_bits(task: TaskScore, learned: bool) -> list[str]:
    f = task.features
    bits = [f"{'predicted accuracy' if learned else 'task score'} {task.score:.2f}"]
    if task.matches:
        bits.append(f"classes (similarity, margin over the next concept): {_classes(task)}")
    if "kernel_alignment" in f:
        bits.append(f"decisions agree {f['kernel_alignment']:.2f}")
    if f.get("has_labels"):
        bits.append(f"label names match {f['label_match']:.2f}")
    elif "has_labels" in f:
        bits.append("model names no labels")
    if f.get("input_match", 1.0) < 1.0:
        bits.append("the task's images differ from the model's input shape")
    return bits


def _classes(task: TaskScore) -> str:
    matched = task.matches
    shown = ", ".join(f"{m.task_class}→{m.model_concept} ({m.similarity:.2f}, {m.margin:+.2f})"
                      if m.model_concept is not None else f"{m.task_class}→∅" for m in matched[:SHOWN_CLASSES])
    more = f", +{len(matched) - SHOWN_CLASSES} more" if len(matched) > SHOWN_CLASSES else ""
    return shown + more


def _words_bit(words: WordsScore, learned: bool) -> str:
    f = words.features
    said = f"words: predicted accuracy {words.score:.2f}" if learned else f"words score {words.score:.2f}"
    return (f"{said} (card text {words.text_similarity:.2f}"
            + (f", named classes vs label names {f['label_match']:.2f}" if f.get("has_labels") else "")
            + (f", vs concepts found by probing {f['concept_words']:.2f}" if f.get("is_text") else "")
            + (f", decisions agree with the named classes' {f['kernel_classes']:.2f}" if f.get("kernel_classes") else "")
            + ")")
