"""Keras image classifiers: Keras 3 `.keras` files and Keras 2 `.h5` full models, loaded by Keras 3 (the `keras`
extra) on its torch backend unless KERAS_BACKEND names another.

    {"kind": "keras", "file": "model.keras" | "model.h5", "layout"?: "NHWC" | "NCHW" | "NHW" | "flat",
     "scale"?: 255.0, "mean"?: [...], "std"?: [...], "outputs"?: "probabilities" | "logits" | "sigmoid"}

The model gets zoo2vec's [0, 1] images times `scale` (a model trained on raw 0..255 pixels wants 255), then
(x - mean) / std, in the layout of its input: channels last unless its layers say channels_first, [N, H, W] for a
grey model without a channel axis, or flattened in (H, W, C) order. Without a card.json the file's model config
says the rest, read with h5py and no Keras: modality, input_shape and layout (from the input layer), params (the
saved weights), and `scale` 255 when the model's first layer is a Rescaling(1/255) (or 1/127.5) of raw pixels. Keras
saves no class names: label_names come from the card only. A softmax output is taken as is, a single sigmoid unit
(binary) becomes the two columns [1 - p, p], anything else is soft-maxed as logits.

Models whose Lambda layers hold Python code are refused unless the caller trusts pickles (trust_pickle=True), like
pickled checkpoints. Text models (Embedding or TextVectorization inputs) are out of scope: their tokenizer lives
outside the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec.data.images import laid_out, square_shape
from zoo2vec.errors import SkippedModel, UntrustedCheckpointError, ZooError, require
from zoo2vec.zoo.adapters import Inferred, ModelSource, inside, register, written_adapter
from zoo2vec.zoo.card import ModelCard

SUFFIXES = (".keras", ".h5", ".hdf5")
LAYOUTS = ("NHWC", "NCHW", "NHW", "flat")
OUTPUTS = ("probabilities", "logits", "sigmoid")
TEXT_LAYERS = ("Embedding", "TextVectorization", "StringLookup", "IntegerLookup", "Hashing")
RAW_PIXEL_RESCALES = (1 / 255, 1 / 127.5)  # a first Rescaling layer by one of these means the model eats 0..255
BATCH = 256
_TEXT_OUT_OF_SCOPE = ("zoo2vec runs Keras image classifiers only: a Keras text model takes token ids from a "
                      "tokenizer saved outside the file, so zoo2vec cannot feed it strings. Export it with its "
                      "tokenizer (e.g. ONNX with string input, or a transformers folder) to index it")


def detect(folder: Path) -> Inferred | None:
    """What a Keras file's model config says about the model; None unless the folder holds one .keras file or one
    full-model .h5 (or its card.json names one)."""
    path = _model_file(Path(folder))
    if path is None:
        return None
    config, params = _read_model_file(path)
    if config is None:
        return None  # an .h5 of weights only: its architecture is elsewhere
    where = f"{path.name} model config"
    layers = _layers(config)
    fields: dict[str, Any] = {"tags": ["keras"]}
    origin = {"tags": "file format"}
    adapter: dict[str, Any] = {"kind": "keras", "file": path.name}
    if params:
        fields["params"], origin["params"] = params, f"{path.name} weights"
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    if len(inputs) > 1:
        raise ZooError(f"{path}: the Keras model takes {len(inputs)} inputs; zoo2vec feeds one")
    first = next((layer for layer in layers if layer.get("class_name") != "InputLayer"), {})
    input_config = (inputs[0] if inputs else first).get("config", {})
    built = config["config"].get("build_input_shape") if isinstance(config.get("config"), dict) else None
    shape = input_config.get("batch_shape") or input_config.get("batch_input_shape") or built
    dtype = _dtype(input_config.get("dtype"))
    if first.get("class_name") in TEXT_LAYERS or dtype.startswith(("int", "uint", "string")):
        raise SkippedModel(f"{path.name} is a Keras text model (input {dtype} {shape}, first layer "
                           f"{first.get('class_name')}); {_TEXT_OUT_OF_SCOPE}")
    fields["modality"], origin["modality"] = "image", f"{where} (input {dtype} {shape})"
    if shape is not None:  # else the card must say input_shape and layout (ModelCard asks for the first)
        layout, image = _layout(tuple(shape), _data_format(layers), path.name)
        adapter["layout"] = layout
        if image is not None:
            fields["input_shape"] = list(image)
            origin["input_shape"] = f"{where} input {list(shape)} ({layout}" + \
                (f": {math.prod(image)} features read as a {image[0]}x{image[1]}x{image[2]} image)"
                 if layout == "flat" else ")")
        scale = _raw_pixel_scale(first)
        if scale is not None:
            adapter["scale"] = scale
    fields["adapter"] = adapter
    origin["adapter"] = where if "scale" not in adapter else f"{where} (first layer Rescaling: raw 0..255 pixels)"
    return Inferred(fields, origin)


class KerasModel:
    """A loaded Keras model as a black box: images scaled, normalised and laid out as its input wants; answers
    turned into class probabilities as its output activation says."""

    def __init__(self, model, card: ModelCard, *, layout: str, outputs: str, scale: float = 1.0, mean=None,
                 std=None, batch_size: int = BATCH):
        self.model = model
        self.card = card
        self.layout = layout
        self.outputs = outputs
        self.scale = scale
        self.mean = _per_channel(mean, card, "mean")
        self.std = _per_channel(std, card, "std")
        self.batch_size = batch_size

    def predict(self, batch) -> np.ndarray:
        if len(batch) == 0:
            units = int(self.model.outputs[0].shape[-1] or 1)
            return np.zeros((0, max(units, 2)), dtype=np.float32)
        # Keras users flatten (H, W, C) arrays
        x = laid_out(batch, scale=self.scale, mean=self.mean, std=self.std, layout=self.layout, flat_order="HWC")
        raw = np.asarray(self.model.predict(np.ascontiguousarray(x), batch_size=self.batch_size, verbose=0),
                         dtype=np.float64)
        return _as_probabilities(raw.reshape(len(raw), -1), self.outputs).astype(np.float32)


@register("keras", detect=detect, priority=50, expects="one *.keras file or one full-model *.h5 (model.save)")
def load(source: ModelSource) -> KerasModel:
    card, spec = source.card, source.spec
    path = source.file()
    if path.suffix not in SUFFIXES:
        raise ZooError(f"model {card.name!r}: adapter 'keras' expects a {' or '.join(SUFFIXES)} file, got {path.name}")
    if card.modality != "image":
        raise ZooError(f"model {card.name!r}: {_TEXT_OUT_OF_SCOPE}")
    keras = _keras()
    model = _load_keras_model(keras, path, card.name, trust=source.trust_pickle)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ZooError(f"model {card.name!r}: the Keras model has {len(model.inputs)} inputs and "
                       f"{len(model.outputs)} outputs; zoo2vec feeds one input and reads one output")
    layout = spec.get("layout") or _layout(tuple(model.inputs[0].shape), _model_data_format(model), card.name)[0]
    outputs = spec.get("outputs") or _output_kind(model)
    if layout not in LAYOUTS:
        raise ZooError(f"model {card.name!r}: adapter layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if outputs not in OUTPUTS:
        raise ZooError(f"model {card.name!r}: adapter outputs {outputs!r} is not one of {', '.join(OUTPUTS)}")
    return KerasModel(model, card, layout=layout, outputs=outputs, scale=float(spec.get("scale", 1.0)),
                      mean=spec.get("mean"), std=spec.get("std"), batch_size=int(spec.get("batch_size", BATCH)))


def _keras():
    # Keras 3 defaults to TensorFlow, which zoo2vec does not need; torch is installed with zoo2vec
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", "keras")


def _load_keras_model(keras, path: Path, model: str, *, trust: bool):
    # refused before Keras reads it: some Keras versions ran a legacy .h5's Lambda code despite safe_mode
    if not trust and _has_lambda(path):
        raise _untrusted(model, path)
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=not trust)
    except Exception as exc:  # noqa: BLE001 - deserialising a foreign model fails in many ways
        reason = " ".join(str(exc).split())
        if "safe_mode" in reason:
            raise _untrusted(model, path) from None
        lambdas = _has_lambda(path)
        hint = (" Its Lambda layers hold Python bytecode marshalled by the Python that saved it, which this Python "
                "cannot read: rebuild those layers in code and load the weights.") if lambdas else ""
        raise ZooError(f"model {model!r}: Keras {keras.__version__} cannot load {path.name}: "
                       f"{type(exc).__name__}: {reason[:500]}.{hint}") from None


def _untrusted(model: str, path: Path) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"model {model!r}: {path.name} holds Lambda layers of Python code, which can run arbitrary code when loaded. "
        "Pass trust_pickle=True (CLI: --trust-pickle) if you trust its source, or rebuild the model without Lambda "
        "layers.")


def _as_probabilities(raw: np.ndarray, outputs: str) -> np.ndarray:
    if raw.shape[1] == 1:  # one unit: the probability (or logit) of the second of two classes
        p = raw[:, 0] if outputs != "logits" else 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.stack([1.0 - p, p], axis=1)
    if outputs == "sigmoid":  # independent per-class probabilities, made one distribution
        return raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-12)
    if outputs == "logits":
        z = np.exp(raw - raw.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    return raw


def _output_kind(model) -> str:
    """'probabilities' after a softmax, 'sigmoid' after a sigmoid, else 'logits', from the layer that makes the
    output."""
    history = getattr(model.outputs[0], "_keras_history", None)
    layer = getattr(history, "operation", None) or model.layers[-1]
    if type(layer).__name__ == "Softmax":
        return "probabilities"
    activation = layer.get_config().get("activation") if hasattr(layer, "get_config") else None
    if isinstance(activation, dict):  # a serialised activation object
        activation = activation.get("config", {}).get("name") or activation.get("class_name")
    activation = str(getattr(activation, "__name__", activation) or "").lower()
    if "softmax" in activation:
        return "probabilities"
    return "sigmoid" if "sigmoid" in activation else "logits"


def _layout(shape: tuple, data_format: str | None, model: str) -> tuple[str, tuple[int, int, int] | None]:
    """The input's layout and the image (C, H, W) it implies (None where a dimension is not fixed)."""
    dims = tuple(None if d is None else int(d) for d in shape[1:])
    if len(dims) == 1:
        return "flat", square_shape(dims[0])
    if len(dims) == 2:
        return "NHW", (1, *dims) if None not in dims else None
    if len(dims) == 3:
        a, b, c = dims
        channels_first = data_format == "channels_first" if data_format else (a in (1, 3) and c not in (1, 3))
        if channels_first:
            return "NCHW", (a, b, c) if None not in dims else None
        return "NHWC", (c, a, b) if None not in dims else None
    raise ZooError(f"model {model!r}: the Keras model's input {list(shape)} is none of [N,H,W,C], [N,C,H,W], [N,H,W] "
                   "or a flat [N,F]")



