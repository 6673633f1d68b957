"""Measure one model on the user's labelled samples, black-box: the check behind `search(verify=n)`.

Two numbers from the model's log-probabilities for the query samples:
  evidence  what the caller scores them by against the labels (search.verify: LogME, encoders.transferability):
            what verified models are ordered by, chosen by leave-one-domain-out CV (bench/VERIFY.md)
  accuracy  a quick linear probe, for reading: cross-validated accuracy of a logistic-regression head on them (the
            same head the benchmark's ground truth uses, scored by k-fold instead of a separate test split, since a
            user brings only the query). On few samples its folds are noisy (bench/VERIFY.md compares the two).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo2vec.data.images import resize
from zoo2vec.data.task import Task
from zoo2vec.zoo.adapters import load_model
from zoo2vec.zoo.blackbox import checked_predict


@dataclass(frozen=True)
class Measured:
    accuracy: float | None  # None when the model could not be run
    seconds: float  # forward passes and the probe together
    forward_passes: int
    error: str = ""
    evidence: float | None = None  # what measure() was asked to score its log-probabilities by (search.verify: LogME)


def log_features(probs: np.ndarray) -> np.ndarray:
    """A model's probabilities as the features a linear head is fitted on (clipped log-probabilities)."""
    return np.log(np.clip(probs, 1e-6, 1.0))


def linear_head():
    """StandardScaler + LogisticRegression: standardised, because raw log-probabilities are badly scaled and made
    L-BFGS take 100x longer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def probe_accuracy(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, repeats: int = 3, seed: int = 0) -> float:
    """Mean k-fold accuracy of StandardScaler + LogisticRegression (k = the smallest class size, at most `folds`),
    averaged over `repeats` shuffles: few-shot folds are noisy, and refitting costs no forward pass (on the
    meta-training tasks, 3 repeats closed 0.23 of the regret gap against 0.17 for one)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    smallest = int(np.bincount(labels).min())
    if smallest < 2:
        raise ValueError("every class needs at least two samples to measure a model on the task")
    clf = linear_head()
    scores = [cross_val_score(clf, features, labels,
                              cv=StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed + r)).mean()
              for r in range(repeats)]
    return float(np.mean(scores))


def measure(folder: Path, task: Task, evidence: Callable[[np.ndarray, np.ndarray], float] | None = None, *,
            timeout_s: float = 120.0) -> Measured:
    """Run the model in `folder` on the task's samples and score it (the probe's accuracy, and `evidence` of its
    log-probabilities against the labels when given); a failing model is reported, not raised."""
    t0 = time.perf_counter()
    try:
        model = load_model(folder)
        inputs = resize(list(task.samples), model.card.input_shape) if task.modality == "image" else list(task.samples)
        probs = checked_predict(model, inputs, timeout_s=timeout_s)
        features = log_features(probs)
        accuracy = probe_accuracy(features, task.labels)
        found = None if evidence is None else float(evidence(features, task.labels))
    except Exception as exc:  # a model that fails verification is reported next to the others  # noqa: BLE001
        return Measured(None, time.perf_counter() - t0, len(task), f"{type(exc).__name__}: {exc}")
    return Measured(accuracy, time.perf_counter() - t0, len(task), evidence=found)
