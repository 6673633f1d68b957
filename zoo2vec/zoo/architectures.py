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
                offsets.append(len(ids))
                ids.extend(_hashed_grams(text, buckets, max_tokens) or [0])
            x = self.embedding(torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long))
            return self.out(x)

    return BagOfWords()


def _hashed_grams(text: str, buckets: int, max_tokens: int) -> list[int]:
    words = tokens(text)[:max_tokens]
    grams = words + [a + " " + b for a, b in zip(words, words[1:])]
    # crc32, not hash(): bucket ids must not change between processes
    return [zlib.crc32(g.encode()) % buckets for g in grams]


def tfidf_linear(n_classes: int, buckets: int = 2**14, max_tokens: int = 400):
    """TF-IDF over hashed unigrams and bigrams, L2-normalised, then one linear layer.

    The idf weights are a buffer (saved with the weights), set from training texts by fit_idf().
    """
    import torch

    nn = _nn()

    class TfidfLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("idf", torch.ones(buckets))
            self.out = nn.Linear(buckets, n_classes)

        def _tf(self, texts: list[str]) -> torch.Tensor:
            x = torch.zeros(len(texts), buckets)
            for i, text in enumerate(texts):
                ids = _hashed_grams(text, buckets, max_tokens)
                if ids:
                    x[i].index_add_(0, torch.tensor(ids), torch.ones(len(ids)))
            return x

        def fit_idf(self, texts: list[str]):
            df = (self._tf(texts) > 0).float().sum(dim=0)
            self.idf.copy_(torch.log((1 + len(texts)) / (1 + df)) + 1)

        def forward(self, texts: list[str]) -> torch.Tensor:
            x = self._tf(texts) * self.idf
            return self.out(x / x.norm(dim=1, keepdim=True).clamp_min(1e-8))

    return TfidfLinear()


def head(in_dim: int, n_classes: int, hidden=()):
    """A classification head over fixed sentence embeddings."""
    return mlp((1, 1, in_dim), n_classes, hidden=hidden)


ARCHITECTURES = {"linear": linear, "mlp": mlp, "cnn": cnn, "bag_of_words": bag_of_words, "tfidf_linear": tfidf_linear,
                 "head": head}


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
