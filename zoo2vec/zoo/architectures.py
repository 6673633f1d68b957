"""Small network architectures by name, so a safetensors checkpoint plus a config dict rebuilds a model.

A checkpoint's card says {"arch": "<name>", "config": {...}}; build(arch, config) gives the module.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from zoo2vec.errors import ConfigError

_TOKEN = re.compile(r"[a-z0-9']+")


def _nn():
    import torch.nn as nn

    return nn


def linear(input_shape, n_classes: int):
    nn = _nn()
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, n_classes))


def mlp(input_shape, n_classes: int, hidden=(128,)):
    nn = _nn()
    size = 1
    for d in input_shape:
        size *= d
    layers: list = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    layers.append(nn.Linear(size, n_classes))
    return nn.Sequential(*layers)


def cnn(input_shape, n_classes: int, channels=(16, 32), hidden: int = 64):
    """Conv-ReLU-MaxPool blocks then two linear layers (layout of the digit-recognizer-py CNN)."""
    import torch

    nn = _nn()

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            c, h, w = input_shape
            blocks: list = []
            for out in channels:
                blocks += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)]
                c, h, w = out, h // 2, w // 2
            self.conv_layers = nn.Sequential(*blocks)
            self.fc_layers = nn.Sequential(nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc_layers(torch.flatten(self.conv_layers(x), 1))

    return CNN()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def bag_of_words(n_classes: int, buckets: int = 2**15, dim: int = 64, max_tokens: int = 400):
    """fastText-style text classifier: hashed unigrams and bigrams, mean-pooled, one linear layer."""
    import torch

    nn = _nn()

    class BagOfWords(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.EmbeddingBag(buckets, dim, mode="mean")
            self.out = nn.Linear(dim, n_classes)

        def forward(self, texts: list[str]) -> torch.Tensor:
            ids, offsets = [], []
            for text in texts:
                words = tokens(text)[:max_tokens]
                grams = words + [a + " " + b for a, b in zip(words, words[1:])]
                offsets.append(len(ids))
                # crc32, not hash(): bucket ids must not change between processes
                ids.extend(zlib.crc32(g.encode()) % buckets for g in grams or [""])
            x = self.embedding(torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long))
            return self.out(x)

    return BagOfWords()


def head(in_dim: int, n_classes: int, hidden=()):
    """A classification head over fixed sentence embeddings."""
    return mlp((1, 1, in_dim), n_classes, hidden=hidden)


ARCHITECTURES = {"linear": linear, "mlp": mlp, "cnn": cnn, "bag_of_words": bag_of_words, "head": head}


def build(arch: str, config: dict[str, Any]):
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise ConfigError(f"unknown architecture {arch!r}. Available: {', '.join(sorted(ARCHITECTURES))}") from None
    try:
        return factory(**config)
    except TypeError as exc:
        raise ConfigError(f"bad config for architecture {arch!r}: {exc}") from None


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())
