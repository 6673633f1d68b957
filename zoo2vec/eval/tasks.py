"""Benchmark tasks: a dataset, a class subset, k shots per class for the query, a disjoint test split.

Three splits, named in the bench config:
  held_out    datasets the zoo has models for but nothing the method learns was trained on; every headline
              result is reported on them.
  new_domain  datasets from domains the zoo has no model for and the method never saw (natural photos,
              headlines, newswire, finance, political claims, comment and e-mail spam, newsgroups): what a new
              domain costs. (bench-2 moved traffic signs to meta-training, so that CV sees colour images.)
  meta        the remaining datasets, the only ones the method may learn from; besides plain tasks they give
              transformed ones (rotated, inverted, noisy or cropped images; lower-cased, truncated or
              word-dropped texts) so the scorer sees inputs unlike its training data.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from zoo2vec.data.shared import SHARED
from zoo2vec.data.task import Task
from zoo2vec.errors import ConfigError
from zoo2vec.eval.bench_zoo import DATASETS, bench_data

SPLITS = ("meta", "held_out", "new_domain")
TRANSFORMS = {"image": ("rotate", "invert", "noise", "crop"), "text": ("lower", "truncate", "drop-words")}


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    dataset: str
    modality: str
    classes: tuple[str, ...]
    shots: int
    test_per_class: int
    seed: int
    split: str = "meta"  # one of SPLITS
    transform: str = ""  # meta tasks only: one of TRANSFORMS[modality], applied to query and test samples alike

    @property
    def held_out(self) -> bool:
        return self.split == "held_out"

    @property
    def meta(self) -> bool:
        return self.split == "meta"

    def to_dict(self) -> dict:
        return asdict(self)

    def sample_key(self) -> str:
        """What the task's samples (and so its ground truth) depend on; not its id or split."""
        return json.dumps([self.dataset, list(self.classes), self.shots, self.test_per_class, self.seed, self.transform])


def load_config(name: str) -> dict:
    path = resources.files(__package__).joinpath("configs").joinpath(f"{name}.json")
    if not path.is_file():
        raise ConfigError(f"unknown bench config {name!r}. Available: bench, quick")
    config = json.loads(path.read_text())
    config.setdefault("new_domain", {})
    unknown = sorted(held_out_datasets(config) - set(DATASETS))
    if unknown:
        raise ConfigError(f"bench config {name!r} holds out unknown datasets {unknown}")
    unknown = sorted(new_domain_datasets(config) - set(SHARED))
    if unknown:
        raise ConfigError(f"bench config {name!r} names unknown new-domain datasets {unknown}")
    return config


def held_out_datasets(config: dict) -> set[str]:
    return {d for ds in config["held_out"].values() for d in ds}


def new_domain_datasets(config: dict) -> set[str]:
    return {d for ds in config.get("new_domain", {}).values() for d in ds}


def meta_training_datasets(config: dict, available: set[str] | None = None) -> list[str]:
    """Datasets the method may learn from: every dataset with models in the zoo, minus the held-out ones."""
    pool = set(DATASETS) if available is None else available
    return sorted(pool - held_out_datasets(config) - new_domain_datasets(config))


def modality_of(dataset: str) -> str:
    return DATASETS[dataset] if dataset in DATASETS else SHARED[dataset][0]


def generate(config: dict, datasets: set[str] | None = None) -> list[TaskSpec]:
    """All task specs of a config, deterministic. `datasets` limits the held-out and meta ones to the zoo's datasets."""
    t = config["tasks"]
    held, new = held_out_datasets(config), new_domain_datasets(config)
    meta = set(meta_training_datasets(config, datasets))
    specs = []
    seeds = config.get("task_seeds", config["name"])  # a renamed config may keep its tasks (and their ground truth)
    for dataset in sorted(held | new | meta):
        split = "held_out" if dataset in held else "new_domain" if dataset in new else "meta"
        n = t.get(f"{split}_per_dataset", t["held_out_per_dataset"])
        specs.extend(_draw(config, dataset, split, f"{dataset}/{i}", f"{seeds}/{dataset}/{i}") for i in range(n))
        if split == "meta":
            kinds = TRANSFORMS[modality_of(dataset)]
            for i in range(t.get("transformed_per_dataset", 0)):
                kind = kinds[zlib.crc32(f"{dataset}/{i}".encode()) % len(kinds)]
                specs.append(_draw(config, dataset, split, f"{dataset}/{kind}-{i}", f"{seeds}/{dataset}/t{i}", kind))
    return specs


