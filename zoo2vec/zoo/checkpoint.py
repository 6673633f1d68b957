"""Model folders: a card.json plus the files its adapter names; load one as a black box.

Adapter kinds in card.adapter["kind"]:
  safetensors            {"file", "arch", "config", "mean"?, "std"?}   weights + an architecture by name
  torchscript            {"file", "mean"?, "std"?}                     a TorchScript archive
  pickle                 {"file", "mean"?, "std"?}                     a pickled nn.Module: refused unless trusted
  (torch kinds also take "outputs": "logits" (default) or "probabilities")
  sentence-transformers  {"encoder", "head", "config"}                 sentence encoder + safetensors head
  tflite                 {"file", "scale"?}                            a TensorFlow Lite model (NHWC float input
                                                                       = our [0, 1] images x scale), via ai-edge-litert
  http                   {"url", "model"?, "timeout_s"?}               Open Inference Protocol v2 endpoint
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from zoo2vec.errors import UntrustedCheckpointError, ZooError, require
from zoo2vec.zoo import architectures
from zoo2vec.zoo.blackbox import BlackBoxModel, TorchModel
from zoo2vec.zoo.card import CARD_FILE, ModelCard

ADAPTERS = ("safetensors", "torchscript", "pickle", "sentence-transformers", "tflite", "http")
ADAPTER_VERSION = "1"  # part of every fingerprint: a change in how we call models re-probes them


def fingerprint(folder: Path) -> str:
    """Hash of every file in the model folder (card included) and of the adapter code version."""
    folder = Path(folder)
    h = hashlib.sha256(f"adapter-v{ADAPTER_VERSION}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def _file(folder: Path, spec: dict, card: ModelCard) -> Path:
    name = spec.get("file")
    if not name:
        raise ZooError(f"model {card.name!r}: adapter {spec.get('kind')!r} needs a 'file' entry")
    path = (folder / name).resolve()
    if folder.resolve() not in path.parents:
        raise ZooError(f"model {card.name!r}: adapter file {name!r} points outside its folder")
    if not path.is_file():
        raise ZooError(f"model {card.name!r}: adapter file {path} is missing")
    return path


def load_model(folder: Path, *, trust_pickle: bool = False) -> BlackBoxModel:
    """Open one model folder as a black box. Nothing runs until predict() is called."""
    folder = Path(folder)
    card = ModelCard.load(folder)
    spec = dict(card.adapter)
    kind = spec.get("kind")
    norm = {"mean": spec.get("mean"), "std": spec.get("std"), "outputs": spec.get("outputs", "logits")}
    if kind == "safetensors":
        from safetensors.torch import load_file

        path = _file(folder, spec, card)
        if path.suffix != ".safetensors":
            raise ZooError(f"model {card.name!r}: safetensors adapter expects a .safetensors file, got {path.name}")
        module = architectures.build(spec.get("arch", ""), spec.get("config", {}))
        try:
            module.load_state_dict(load_file(str(path)))
        except (RuntimeError, OSError) as exc:
            raise ZooError(f"model {card.name!r}: weights do not fit architecture {spec.get('arch')!r}: {exc}") from None
        return TorchModel(module, card, **norm)
    if kind in ("torchscript", "pickle"):
        import torch

        path = _file(folder, spec, card)
        if _is_torchscript(path):
            return TorchModel(torch.jit.load(str(path), map_location="cpu"), card, **norm)
        if kind == "torchscript":
            raise ZooError(f"model {card.name!r}: {path.name} is not a TorchScript archive")
        if not trust_pickle:
            raise UntrustedCheckpointError(
                f"model {card.name!r}: {path.name} is a pickled checkpoint, which can run arbitrary code when loaded. "
                "Convert it to safetensors, or pass trust_pickle=True (CLI: --trust-pickle) if you trust its source."
            )
        module = torch.load(str(path), map_location="cpu", weights_only=False)
        return TorchModel(module, card, **norm)
    if kind == "sentence-transformers":
        from safetensors.torch import load_file

        from zoo2vec.zoo.sentence import MINILM, SentenceHeadModel, sentence_encoder

        head = architectures.build("head", spec.get("config", {}))
        head.load_state_dict(load_file(str(_file(folder, {"kind": kind, "file": spec.get("head")}, card))))
        return SentenceHeadModel(sentence_encoder(spec.get("encoder", MINILM)), head, card)
    if kind == "tflite":
        return TFLiteModel(_file(folder, spec, card), card, scale=float(spec.get("scale", 1.0)))
    if kind == "http":
        from zoo2vec.zoo.remote import RemoteModel

        if "url" not in spec:
            raise ZooError(f"model {card.name!r}: http adapter needs a 'url'")
        return RemoteModel(spec["url"], card, model=spec.get("model"), timeout_s=float(spec.get("timeout_s", 30)))
    raise ZooError(f"model {card.name!r}: unknown adapter kind {kind!r} in {CARD_FILE}. Available: {', '.join(ADAPTERS)}")


class TFLiteModel:
    """A TensorFlow Lite image classifier (e.g. the MLCommons Tiny ResNet-8), run with ai-edge-litert."""

    def __init__(self, path: Path, card: ModelCard, *, scale: float = 1.0):
        litert = require("ai_edge_litert.interpreter", "tflite")
        self.card = card
        self.scale = scale
        self.interpreter = litert.Interpreter(model_path=str(path))
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._batch = 0

    def predict(self, batch):
        import numpy as np

        x = np.ascontiguousarray(np.asarray(batch, dtype=np.float32).transpose(0, 2, 3, 1) * self.scale)
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input, list(x.shape))
            self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()


def save_model(folder: Path, module, card: ModelCard, *, arch: str, config: dict, mean=None, std=None) -> Path:
    """Write a safetensors model folder; the card's adapter entry is filled in here."""
    from dataclasses import replace

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    if arch == "head":
        save_file(state, str(folder / "head.safetensors"))
        config = dict(config)
        adapter = {"kind": "sentence-transformers", "encoder": config.pop("encoder"), "head": "head.safetensors", "config": config}
    else:
        save_file(state, str(folder / "model.safetensors"))
        adapter = {"kind": "safetensors", "file": "model.safetensors", "arch": arch, "config": config}
        if mean is not None:
            adapter.update(mean=list(mean), std=list(std))
    replace(card, adapter=adapter).save(folder)
    return folder
