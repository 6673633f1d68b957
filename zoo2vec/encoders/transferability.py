"""Exhaustive transferability scores: each needs the model run on the user's labelled samples.

Inputs are the model's black-box outputs on the query samples (probabilities, n x z) and the task
labels (n,). Implemented from the papers' formulas:
  LogME  You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning"
  LEEP   Nguyen et al. 2020, "LEEP: A New Measure to Evaluate Transferability of Learned Representations"
  NCE    Tran et al. 2019, "Transferability and Hardness of Supervised Classification Tasks"
  k-NN   leave-one-out k-nearest-neighbour accuracy on the outputs
"""

from __future__ import annotations

import numpy as np


def _labels(y) -> tuple[np.ndarray, int]:
    y = np.asarray(y)
    classes, y = np.unique(y, return_inverse=True)
    return y, len(classes)


def logme(features, y, *, max_iter: int = 100, tol: float = 1e-4) -> float:
    """Mean over classes (one-vs-rest targets) of the maximised log evidence per sample."""
    f = np.asarray(features, dtype=np.float64)
    y, n_classes = _labels(y)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    r = int((s > 1e-10 * max(s.max(initial=0), 1e-300)).sum())
    u, sigma = u[:, :r], sigma[:r]
    evidences = []
    for k in range(n_classes):
        t = (y == k).astype(np.float64)
        x2 = (u.T @ t) ** 2
        outside = max(float(t @ t - x2.sum()), 0.0)  # part of t outside the span of the features
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            denom = alpha + beta * sigma
            gamma = float((beta * sigma / denom).sum())
            m2 = float((beta**2 * sigma * x2 / denom**2).sum())
            res2 = float((alpha**2 * x2 / denom**2).sum()) + outside
            new_alpha, new_beta = gamma / max(m2, 1e-12), (n - gamma) / max(res2, 1e-12)
            done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
            alpha, beta = new_alpha, new_beta
            if done:
                break
        evidences.append(log_evidence(alpha, beta, sigma, x2, outside, n, d) / n)
    return float(np.mean(evidences))


def log_evidence(alpha, beta, sigma, x2, outside, n, d) -> float:
    """log p(t | F, alpha, beta) of Bayesian linear regression, in the SVD terms of LogME."""
    denom = alpha + beta * sigma
    m2 = float((beta**2 * sigma * x2 / denom**2).sum())
    res2 = float((alpha**2 * x2 / denom**2).sum()) + outside
    log_det = float(np.log(denom).sum()) + (d - len(sigma)) * np.log(alpha)
    return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * res2 - alpha / 2 * m2 - log_det / 2)


def leep(probs, y) -> float:
    theta = np.asarray(probs, dtype=np.float64)
    y, n_classes = _labels(y)
    joint = np.stack([theta[y == k].sum(axis=0) for k in range(n_classes)]) / len(y)  # P(y, z)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-300)  # P(y | z)
    return float(np.mean(np.log(np.maximum((theta * conditional[y]).sum(axis=1), 1e-300))))


def nce(probs, y) -> float:
    """Negative conditional entropy -H(Y | Z) with Z the model's hard predictions."""
    z = np.asarray(probs).argmax(axis=1)
    y, _ = _labels(y)
    n = len(y)
    total = 0.0
    for zv in np.unique(z):
        in_z = y[z == zv]
        p_yz = np.bincount(in_z) / n
        p_z = len(in_z) / n
        nz = p_yz[p_yz > 0]
        total += float((nz * np.log(nz / p_z)).sum())
    return total


def leep_nce_side_by_side(theta, sizes, y) -> tuple[np.ndarray, np.ndarray]:
    """LEEP and NCE of many models at once (what leep() and nce() give each): theta (n, sum of sizes) holds their
    outputs on the same samples side by side, model m in the sizes[m] columns after those of the models before it."""
    theta = np.asarray(theta, dtype=np.float64)
    y, n_classes = _labels(y)
    n = len(y)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    onehot = np.eye(n_classes)[y]
    joint = onehot.T @ theta / n  # P(y, z), every model's z side by side
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-300)
    expected = np.add.reduceat(theta * conditional[y], starts, axis=1)  # (n, models)
    leeps = np.log(np.maximum(expected, 1e-300)).mean(axis=0)
    # NCE: each model's hard prediction, as a column of theta, against the labels
    z = np.stack([theta[:, a:a + size].argmax(axis=1) + a for a, size in zip(starts.tolist(), sizes)])
    p_zy = np.bincount((z * n_classes + y).ravel(), minlength=theta.shape[1] * n_classes).reshape(-1, n_classes)
    p_zy = p_zy / n
    p_z = p_zy.sum(axis=1, keepdims=True)
    terms = np.where(p_zy > 0, p_zy * np.log(np.where(p_zy > 0, p_zy, 1.0) / np.maximum(p_z, 1e-300)), 0.0)
    return leeps, np.add.reduceat(terms.sum(axis=1), starts)


def knn_accuracy(features, y, *, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy (Euclidean; ties broken toward the nearer neighbour's class)."""
    f = np.asarray(features, dtype=np.float64)
    y, _ = _labels(y)
    n = len(y)
    k = max(1, min(k, n - 1))
    d2 = ((f[:, None, :] - f[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    neighbours = np.argsort(d2, axis=1, kind="stable")[:, :k]
    correct = 0
    for i in range(n):
        votes = np.bincount(y[neighbours[i]], minlength=y.max() + 1)
        top = np.flatnonzero(votes == votes.max())
        pred = top[0] if len(top) == 1 else next(y[j] for j in neighbours[i] if y[j] in top)
        correct += int(pred == y[i])
    return correct / n


SCORES = {"logme": logme, "leep": leep, "nce": nce, "knn": knn_accuracy}
