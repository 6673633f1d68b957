"""The black-box contract: a model is reached only through predict(batch) -> class probabilities.

Image batches are float32 arrays (N, C, H, W) in [0, 1] at the card's input_shape; text batches are
lists of strings. Nothing else about a model is read.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from zoo2vec.errors import ModelFailure, ZooError
from zoo2vec.zoo.card import ModelCard

Batch = np.ndarray | Sequence[str]


@runtime_checkable
class BlackBoxModel(Protocol):
    card: ModelCard

    def predict(self, batch: Batch) -> np.ndarray:
        """Class probabilities (or logits), shape (len(batch), n_classes)."""
        ...


def as_probabilities(raw, n_samples: int, card: ModelCard) -> np.ndarray:
    """Check a model's raw answer and return it as probabilities; raise ModelFailure if malformed.

    Adapters that know their model returns logits soft-max them themselves; for any other black
    box, rows that are not already a distribution are taken to be logits and soft-maxed.
    """
    try:
        out = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelFailure(card.name, f"output is not numeric: {exc}") from None
    if out.ndim != 2 or out.shape[0] != n_samples or out.shape[1] < 2:
        raise ModelFailure(card.name, f"output shape {out.shape} is not ({n_samples}, n_classes>=2)")
    if card.label_names is not None and out.shape[1] != len(card.label_names):
        raise ModelFailure(
            card.name, f"output has {out.shape[1]} classes but the card names {len(card.label_names)} labels"
        )
    if not np.all(np.isfinite(out)):
        raise ModelFailure(card.name, "output holds NaN or infinite values")
    is_distribution = out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
    if not is_distribution:
        out = out - out.max(axis=1, keepdims=True)
        out = np.exp(out)
        out /= out.sum(axis=1, keepdims=True)
    return out.astype(np.float32)


def checked_predict(model: BlackBoxModel, batch: Batch, *, timeout_s: float | None = None) -> np.ndarray:
    """predict() with its output validated, exceptions and hangs turned into ModelFailure.

    A hung model cannot be killed from inside the process: its daemon thread is abandoned and the
    caller moves on. Remote models get a real network timeout instead.
    """
    n = len(batch)
    if timeout_s is None:
        try:
            raw = model.predict(batch)
        except ModelFailure:
            raise
        except Exception as exc:  # a zoo model may fail in any way; record it, never crash the run
            raise ModelFailure(model.card.name, f"{type(exc).__name__}: {exc}") from exc
        return as_probabilities(raw, n, model.card)

    box: dict = {}

    def call():
        try:
            box["out"] = model.predict(batch)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["err"] = exc

    worker = threading.Thread(target=call, name=f"predict-{model.card.name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ModelFailure(model.card.name, f"timed out after {timeout_s:g} s")
    if "err" in box:
        exc = box["err"]
        if isinstance(exc, ModelFailure):
            raise exc
        raise ModelFailure(model.card.name, f"{type(exc).__name__}: {exc}") from exc
    return as_probabilities(box["out"], n, model.card)


DEVICE_VARIABLE = "ZOO2VEC_DEVICE"


def device() -> str:
    """The torch device models run on in this process: $ZOO2VEC_DEVICE ("cpu" unless the indexing job's workers were
    started with --device cuda; jobs.executors.resolve_device checks the choice)."""
    import os

    return os.environ.get(DEVICE_VARIABLE, "").strip() or "cpu"


class TorchModel:
    """An in-process torch module as a black box.

    Image modules receive (N, C, H, W) float tensors, optionally normalised with `mean`/`std`;
    text modules receive the list of strings as is. `outputs` says what the module returns:
    "logits" (soft-maxed here; the usual case) or "probabilities".
    """

    def __init__(self, module, card: ModelCard, *, mean=None, std=None, outputs: str = "logits", batch_size: int = 256):
        if outputs not in ("logits", "probabilities"):
            raise ZooError(f"model {card.name!r}: outputs must be 'logits' or 'probabilities', got {outputs!r}")
        self.device = device()
        self.module = module.eval().to(self.device)
        self.outputs = outputs
        self.card = card
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        self.batch_size = batch_size

    def predict(self, batch: Batch) -> np.ndarray:
        import torch

        outs = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                if self.card.modality == "image":
                    x = np.asarray(chunk, dtype=np.float32)
                    if self.mean is not None:
                        x = (x - self.mean) / self.std
                    chunk = torch.from_numpy(x).to(self.device)
                else:
                    chunk = list(chunk)
                out = self.module(chunk).float()
                outs.append((out.softmax(dim=1) if self.outputs == "logits" else out).cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=np.float32)
