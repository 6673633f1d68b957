"""Probe sets: fixed, versioned inputs every model of a modality is run on once.

Each probe set is a JSON config under encoders/probe_sets/ (a name, a seed, the parts it draws).
Inputs come from the packaged datasets' "probe" parts (never the parts models train on) and
from transformations of them (rotated, shifted, mixed, inverted digits; sentences, mixed and
shuffled texts) and synthetic out-of-distribution inputs, so that decision boundaries show.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from zoo2vec.data.datasets import packaged
from zoo2vec.errors import ConfigError


@dataclass(frozen=True)
class ProbeSet:
    name: str
    modality: str
    inputs: np.ndarray | tuple[str, ...]  # images (N, C, H, W) in [0, 1], or texts
    sources: tuple[str, ...]  # which part each input came from
    reference_encoder: str

    def __len__(self) -> int:
        return len(self.sources)


def available() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("probe_sets").iterdir() if p.name.endswith(".json"))


def config(name: str) -> dict:
    """A probe set's config. One that names a "base" takes the base's parts, scaled to "size" inputs
    (each part in proportion), then its own "add" parts after them, and may override the base's other keys."""
    path = resources.files(__package__).joinpath("probe_sets").joinpath(f"{name}.json")
    if not path.is_file():
        raise ConfigError(f"unknown probe set {name!r}. Available: {', '.join(available())}")
    cfg = json.loads(path.read_text())
    if "base" not in cfg:
        return cfg
    base = config(cfg["base"])
    total = sum(part["n"] for part in base["parts"])
    scale = cfg.get("size", total) / total
    parts = [{**part, "n": max(1, round(part["n"] * scale))} for part in base["parts"]] + cfg.get("add", [])
    return {**base, **{k: v for k, v in cfg.items() if k not in ("base", "size", "add")}, "parts": parts}


def default_for(modality: str) -> str:
    # image: pixels + HOG + colour on grey and colour probes, chosen by leave-one-domain-out CV (bench/IMAGE_SPACE.md)
    return {"image": "image-v3-synth", "text": "text-v1"}[modality]


def version(name: str) -> str:
    """name@hash of its config: an edited config is a new version, so models are probed again."""
    digest = hashlib.sha256(json.dumps(config(name), sort_keys=True).encode()).hexdigest()[:8]
    return f"{name}@{digest}"


@lru_cache(maxsize=4)
def load(name: str) -> ProbeSet:
    cfg = config(name)
    rng = np.random.default_rng(cfg["seed"])
    build = _image_part if cfg["modality"] == "image" else _text_part
    inputs, sources = [], []
    for part in cfg["parts"]:
        made = build(part, rng, cfg)
        inputs.extend(made)
        sources.extend([f"{part['kind']}:{part.get('dataset', 'synthetic')}"] * len(made))
    if cfg["modality"] == "image":
        inputs = np.stack(inputs).astype(np.float32)
    else:
        inputs = tuple(inputs)
    return ProbeSet(cfg["name"], cfg["modality"], inputs, tuple(sources), cfg["reference_encoder"])


def datasets_of(name: str) -> set[str]:
    """The datasets a probe set draws inputs from."""
    return {part["dataset"] for part in config(name)["parts"] if "dataset" in part}


def _pick(dataset: str, n: int, rng, half: str | None = None) -> list:
    """Inputs from a packaged dataset's probe part, or from a shared dataset (never a held-out one: see tests): all of
    it, or with half="zoo" only the half the benchmark's models train on (data.shared.shared_half), never a task's sample."""
    from zoo2vec.data.datasets import LOADERS
    from zoo2vec.data.shared import shared, shared_half

    if half not in (None, "zoo"):
        raise ConfigError(f"probe part of {dataset!r}: half {half!r} is not 'zoo' (the only half a probe may draw from)")
    data = packaged(dataset, "probe") if dataset in LOADERS else shared_half(dataset, half) if half else shared(dataset)
    idx = rng.choice(len(data), size=n, replace=n > len(data))
    return [data.x[i] for i in idx]


def _strokes(shape, rng) -> np.ndarray:
    """A few straight pen strokes, two pixels thick, on a blank image."""
    img = np.zeros(shape[1:], dtype=np.float32)
    for _ in range(rng.integers(1, 4)):
        r0, c0, r1, c1 = rng.integers(3, shape[1] - 3, size=4)
        steps = max(abs(r1 - r0), abs(c1 - c0)) + 1
        rr, cc = np.linspace(r0, r1, steps).round().astype(int), np.linspace(c0, c1, steps).round().astype(int)
        img[rr, cc] = 1.0
        img[np.clip(rr + 1, 0, shape[1] - 1), cc] = 1.0
    return np.repeat(img[None], shape[0], axis=0)