def _data_format(layers: list[dict]) -> str | None:
    """The data_format of the first layer that has one (convolutions, pooling), in the saved config."""
    for layer in layers:
        value = layer.get("config", {}).get("data_format")
        if value in ("channels_first", "channels_last"):
            return value
    return None


def _model_data_format(model) -> str | None:
    for layer in model.layers:
        value = getattr(layer, "data_format", None)
        if value in ("channels_first", "channels_last"):
            return value
    return None


def _dtype(value) -> str:
    """A layer's dtype as a name: Keras 3 may save a DTypePolicy object in its place."""
    if isinstance(value, dict):
        value = value.get("config", {}).get("name")
    return str(value or "float32")


def _raw_pixel_scale(first: dict) -> float | None:
    if first.get("class_name") != "Rescaling":
        return None
    scale = first.get("config", {}).get("scale")
    if isinstance(scale, int | float) and any(math.isclose(scale, s, rel_tol=1e-3) for s in RAW_PIXEL_RESCALES):
        return 255.0
    return None


def _per_channel(value, card: ModelCard, key: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    channels = card.input_shape[0] if card.input_shape else len(array)
    if len(array) not in (1, channels):
        raise ZooError(f"model {card.name!r}: adapter {key} has {len(array)} values for {channels} channels")
    return array.reshape(1, -1, 1, 1)


def _layers(config: dict) -> list[dict]:
    """The top-level layer configs of a saved model (Keras 2.2 wrote a Sequential's config as the list itself)."""
    inner = config.get("config")
    layers = inner if isinstance(inner, list) else (inner or {}).get("layers", [])
    return [layer for layer in layers if isinstance(layer, dict)]


def _has_lambda(path: Path) -> bool:
    try:
        config, _ = _read_model_file(path)
    except ZooError:
        return False
    return any(layer.get("class_name") == "Lambda" for layer in _layers(config or {}))


def _read_model_file(path: Path) -> tuple[dict | None, int | None]:
    """The model config of a .keras or full-model .h5 file (None for an .h5 of weights only) and the number of
    values in its saved weights (optimizer state left out), read without Keras."""
    h5py = require("h5py", "keras")
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
                names = archive.namelist()
                weights = archive.read("model.weights.h5") if "model.weights.h5" in names else None
            params = None
            if weights is not None:
                with h5py.File(io.BytesIO(weights), "r") as f:
                    params = _count_values(h5py, f, skip=("optimizer",))
            return config, params
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                return None, None
            config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
            params = _count_values(h5py, f["model_weights"]) if "model_weights" in f else None
            return config, params
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ZooError(f"{path} is not a readable Keras model file: {type(exc).__name__}: {exc}") from None


def _count_values(h5py, group, skip: tuple[str, ...] = ()) -> int:
    total = 0

    def add(name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and name.split("/")[0] not in skip:
            total += int(obj.size)

    group.visititems(add)
    return total


def _model_file(folder: Path) -> Path | None:
    """The Keras file its card.json's adapter entry names, else the folder's one .keras file, else its one .h5 that
    holds a whole model."""
    named = written_adapter(folder)
    if named.get("kind") in (None, "keras") and isinstance(named.get("file"), str):
        path = inside(folder, named["file"])
        return path if path is not None and path.is_file() and path.suffix in SUFFIXES else None
    if not folder.is_dir():
        return None
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    native = [p for p in files if p.suffix == ".keras"]
    if native:
        return native[0] if len(native) == 1 else None
    legacy = [p for p in files if p.suffix in (".h5", ".hdf5")]
    if len(legacy) != 1:
        return None
    h5py = require("h5py", "keras")
    try:
        with h5py.File(legacy[0], "r") as f:
            return legacy[0] if "model_config" in f.attrs else None
    except OSError:  # not HDF5 after all
        return None


