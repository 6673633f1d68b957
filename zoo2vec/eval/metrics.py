"""Ranking metrics for one task: predicted scores vs measured ground truth (higher is better in both)."""

from __future__ import annotations

import numpy as np


def _ok(truth, pred):
    truth = np.asarray(truth, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if truth.shape != pred.shape or truth.ndim != 1 or len(truth) < 2:
        raise ValueError(f"need two 1-d score vectors of one length >= 2, got {truth.shape} and {pred.shape}")
    return truth, pred


def weighted_tau(truth, pred, *, rank=True) -> float:
    """scipy's weightedtau: rank=True (scipy's default) weighs by both orders; rank=None (Model Spider) by
    the decreasing lexicographic order of the pair (truth, pred)."""
    from scipy.stats import weightedtau

    truth, pred = _ok(truth, pred)
    value = weightedtau(truth, pred, rank=rank).statistic
    return float(value) if np.isfinite(value) else 0.0


def pearson(truth, pred) -> float:
    truth, pred = _ok(truth, pred)
    if truth.std() == 0 or pred.std() == 0:
        return 0.0
    return float(np.corrcoef(truth, pred)[0, 1])


def _order(pred) -> np.ndarray:
    return np.argsort(-pred, kind="stable")


def top_k_hit(truth, pred, k: int) -> float:
    """1 if a truly best model (ties included) is among the first k predicted, else 0."""
    truth, pred = _ok(truth, pred)
    best = set(np.flatnonzero(truth >= truth.max() - 1e-12).tolist())
    return float(bool(best & set(_order(pred)[:k].tolist())))


def ndcg_at_k(truth, pred, k: int = 5) -> float:
    """NDCG@k with the ground-truth score as the gain."""
    truth, pred = _ok(truth, pred)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((truth[_order(pred)[:k]] * discounts[: min(k, len(truth))]).sum())
    ideal = float((np.sort(truth)[::-1][:k] * discounts[: min(k, len(truth))]).sum())
    return dcg / ideal if ideal > 0 else 0.0


def regret_at_1(truth, pred) -> float:
    truth, pred = _ok(truth, pred)
    return float(truth.max() - truth[_order(pred)[0]])


def all_metrics(truth, pred) -> dict[str, float]:
    return {
        "weighted_tau": weighted_tau(truth, pred),
        "weighted_tau_rank_none": weighted_tau(truth, pred, rank=None),
        "pearson": pearson(truth, pred),
        "top1": top_k_hit(truth, pred, 1),
        "top3": top_k_hit(truth, pred, 3),
        "ndcg5": ndcg_at_k(truth, pred, 5),
        "regret1": regret_at_1(truth, pred),
    }


def bootstrap_ci(values, *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the mean over tasks."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