def _rotate(images, part, rng, n):
    from PIL import Image

    angles = rng.uniform(-part["degrees"], part["degrees"], size=n)
    return [np.stack([np.asarray(Image.fromarray(ch).rotate(a, resample=Image.Resampling.BILINEAR)) for ch in img])
            for img, a in zip(images, angles)]


def _tint(images, part, rng, n):
    """Grey images recoloured: ink and paper each a random colour (a digit in red on blue, ...)."""
    out = []
    for img in images:
        ink, paper = rng.random((2, 3, 1, 1))
        g = img.mean(axis=0, keepdims=True)
        out.append((paper * (1 - g) + ink * g).astype(np.float32))
    return out


def _shift(images, part, rng, n):
    return [np.roll(img, tuple(rng.integers(-part["pixels"], part["pixels"] + 1, size=2)), axis=(1, 2)) for img in images]


# image part kinds: made from nothing (one image per call), or transforms of dataset images ("mix" draws twice as many)
_IMAGE_MADE = {"strokes": _strokes, "blobs": lambda shape, rng: _blobs(shape, rng)}
_IMAGE_TRANSFORMS = {
    "dataset": lambda images, part, rng, n: images,
    "rotate": _rotate,
    "shift": _shift,
    "mix": lambda images, part, rng, n: [np.maximum(a, b) * 0.8 for a, b in zip(images[:n], images[n:])],
    "invert": lambda images, part, rng, n: [1.0 - img for img in images],
    "tint": _tint,
}


def _image_part(part: dict, rng, cfg: dict) -> list[np.ndarray]:
    from zoo2vec.data.images import resize

    shape = tuple(cfg["shape"])
    kind, n = part["kind"], part["n"]
    if kind in _IMAGE_MADE:
        return [_IMAGE_MADE[kind](shape, rng) for _ in range(n)]
    if kind not in _IMAGE_TRANSFORMS:
        raise ConfigError(f"probe set {cfg['name']!r}: unknown image part kind {kind!r}")
    images = list(resize(_pick(part["dataset"], n * (2 if kind == "mix" else 1), rng, part.get("half")), shape))
    return _IMAGE_TRANSFORMS[kind](images, part, rng, n)


def _blobs(shape, rng) -> np.ndarray:
    """A colour scene stand-in: a two-colour gradient background with a few coloured ellipses."""
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    top, bottom = rng.random((2, c, 1, 1))
    img = top * (1 - yy) + bottom * yy
    for _ in range(rng.integers(1, 5)):
        cy, cx, ry, rx = rng.random(4) * [1, 1, 0.4, 0.4] + [0, 0, 0.05, 0.05]
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        img = np.where(inside, rng.random((c, 1, 1)), img)
    return np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)


_SUBJECTS = ["The battery", "This recipe", "My flight", "The doctor", "Our bank", "The weather", "This hotel",
             "The new phone", "The soup", "Your account", "The train", "The medicine"]
_PREDICATES = ["was delayed again", "is absolutely wonderful", "needs to be reset before Friday", "costs far too much",
               "made me feel sick", "arrived cold and late", "works better than expected"]


def _shuffled(sentences, rng) -> list[str]:
    out = []
    for ss in sentences:
        words = ss[0].split()
        out.append(" ".join(words[i] for i in rng.permutation(len(words))))
    return out


# text part kinds over the sentences of dataset documents ("mix" draws twice as many documents)
_TEXT_TRANSFORMS = {
    "sentence": lambda sentences, rng, n: [ss[rng.integers(len(ss))] for ss in sentences],
    "mix": lambda sentences, rng, n: [f"{a[0]} {b[min(1, len(b) - 1)]}" for a, b in zip(sentences[:n], sentences[n:])],
    "shuffle": lambda sentences, rng, n: _shuffled(sentences, rng),
}


def _templates(n: int, rng) -> list[str]:
    """Everyday sentences outside the news domain: reviews, travel, health, banking."""
    pool = [f"{s} {p}." for s, p in itertools.product(_SUBJECTS, _PREDICATES)]
    return [pool[i] for i in rng.choice(len(pool), size=n, replace=n > len(pool))]


def _text_part(part: dict, rng, cfg: dict) -> list[str]:
    kind, n = part["kind"], part["n"]
    if kind == "templates":
        return _templates(n, rng)
    if kind != "dataset" and kind not in _TEXT_TRANSFORMS:
        raise ConfigError(f"probe set {cfg['name']!r}: unknown text part kind {kind!r}")
    docs = _pick(part["dataset"], n * (2 if kind == "mix" else 1), rng)
    if kind == "dataset":
        return [" ".join(d.split()[: part["words"]]) for d in docs]
    return _TEXT_TRANSFORMS[kind]([_sentences(d) for d in docs], rng, n)


def _sentences(doc: str) -> list[str]:
    """A document's sentences of more than four words (its first 200 characters when it has none)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())) if len(s.split()) > 4] or [doc[:200]]
