"""Faster stand-ins for a packaged sentence encoder, for query-time text (the reference space's).

A transformer's forward pass is most of a text task's search time (MiniLM on 2 cores: about a second for 100 short
reviews). Two ways out, each a reference encoder of its own (its probe set embeds its inputs the same way):

  int8    the same network's ONNX export with int8 weights (onnxruntime's dynamic quantisation): the same space up
          to rounding (cosine ~0.95 to the float vectors), about 2x faster.
  static  a static encoder: each token's vector looked up and averaged; the same 100 reviews take milliseconds.

The static recipe is Model2Vec's, written out here because model2vec's `distill` extra pins transformers below what
this project runs: every vocabulary token passed through the encoder on its own (between the tokenizer's special
tokens) and mean-pooled, a PCA to DIMS dimensions, each token weighted by SIF on a Zipf estimate of its frequency (the
vocabulary's order). It runs on the encoder's ONNX export (no torch), once, under the data home; inference is
model2vec's StaticModel (numpy and tokenizers). Both files are written whole (temporary file, then rename).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from zoo2vec import settings
from zoo2vec.errors import ConfigError
from zoo2vec.zoo.sentence import (
    MINILM,
    OnnxSentenceEncoder,
    _Memoised,
    _weights_digest,
    encoder_path,
    onnx_export_path,
    sentence_encoder,
)

RECIPE = "static-1"
DIMS = 256
SIF = 1e-4
_encoders: dict[str, object] = {}
_lock = threading.RLock()
log = logging.getLogger(__name__)


def static_path(name: str = MINILM) -> Path:
    """Where the distilled token vectors of encoder `name` live (named by its weights and the recipe)."""
    digest = _weights_digest(encoder_path(name), RECIPE, str(DIMS), str(SIF))
    return settings.home() / "encoders" / f"{Path(name).name}-{digest}.static.npy"


def token_vectors(source: OnnxSentenceEncoder, *, batch: int = 512) -> np.ndarray:
    """Each vocabulary token through the encoder alone, mean-pooled over it and the special tokens around it."""
    tokenizer = source.tokenizer
    around = tokenizer.encode("").ids  # e.g. [CLS] [SEP]: the token goes between them (alone where there are none)
    vocab = tokenizer.get_vocab_size()
    out = np.zeros((vocab, source.dim), dtype=np.float32)
    for start in range(0, vocab, batch):
        ids = np.array([around[:-1] + [i] + around[-1:] for i in range(start, min(start + batch, vocab))], dtype=np.int64)
        mask = np.ones_like(ids)
        hidden = source.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        out[start:start + len(ids)] = hidden.mean(axis=1)
    return out


def distil(vectors: np.ndarray, dims: int = DIMS, sif: float = SIF) -> np.ndarray:
    """PCA to `dims` components, then SIF weights from a Zipf estimate of each token's frequency (rank = row)."""
    centred = vectors - vectors.mean(axis=0)
    _, components = np.linalg.eigh(centred.T @ centred / max(len(centred) - 1, 1))
    reduced = centred @ components[:, ::-1][:, :dims]
    inv_rank = 1.0 / np.arange(2, len(vectors) + 2)
    weight = sif / (sif + inv_rank / inv_rank.sum())
    return (reduced * weight[:, None]).astype(np.float32)


def _float_export(name: str) -> Path:
    """The encoder's float ONNX export, written first (by loading it through sentence-transformers) when missing."""
    export = onnx_export_path(name)
    if export is None:
        raise ConfigError(f"{name} is not a transformer + mean pooling encoder; no faster encoder can be made from it")
    if not export.exists():
        sentence_encoder(name).model  # loading it through sentence-transformers writes the export
    if not export.exists():
        raise ConfigError(f"the ONNX export of {name} could not be written (see the warning above); it is needed once "
                          "to make its faster stand-ins")
    return export


def int8_path(name: str = MINILM) -> Path:
    export = onnx_export_path(name)
    if export is None:
        raise ConfigError(f"{name} is not a transformer + mean pooling encoder; it has no int8 export")
    return export.with_name(f"{export.stem}.int8.onnx")


def int8_encoder(name: str = MINILM) -> OnnxSentenceEncoder:
    """The process-wide int8 ONNX encoder of `name`, quantised first where the data home has none."""
    return _made(f"int8:{name}", int8_path(name), lambda path: _quantise(name, path),
                 lambda path: OnnxSentenceEncoder(name, path))


def static_encoder(name: str = MINILM) -> StaticSentenceEncoder:
    """The process-wide static encoder distilled from `name`, distilled first where the data home has none."""
    return _made(f"static:{name}", static_path(name), lambda path: _distil_to(name, path),
                 lambda path: StaticSentenceEncoder(name, np.load(path)))


def _made(key: str, path: Path, make, load):
    """One encoder per process and key, loaded from `path`, which `make` writes first when it is missing."""
    with _lock:
        if key not in _encoders:
            if not path.exists():
                make(path)
            _encoders[key] = load(path)
        return _encoders[key]


def _quantise(name: str, path: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ConfigError(f"the int8 encoder is made with onnxruntime's quantiser, which needs onnx ({exc}): "
                          "pip install 'zoo2vec[onnx]'") from None
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial.onnx")
    quantize_dynamic(str(_float_export(name)), str(partial), weight_type=QuantType.QInt8)
    os.replace(partial, path)  # whole or absent


def _distil_to(name: str, path: Path) -> None:
    export = _float_export(name)
    log.info("distilling a static encoder from %s (once, about a minute)", name)
    vectors = distil(token_vectors(OnnxSentenceEncoder(name, export)))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial.npy")
    np.save(partial, vectors)
    os.replace(partial, path)  # whole or absent


class StaticSentenceEncoder(_Memoised):
    """Unit-norm sentence vectors: the mean of the tokens' distilled vectors (model2vec's StaticModel)."""

    def __init__(self, name: str, vectors: np.ndarray, *, memo_size: int = 50_000, max_length: int = 128):
        from model2vec import StaticModel
        from tokenizers import Tokenizer

        super().__init__(memo_size)
        self.name = name
        tokenizer = Tokenizer.from_file(str(encoder_path(name) / "tokenizer.json"))
        self.model = StaticModel(vectors, tokenizer, normalize=True, max_length=max_length)
        self.dim = int(vectors.shape[1])

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.model.encode(texts, show_progress_bar=False, use_multiprocessing=False), dtype=np.float32)

