"""Zoo recipes: train real models from a declarative list, into model folders, resumably.

A Recipe says what one model is (data, label mapping, architecture, budget, card); build_model trains one
into a model folder; build_zoo runs a list of builders, keeping each finished folder (stamped with the recipe
version) and building each new one beside its final place before a rename, so an interrupted build leaves no
half model. The demo zoo (train.demo_zoo) and the bench zoo (eval.bench_zoo) are lists of recipes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo2vec.data.datasets import LabelledData
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.layout import ZooLayout


@dataclass(frozen=True)
class Recipe:
    """One demo model: data, label mapping, architecture and budget; the card text says the same."""

    name: str
    dataset: str
    arch: str
    description: str
    groups: dict[str, tuple[str, ...]] | None = None  # new label -> source labels; None keeps them all
    config: dict = field(default_factory=dict)
    epochs: int = 3
    n_train: int | None = None  # None: the whole train part
    label_noise: float = 0.0
    seed: int = 0
    tags: tuple[str, ...] = ()
    license: str = "mit"
    publish_labels: bool = True
    publish_training_data: bool = True
    card_style: str = "complete"  # complete | terse | no-labels | misleading: what a benchmark may ask about


def one_each(*labels):
    """groups= value that keeps the named labels, each as its own class."""
    return {lab: (lab,) for lab in labels}


def _relabel(data: LabelledData, recipe: Recipe) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Indices kept, new labels, new label names, following recipe.groups."""
    if recipe.groups is None:
        return np.arange(len(data)), data.y, data.label_names
    names = tuple(recipe.groups)
    lookup = {data.label_names.index(src): new for new, name in enumerate(names) for src in recipe.groups[name]}
    keep = np.flatnonzero(np.isin(data.y, list(lookup)))
    return keep, np.asarray([lookup[int(c)] for c in data.y[keep]], dtype=np.int64), names


def train_classifier(module, x, y, *, epochs: int, seed: int, lr: float = 3e-3, batch_size: int = 64):
    """Plain Adam + cross-entropy; x is a float tensor or a list of texts."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    yt = torch.as_tensor(y)
    module.train()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            xb = x[torch.as_tensor(idx)] if isinstance(x, torch.Tensor) else [x[i] for i in idx]
            loss = torch.nn.functional.cross_entropy(module(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return module.eval()


def build_model(recipe: Recipe, folder: Path, data: LabelledData, *, source: str):
    """Train one recipe on `data` (its training part) and write the model folder."""
    import torch

    from zoo2vec.zoo import architectures
    from zoo2vec.zoo.adapters.safetensors import save_model

    rng = np.random.default_rng(recipe.seed + 17)
    keep, y, names = _relabel(data, recipe)
    if recipe.n_train is not None:
        keep_pos = rng.permutation(len(keep))[: recipe.n_train]
        keep, y = keep[keep_pos], y[keep_pos]
    if recipe.label_noise:
        flip = rng.random(len(y)) < recipe.label_noise
        y = np.where(flip, rng.integers(0, len(names), len(y)), y)
    config = dict(recipe.config, n_classes=len(names))
    if recipe.arch == "head":
        from zoo2vec.zoo.sentence import sentence_encoder

        x = torch.from_numpy(sentence_encoder().encode([data.x[i] for i in keep]))
        config["in_dim"] = x.shape[1]
    elif recipe.arch in ("bag_of_words", "tfidf_linear"):
        x = [data.x[i] for i in keep]
    else:
        x = torch.from_numpy(data.x[keep])
        config["input_shape"] = list(data.x.shape[1:])
    torch.manual_seed(recipe.seed)  # initial weights too, not only the training order
    module = architectures.build(recipe.arch, config)
    if recipe.arch == "tfidf_linear":
        module.fit_idf(x)
    train_classifier(module, x, y, epochs=recipe.epochs, seed=recipe.seed)
    image = isinstance(data.x, np.ndarray)
    card = ModelCard(
        name=recipe.name,
        modality="image" if image else "text",
        label_names=names if recipe.publish_labels else None,
        training_data=f"{data.source}: {len(y)} training samples" if recipe.publish_training_data else "",
        params=architectures.count_params(module),
        license=recipe.license,
        source=source,
        tags=recipe.tags,
        description=recipe.description,
        input_shape=tuple(data.x.shape[1:]) if image else None,
    )
    if recipe.arch == "head":
        config["encoder"] = "all-MiniLM-L6-v2"
    save_model(folder, module, card, arch=recipe.arch, config=config)


def build_zoo(root: Path, jobs: list[tuple[str, Callable[[Path], None]]], *, version: str,
              progress: Callable[[str], None] | None = None, into: Path | None = None) -> Path:
    """Run each (name, builder(folder)) into the zoo's model folder of that name (or `into`/<name>: any folder of
    model folders), skipping folders already built by `version`."""
    models = Path(into) if into is not None else ZooLayout(root).models
    models.mkdir(parents=True, exist_ok=True)
    for name, builder in jobs:
        folder = models / name
        stamp = folder / ".recipe"
        if not (stamp.exists() and stamp.read_text() == version):
            tmp = models / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            builder(tmp)
            (tmp / ".recipe").write_text(version)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        if progress:
            progress(name)
    return Path(root)
