"""Metrics and transferability scores on cases whose values follow by hand from their formulas."""

import numpy as np
import pytest
from scipy.stats import weightedtau

from zoo2vec.encoders import transferability as tr
from zoo2vec.eval import metrics


def test_ranking_metrics_by_hand():
    truth = np.array([0.9, 0.5, 0.7, 0.1])
    pred = np.array([0.2, 0.8, 0.6, 0.1])  # ranks model 1 first, the truly best (0) third
    assert metrics.top_k_hit(truth, pred, 1) == 0 and metrics.top_k_hit(truth, pred, 3) == 1
    assert metrics.regret_at_1(truth, pred) == pytest.approx(0.4)
    dcg = 0.5 / np.log2(2) + 0.7 / np.log2(3) + 0.9 / np.log2(4) + 0.1 / np.log2(5)
    idcg = 0.9 / np.log2(2) + 0.7 / np.log2(3) + 0.5 / np.log2(4) + 0.1 / np.log2(5)
    assert metrics.ndcg_at_k(truth, pred, 5) == pytest.approx(dcg / idcg)
    assert metrics.weighted_tau(truth, truth) == pytest.approx(1.0)
    assert metrics.weighted_tau(truth, -truth) == pytest.approx(-1.0)
    assert metrics.weighted_tau(truth, pred) == pytest.approx(weightedtau(truth, pred).statistic)
    assert metrics.weighted_tau(truth, pred, rank=None) == pytest.approx(weightedtau(truth, pred, rank=None).statistic)
    assert metrics.pearson(truth, 2 * truth + 1) == pytest.approx(1.0)
    # ties at the top: any truly best model counts as a hit
    assert metrics.top_k_hit(np.array([1.0, 1.0, 0.2]), np.array([0.1, 0.9, 0.5]), 1) == 1


def test_bootstrap_interval_contains_the_mean():
    lo, hi = metrics.bootstrap_ci([0.1, 0.2, 0.3, 0.4])
    assert lo < 0.25 < hi and lo >= 0.1 and hi <= 0.4
    assert metrics.bootstrap_ci([0.5, 0.5]) == (0.5, 0.5)


def test_leep_and_nce_by_hand():
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    assert tr.leep(perfect, y) == pytest.approx(0.0)  # P(y|z) is one-hot: log 1
    assert tr.nce(perfect, y) == pytest.approx(0.0)  # Y is a function of Z
    uniform = np.full((4, 2), 0.5)
    assert tr.leep(uniform, y) == pytest.approx(np.log(0.5))  # P(y|z) = class prior
    assert tr.nce(uniform, y) == pytest.approx(np.log(0.5))  # Z constant: -H(Y) for a fair coin
    # z0 holds labels (0, 0, 1), z1 holds (1): -H(Y|Z) = 3/4 * (2/3 ln 2/3 + 1/3 ln 1/3)
    mixed = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=float)
    assert tr.nce(mixed, y) == pytest.approx(0.75 * (2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)))


def test_leep_and_nce_side_by_side_equal_each_model_alone():
    """Many models' outputs side by side (different class counts, a one-class model, ties in a hard prediction)
    give each model what leep() and nce() give it alone."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 40)
    blocks = [rng.dirichlet(np.ones(c), 40) for c in (2, 5, 1, 7)] + [np.full((40, 4), 0.25)]
    leeps, nces = tr.leep_nce_side_by_side(np.hstack(blocks), [b.shape[1] for b in blocks], y)
    np.testing.assert_allclose(leeps, [tr.leep(b, y) for b in blocks], rtol=1e-10)
    np.testing.assert_allclose(nces, [tr.nce(b, y) for b in blocks], rtol=1e-10, atol=1e-12)
    # the informative models differ (a swap of columns would show); the one-class and the uniform model both score
    # the prior
    assert len(set(np.round(leeps[[0, 1, 3]], 6))) == 3 and leeps[2] == pytest.approx(leeps[4])


def test_knn_by_hand():
    f = np.array([[0.0], [0.1], [1.0], [1.1], [0.05]])
    y = np.array([0, 0, 1, 1, 1])
    # 1-NN leave-one-out: 0->4 (1, wrong), 1->4 (wrong), 2->3 (right), 3->2 (right), 4->0 or 1 (0, wrong)
    assert tr.knn_accuracy(f, y, k=1) == pytest.approx(2 / 5)


def _evidence_direct(f, t, alpha, beta):
    """The LogME evidence in plain matrix form (no SVD): the formula of the paper, term by term."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ t)
    return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((f @ m - t) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2)


def test_logme_maximises_the_evidence():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(30, 4))
    y = (f[:, 0] + 0.3 * rng.normal(size=30) > 0).astype(int)
    grid = np.logspace(-3, 3, 121)
    best = [max(_evidence_direct(f, (y == k).astype(float), a, b) for a in grid for b in grid) / 30 for k in (0, 1)]
    value = tr.logme(f, y)
    assert value == pytest.approx(np.mean(best), abs=2e-3)
    assert value >= np.mean(best) - 1e-6  # the fixed point is at least as good as the grid
    # more informative features give more evidence
    assert tr.logme(np.c_[f, y], y) > value


def test_logme_with_more_dims_than_samples():
    rng = np.random.default_rng(1)
    f = rng.random((6, 10))
    y = np.array([0, 1, 0, 1, 0, 1])
    assert np.isfinite(tr.logme(f, y))


def test_verify_replayed_from_the_ground_truth_by_hand():
    import pandas as pd

    from zoo2vec.eval.run import verify_curve

    gt = pd.DataFrame({"task_id": "t", "model": ["a", "b", "c", "d"], "accuracy": [0.5, 0.9, 0.7, 0.6],
                       "logme": [1.0, 3.0, 2.0, 0.0], "forward_s": [0.1, 0.2, 0.3, 0.4], "logme_s": 0.01})
    ranking = {"t": ["a", "c", "b", "d"]}  # the predicted order: the truly best model (b) third
    curve = verify_curve(ranking, gt, (0, 1, 2, 3))
    assert curve["0"]["regret1"] == curve["1"]["regret1"] == pytest.approx(0.4)  # one model: nothing to re-order
    assert curve["2"]["regret1"] == pytest.approx(0.2)  # a, c by LogME: c first
    assert curve["3"]["regret1"] == 0.0 and curve["3"]["top3"] == 1.0  # b's LogME is the highest of the three
    assert curve["2"]["seconds"] == pytest.approx(0.1 + 0.3 + 0.02) and curve["0"]["seconds"] == 0.0
    # mixed half and half with predicted scores that rank the three the other way round: the z-scores cancel and the
    # predicted order stays (a stable sort)
    mixed = verify_curve(ranking, gt, (3,), weight=0.5, scores={"t": {"a": 3.0, "c": 2.0, "b": 1.0, "d": 0.0}})
    assert mixed["3"]["regret1"] == pytest.approx(0.4)