def _draw(config: dict, dataset: str, split: str, task_id: str, key: str, transform: str = "") -> TaskSpec:
    """One task of a dataset: a class subset, a shot count and a test size drawn with a seed from `key`."""
    t = config["tasks"]
    data = bench_data(dataset, "tasks")
    counts = np.bincount(data.y, minlength=len(data.label_names))
    seed = zlib.crc32(key.encode()) % 100_000
    rng = np.random.default_rng(seed)
    shots = int(rng.choice(t["shots"]))
    usable = np.flatnonzero(counts >= shots + 2)
    if len(usable) < 2:
        shots = int(max(1, counts.min() // 2))
        usable = np.flatnonzero(counts >= shots + 2)
    n_classes = int(rng.integers(2, min(len(usable), t["max_classes"]) + 1))
    chosen = np.sort(rng.choice(usable, size=n_classes, replace=False))
    test = int(min(t["test_per_class"], counts[chosen].min() - shots))
    return TaskSpec(task_id, dataset, modality_of(dataset), tuple(data.label_names[c] for c in chosen), shots, test,
                    seed, split, transform)


def materialize(spec: TaskSpec) -> tuple[Task, Task]:
    """The query task (spec.shots per class) and its disjoint test split (spec.test_per_class per class)."""
    data = bench_data(spec.dataset, "tasks")
    rng = np.random.default_rng(spec.seed + 1)
    query, test = [], []
    for name in spec.classes:
        idx = rng.permutation(np.flatnonzero(data.y == data.label_names.index(name)))
        query.extend(idx[: spec.shots])
        test.extend(idx[spec.shots : spec.shots + spec.test_per_class])

    def task(idx, part: int):
        idx = np.asarray(idx)
        samples = list(data.x[idx]) if isinstance(data.x, np.ndarray) else [data.x[i] for i in idx]
        if spec.transform:
            samples = transformed(samples, spec.transform, np.random.default_rng([spec.seed, part]))
        return Task.from_arrays(samples, [data.label_names[i] for i in data.y[idx]])

    return task(query, 0), task(test, 1)


def transformed(samples: list, kind: str, rng: np.random.Generator) -> list:
    """Samples changed the way a new domain differs from the training data (TRANSFORMS)."""
    if kind == "rotate":
        return [np.rot90(x, k=int(rng.integers(1, 4)), axes=(-2, -1)).copy() for x in samples]
    if kind == "invert":
        return [1.0 - x for x in samples]
    if kind == "noise":
        return [np.clip(x + rng.normal(0.0, 0.25, x.shape), 0.0, 1.0).astype(np.float32) for x in samples]
    if kind == "crop":  # the central 60%, blown back up to the full size
        from zoo2vec.data.images import resize

        out = []
        for x in samples:
            h, w = x.shape[-2:]
            dh, dw = int(h * 0.2), int(w * 0.2)
            out.append(resize([x[..., dh:h - dh, dw:w - dw]], x.shape)[0])
        return out
    if kind == "lower":
        return [s.lower() for s in samples]
    if kind == "truncate":
        return [" ".join(s.split()[:8]) for s in samples]
    if kind == "drop-words":
        return [" ".join(w for w in s.split() if rng.random() > 0.3) or s for s in samples]
    raise ConfigError(f"unknown task transform {kind!r}. Available: {TRANSFORMS}")
