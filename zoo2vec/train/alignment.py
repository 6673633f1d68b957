"""Fitting a scorer (encoders.alignment.Alignment): the alignment (`zoo2vec train-align`) and the words scorer
(`zoo2vec train-words`) alike, from groups of pair features and the accuracies measured for them.

The loss is listwise (ListNet: the measured accuracies' softmax against the scores') plus a contrastive term
(the truly best model(s) of a group against the rest); the fitted scores are then shifted onto the accuracy
scale, so a scorer's output reads as a predicted accuracy.
"""

from __future__ import annotations

import numpy as np

from zoo2vec.encoders.alignment import DEFAULT, FEATURES, TEMPERATURE, Alignment
from zoo2vec.errors import ConfigError


def fit(groups: list[tuple[np.ndarray, np.ndarray]], *, features: tuple[str, ...] = FEATURES, hidden: int = 0,
        epochs: int = 400, l2: float = 1e-3, contrastive: float = 0.5, seed: int = 0, version: str = DEFAULT,
        trained_on: dict | None = None) -> Alignment:
    """Train a scorer on groups of (features (n, len(features)), measured accuracy (n,)), one group per task."""
    import torch

    if not groups:
        raise ConfigError("no meta-training tasks to learn the alignment from")
    torch.manual_seed(seed)
    all_x = np.concatenate([x for x, _ in groups])
    mean, scale = all_x.mean(axis=0), np.maximum(all_x.std(axis=0), 1e-6)
    xs = [torch.tensor((x - mean) / scale, dtype=torch.float32) for x, _ in groups]
    ys = [torch.tensor(y, dtype=torch.float32) for _, y in groups]
    f = len(features)
    net = (torch.nn.Sequential(torch.nn.Linear(f, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
           if hidden else torch.nn.Linear(f, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=l2)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.zeros(())
        for x, y in zip(xs, ys):
            s = net(x)[:, 0]
            log_p = torch.log_softmax(s, dim=0)
            listwise = -(torch.softmax(y / TEMPERATURE, dim=0) * log_p).sum()
            best = -log_p[y == y.max()].mean()  # InfoNCE: the truly best model(s) against the rest
            loss = loss + listwise + contrastive * best
        (loss / len(xs)).backward()
        opt.step()
    modules = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    layers = tuple((m.weight.detach().numpy().T.astype(np.float64), m.bias.detach().numpy().astype(np.float64)) for m in modules)
    raw = Alignment(version=version, features=tuple(features), mean=mean, scale=scale, layers=layers)
    # place the scores on the accuracy scale: the offset that makes their mean error zero
    pred = np.concatenate([raw.score_matrix(x) for x, _ in groups])
    offset = float(np.mean(np.concatenate([y for _, y in groups]) - pred))
    return Alignment(version=version, features=tuple(features), mean=mean, scale=scale, layers=layers, offset=offset,
                     trained_on=trained_on or {})
