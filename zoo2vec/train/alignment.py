"""Fitting a scorer (encoders.alignment.Alignment): the alignment (`zoo2vec train-align`) and the words scorer
(`zoo2vec train-words`) alike, from groups of pair features and the accuracies measured for them.

The loss is listwise (ListNet: the measured accuracies' softmax against the scores') plus a contrastive term
(the truly best model(s) of a group against the rest); the fitted scores are then shifted onto the accuracy
scale, so a scorer's output reads as a predicted accuracy. Regularisation: `l2` (weight decay on the standardised
features' weights; 1e-3 by default, larger values pull the scorer towards scoring every model alike), `epochs`
(fewer stop earlier) and `hidden` (0: linear). `blended` mixes a fitted scorer with the untrained score.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from zoo2vec.encoders.alignment import DEFAULT, FEATURES, TEMPERATURE, UNTRAINED_FEATURES, Alignment
from zoo2vec.errors import ConfigError


def fit(groups: list[tuple[np.ndarray, np.ndarray]], *, features: tuple[str, ...] = FEATURES, hidden: int = 0,
        epochs: int = 400, l2: float = 1e-3, contrastive: float = 0.5, seed: int = 0, version: str = DEFAULT,
        trained_on: dict | None = None) -> Alignment:
    """Train a scorer on groups of (features (n, len(features)), measured accuracy (n,)), one group per task.

    The groups are padded into one (groups, models, features) batch (padding masked out of both softmaxes), so an
    epoch is one forward and backward pass: the loss is the per-group mean of the listwise and contrastive terms."""
    import torch

    if not groups:
        raise ConfigError("no meta-training tasks to learn the alignment from")
    torch.manual_seed(seed)
    all_x = np.concatenate([x for x, _ in groups])
    mean, scale = all_x.mean(axis=0), np.maximum(all_x.std(axis=0), 1e-6)
    f, width = len(features), max(len(y) for _, y in groups)
    xs = np.zeros((len(groups), width, f), dtype=np.float32)
    ys = np.zeros((len(groups), width), dtype=np.float32)
    valid = np.zeros((len(groups), width), dtype=bool)
    for i, (x, y) in enumerate(groups):
        xs[i, : len(y)], ys[i, : len(y)], valid[i, : len(y)] = (x - mean) / scale, y, True
    xs, ys, valid = torch.tensor(xs), torch.tensor(ys), torch.tensor(valid)
    target = torch.softmax((ys / TEMPERATURE).masked_fill(~valid, float("-inf")), dim=1)
    top = ys.masked_fill(~valid, float("-inf")).max(dim=1, keepdim=True).values
    best = ((ys == top) & valid).float()
    best = best / best.sum(dim=1, keepdim=True)  # InfoNCE: the truly best model(s) against the rest
    net = (torch.nn.Sequential(torch.nn.Linear(f, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
           if hidden else torch.nn.Linear(f, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=l2)
    for _ in range(epochs):
        opt.zero_grad()
        s = net(xs)[..., 0].masked_fill(~valid, float("-inf"))
        log_p = torch.log_softmax(s, dim=1).masked_fill(~valid, 0.0)
        listwise = -(target * log_p).sum(dim=1)
        loss = (listwise - contrastive * (best * log_p).sum(dim=1)).mean()
        loss.backward()
        opt.step()
    modules = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    layers = tuple((m.weight.detach().numpy().T.astype(np.float64), m.bias.detach().numpy().astype(np.float64)) for m in modules)
    raw = Alignment(version=version, features=tuple(features), mean=mean, scale=scale, layers=layers)
    # place the scores on the accuracy scale: the offset that makes their mean error zero
    pred = np.concatenate([raw.score_matrix(x) for x, _ in groups])
    offset = float(np.mean(np.concatenate([y for _, y in groups]) - pred))
    return Alignment(version=version, features=tuple(features), mean=mean, scale=scale, layers=layers, offset=offset,
                     trained_on=trained_on or {})


def blended(scorer: Alignment, weight: float, *, version: str | None = None) -> Alignment:
    """The scorer mixed with the untrained score: both z-normalised over the models scored together, then
    (1 - weight) * learned + weight * untrained (Alignment.blend). A scorer whose features lack the untrained score's
    (kernel alignment, concept match) gets them as inputs its layers give no weight, so the checkpoint serves as is."""
    if scorer.untrained:
        raise ConfigError("only a trained scorer can be blended with the untrained score")
    missing = [f for f in UNTRAINED_FEATURES if f not in scorer.features]
    (w, b), *rest = scorer.layers
    if missing:
        scorer = dataclasses.replace(
            scorer, features=scorer.features + tuple(missing), mean=np.concatenate([scorer.mean, np.zeros(len(missing))]),
            scale=np.concatenate([scorer.scale, np.ones(len(missing))]),
            layers=((np.vstack([w, np.zeros((len(missing), w.shape[1]))]), b), *rest))
    return dataclasses.replace(scorer, blend=float(weight), version=version or scorer.version)
