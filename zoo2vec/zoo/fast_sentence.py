"""Faster stand-ins for a packaged sentence encoder, for query-time text (the reference space's).

A transformer's forward pass is most of a text task's search time (MiniLM on 2 cores: about a second for 100 short
reviews). Two ways out, each a reference encoder of its own (its probe set embeds its inputs the same way):

  int8    the same network's ONNX export with int8 weights (onnxruntime's dynamic quantisation): the same space up
          to rounding (cosine ~0.95 to the float vectors), about 2x faster.
  static  a static encoder: each token's vector looked up and averaged; the same 100 reviews take milliseconds.
  student a static encoder too, whose token vectors are fitted so that their mean is MiniLM's sentence vector, on real
          sentences: it keeps far more of MiniLM's geometry than `static` (see student_vectors).

The static recipe is Model2Vec's, written out here because model2vec's `distill` extra pins transformers below what
this project runs: every vocabulary token passed through the encoder on its own (between the tokenizer's special
tokens) and mean-pooled, a PCA to DIMS dimensions, each token weighted by SIF on a Zipf estimate of its frequency (the
vocabulary's order). It runs on the encoder's ONNX export (no torch), once, under the data home; inference is
model2vec's StaticModel (numpy and tokenizers). Both files are written whole (temporary file, then rename).

The student is the linear form of tokenlearn's idea (fit a static model to the teacher's sentence vectors rather than
to its tokens alone): with B the texts' mean-pooling weights over the vocabulary (model2vec's own tokenisation) and S
MiniLM's unit sentence vectors, the token vectors E minimise |B E - S|^2 + STUDENT_RIDGE |E - E0|^2, where E0 is each
token alone through MiniLM (unit length): tokens the corpus lacks keep that. Solved by conjugate gradients, every
dimension at once. The corpus is the bench's meta-training text datasets, the halves its models train on (never a
held-out or new-domain dataset, never a task's sample: a test checks), so the student needs the shared data folder
once; it stays in MiniLM's 384 dimensions.
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
STUDENT_RECIPE = "student-1"
# the ridge weight, chosen by leave-one-family-out kernel fidelity over STUDENT_CORPUS (the correlation of the
# student's pairwise cosines with MiniLM's on the left-out family's task texts; 2026-12-07): 0.531 at 3e-3, 0.537 at
# 1e-2, 0.522 at 3e-2; static-1 0.373. A zero prior instead of each token alone: 0.495 at 1e-2, 0.389 at 1e-1
STUDENT_RIDGE = 1e-2
# packaged datasets give their "train" part, shared ones their "zoo" half (the one the bench's models train on)
STUDENT_CORPUS = ("ag-news", "banking77", "bbc-news", "clinc150", "goemotions", "mpqa", "mr", "sst2", "sst5", "subj")
STUDENT_MAX_LENGTH = 128  # tokens, as the teacher's (OnnxSentenceEncoder) and the static encoders' inference
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


def student_path(name: str = MINILM) -> Path:
    """Where the student's token vectors for encoder `name` live (named by its weights, the recipe and the corpus)."""
    digest = _weights_digest(encoder_path(name), STUDENT_RECIPE, str(STUDENT_RIDGE), *STUDENT_CORPUS)
    return settings.home() / "encoders" / f"{Path(name).name}-{digest}.student.npy"


def student_encoder(name: str = MINILM) -> StaticSentenceEncoder:
    """The process-wide student of `name`, fitted first (a few minutes, once) where the data home has none."""
    return _made(f"student:{name}", student_path(name), lambda path: _fit_to(name, path),
                 lambda path: StaticSentenceEncoder(name, np.load(path)))


def corpus_texts(datasets) -> list[str]:
    """The student's texts (STUDENT_CORPUS): each dataset's training half, whitespace collapsed."""
    from zoo2vec.data.datasets import LOADERS, packaged
    from zoo2vec.data.shared import shared_half

    texts = []
    for dataset in datasets:
        try:
            data = packaged(dataset, "train") if dataset in LOADERS else shared_half(dataset, "zoo")
        except ConfigError as exc:
            raise ConfigError(f"the student encoder is fitted once on the texts of {', '.join(datasets)}: {exc}") from None
        texts.extend(" ".join(str(x).split()) for x in data.x)
    return texts


def mean_pooling_matrix(model, texts: list[str]):
    """Sparse (texts, vocabulary): each text's tokens (as `model`, a StaticModel, tokenises them), weighted 1/length,
    so that matrix @ token vectors is the mean `model` takes before normalising."""
    import scipy.sparse as sp

    ids = model.tokenize(texts)
    lengths = np.array([len(i) for i in ids])
    rows = np.repeat(np.arange(len(ids)), lengths)
    cols = np.concatenate([np.asarray(i, dtype=np.int64) for i in ids] + [np.zeros(0, dtype=np.int64)])
    vals = np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(ids), model.embedding.shape[0]), dtype=np.float32)


def ridge_towards(B, targets: np.ndarray, prior: np.ndarray, ridge: float, *, iters: int = 200,
                  tol: float = 1e-5) -> np.ndarray:
    """argmin_E |B E - targets|^2 + ridge |E - prior|^2 by conjugate gradients on the normal equations, each column
    its own system, all advanced at once (B is sparse and the vocabulary large: no matrix of it is ever formed)."""
    Bt = B.T.tocsr()

    def apply(x):
        return Bt @ (B @ x) + ridge * x

    rhs = Bt @ targets + ridge * prior
    x = prior.astype(np.float64)
    r = rhs - apply(x)
    p = r.copy()
    rs = (r * r).sum(axis=0)
    stop = (tol * np.linalg.norm(rhs, axis=0)) ** 2
    for _ in range(iters):
        if np.all(rs <= stop):
            break
        ap = apply(p)
        alpha = rs / np.maximum((p * ap).sum(axis=0), 1e-300)
        x += p * alpha
        r -= ap * alpha
        new = (r * r).sum(axis=0)
        p = r + p * (new / np.maximum(rs, 1e-300))
        rs = new
    return x.astype(np.float32)


def student_vectors(teacher: OnnxSentenceEncoder, texts: list[str], *, ridge: float = STUDENT_RIDGE,
                    progress=log.info) -> np.ndarray:
    """Token vectors whose mean over a text's tokens is (near) the teacher's vector of that text."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    progress(f"student: {len(texts)} texts through {teacher.name}")
    targets = teacher.encode(texts, memo=False)
    progress(f"student: each of {teacher.tokenizer.get_vocab_size()} tokens alone through {teacher.name} (the prior)")
    prior = token_vectors(teacher)
    prior /= np.maximum(np.linalg.norm(prior, axis=1, keepdims=True), 1e-12)
    tokenizer = Tokenizer.from_file(str(encoder_path(teacher.name) / "tokenizer.json"))  # as StaticSentenceEncoder's
    pooling = mean_pooling_matrix(StaticModel(prior, tokenizer, normalize=True, max_length=STUDENT_MAX_LENGTH), texts)
    progress(f"student: fitting {prior.shape[0]} x {prior.shape[1]} token vectors (ridge {ridge})")
    return ridge_towards(pooling, targets, prior, ridge)


def _fit_to(name: str, path: Path) -> None:
    texts = corpus_texts(STUDENT_CORPUS)
    log.info("fitting a static student of %s on %d texts (once, a few minutes)", name, len(texts))
    _save_whole(path, student_vectors(OnnxSentenceEncoder(name, _float_export(name)), texts))


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
    _save_whole(path, distil(token_vectors(OnnxSentenceEncoder(name, export))))


def _save_whole(path: Path, vectors: np.ndarray) -> None:
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

