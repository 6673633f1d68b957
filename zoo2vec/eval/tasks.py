"""Benchmark tasks: a dataset, a class subset, k shots per class for the query, a disjoint test split.

Held-out datasets (named in the bench config) give the tasks every result is reported on; they are
never used to train anything the method learns. Meta-training tasks come only from the other datasets.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from zoo2vec.data.task import Task
from zoo2vec.errors import ConfigError
from zoo2vec.eval.bench_zoo import DATASETS, bench_data


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    dataset: str
    modality: str
    classes: tuple[str, ...]
    shots: int
    test_per_class: int
    seed: int
    held_out: bool

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(name: str) -> dict:
    path = resources.files(__package__).joinpath("configs").joinpath(f"{name}.json")
    if not path.is_file():
        raise ConfigError(f"unknown bench config {name!r}. Available: bench, quick")
    config = json.loads(path.read_text())
    held = {d for ds in config["held_out"].values() for d in ds}
    unknown = sorted(held - set(DATASETS))
    if unknown:
        raise ConfigError(f"bench config {name!r} holds out unknown datasets {unknown}")
    return config


def held_out_datasets(config: dict) -> set[str]:
    return {d for ds in config["held_out"].values() for d in ds}


def meta_training_datasets(config: dict, available: set[str] | None = None) -> list[str]:
    """Datasets the method may learn from: every dataset with models in the zoo, minus the held-out ones."""
    pool = set(DATASETS) if available is None else available
    return sorted(pool - held_out_datasets(config))


def generate(config: dict, datasets: set[str] | None = None) -> list[TaskSpec]:
    """All task specs of a config, deterministic. `datasets` limits them to the zoo's datasets."""
    t = config["tasks"]
    held = held_out_datasets(config)
    pool = sorted(held | set(meta_training_datasets(config, datasets)))
    specs = []
    for dataset in pool:
        is_held = dataset in held
        data = bench_data(dataset, "tasks")
        counts = np.bincount(data.y, minlength=len(data.label_names))
        for i in range(t["held_out_per_dataset"] if is_held else t["meta_per_dataset"]):
            seed = zlib.crc32(f"{config['name']}/{dataset}/{i}".encode()) % 100_000
            rng = np.random.default_rng(seed)
            shots = int(rng.choice(t["shots"]))
            usable = np.flatnonzero(counts >= shots + 2)
            if len(usable) < 2:
                shots = int(max(1, counts.min() // 2))
                usable = np.flatnonzero(counts >= shots + 2)
            n_classes = int(rng.integers(2, min(len(usable), t["max_classes"]) + 1))
            chosen = np.sort(rng.choice(usable, size=n_classes, replace=False))
            test = int(min(t["test_per_class"], counts[chosen].min() - shots))
            specs.append(TaskSpec(f"{dataset}/{i}", dataset, DATASETS[dataset],
                                  tuple(data.label_names[c] for c in chosen), shots, test, seed, is_held))
    return specs


def materialize(spec: TaskSpec) -> tuple[Task, Task]:
    """The query task (spec.shots per class) and its disjoint test split (spec.test_per_class per class)."""
    data = bench_data(spec.dataset, "tasks")
    rng = np.random.default_rng(spec.seed + 1)
    query, test = [], []
    for name in spec.classes:
        idx = rng.permutation(np.flatnonzero(data.y == data.label_names.index(name)))
        query.extend(idx[: spec.shots])
        test.extend(idx[spec.shots : spec.shots + spec.test_per_class])

    def task(idx):
        idx = np.asarray(idx)
        samples = list(data.x[idx]) if isinstance(data.x, np.ndarray) else [data.x[i] for i in idx]
        return Task.from_arrays(samples, [data.label_names[i] for i in data.y[idx]])

    return task(query), task(test)
