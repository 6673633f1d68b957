"""ONNX classifiers, run with onnxruntime on the CPU (the `onnx` extra): image models in any input layout, scikit-learn
exports (skl2onnx's ZipMap output included) and text models that take strings.

    {"kind": "onnx", "file": "model.onnx", "layout"?: "NCHW" | "NHWC" | "NHW" | "flat", "scale"?: 255.0,
     "mean"?: [...], "std"?: [...], "reverse_features"?: false, "input"?: "name", "output"?: "name"}

An image model gets zoo2vec's [0, 1] images times `scale`, then (x - mean) / std, in the layout, size and element type
its graph declares; `reverse_features` reverses a flat input (models trained on pixels in reverse order). Without a
card.json the graph says the rest: modality, input_shape, labels (metadata_props, or the class labels of a ZipMap),
parameters, and WinML's Image.NominalPixelRange (the scale).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec.data.images import laid_out, square_shape
from zoo2vec.errors import ZooError, require
from zoo2vec.zoo.adapters import Inferred, ModelSource, model_file, register, written_adapter
from zoo2vec.zoo.blackbox import device
from zoo2vec.zoo.card import ModelCard

LAYOUTS = ("NCHW", "NHWC", "NHW", "flat")
LABEL_KEYS = ("labels", "label_names", "classes", "class_names", "id2label", "names")  # metadata_props keys, any case
# WinML's image metadata: the pixel range the model expects, as adapter settings for [0, 1] input
PIXEL_RANGES = {"NominalRange_0_255": {"scale": 255.0}, "Normalized_0_1": {"scale": 1.0},
                "Normalized_1_1": {"mean": [0.5], "std": [0.5]}}
BATCH = 256  # rows per run for models with a dynamic batch dimension
_NUMPY_TYPES = {"float": np.float32, "double": np.float64, "float16": np.float16, "uint8": np.uint8, "int8": np.int8,
                "int16": np.int16, "int32": np.int32, "int64": np.int64}


@dataclass(frozen=True)
class _Arg:
    """A graph input or output: its name, element type as onnxruntime writes it ("tensor(float)", "seq(map(...))")
    and shape, None for a dimension that is symbolic or unknown."""

    name: str
    type: str
    shape: tuple[int | None, ...] | None

    @property
    def element(self) -> str | None:
        return self.type[len("tensor("):-1] if self.type.startswith("tensor(") else None

    def describe(self) -> str:
        dims = "?" if self.shape is None else ",".join("N" if d is None else str(d) for d in self.shape)
        return f"{self.name!r} {self.type} [{dims}]"


def detect(folder: Path) -> Inferred | None:
    """What an ONNX file's graph says about the model; None unless the folder holds one *.onnx file (or its card.json
    names one)."""
    path = model_file(folder, "onnx", (".onnx",))
    if path is None:
        return None
    onnx = require("onnx", "onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a damaged protobuf may fail in any way inside onnx
        raise ZooError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    where = path.name
    fields: dict[str, Any] = {}
    origin: dict[str, str] = {}
    adapter: dict[str, Any] = {"kind": "onnx", "file": path.name}
    initializers = {t.name for t in model.graph.initializer}
    inputs = [_proto_arg(onnx, v) for v in model.graph.input if v.name not in initializers]
    named = written_adapter(folder).get("input")  # a card.json may name the input of a graph that takes several
    arg = _the_input(inputs, named if isinstance(named, str) else None, where)  # `where`: the model has no name yet
    if arg.element == "string":
        fields["modality"], origin["modality"] = "text", f"{where} graph input {arg.describe()}"
    else:
        layout, shape = _layout(arg, where)
        fields["modality"], origin["modality"] = "image", f"{where} graph input {arg.describe()}"
        adapter["layout"] = layout
        if shape is not None:
            fields["input_shape"] = list(shape)
            origin["input_shape"] = f"{where} graph input {arg.describe()} ({layout}{_square_note(layout, shape)})"
    meta = {p.key: p.value for p in model.metadata_props}
    pixel_range = meta.get("Image.NominalPixelRange")
    if pixel_range in PIXEL_RANGES and fields["modality"] == "image":
        adapter.update(PIXEL_RANGES[pixel_range])
    fields["adapter"] = adapter
    origin["adapter"] = f"{where}" + (f" (metadata Image.NominalPixelRange={pixel_range})" if pixel_range else "")
    labels, label_origin = _label_names(meta, model.graph, where)
    outputs = [_proto_arg(onnx, v) for v in model.graph.output]
    n_classes = _class_count(outputs)
    if labels and (n_classes is None or n_classes == len(labels)):
        fields["label_names"], origin["label_names"] = labels, label_origin
    params, params_origin = _params(onnx, model, where)
    if params:
        fields["params"], origin["params"] = params, params_origin
    fields["tags"] = ["onnx", *([model.producer_name] if model.producer_name else [])]
    origin["tags"] = f"{where} (format, producer_name)"
    if model.doc_string.strip():
        fields["description"], origin["description"] = model.doc_string.strip()[:500], f"{where} doc_string"
    return Inferred(fields, origin)


class OnnxModel:
    """An onnxruntime session as a black box: images are scaled, normalised and laid out as the graph's input wants;
    texts go in as a string tensor. Answers are the graph's [N, C] scores (a ZipMap's maps become rows)."""

    def __init__(self, path: Path, card: ModelCard, spec: dict[str, Any]):
        ort = require("onnxruntime", "onnx")
        self.card = card
        try:
            providers = ["CPUExecutionProvider"]
            if device().startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")  # onnxruntime-gpu
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented for bad graphs
            raise ZooError(f"model {card.name!r}: onnxruntime cannot open {path.name}: {exc}") from None
        self.input = _the_input([_ort_arg(a) for a in self.session.get_inputs()], spec.get("input"), card.name)
        self.output = _the_output([_ort_arg(a) for a in self.session.get_outputs()], spec.get("output"), card.name)
        fixed = self.input.shape[0] if self.input.shape else None
        self.batch = fixed or BATCH
        self.pad = fixed is not None  # a graph with a fixed batch size gets exactly that many rows each run
        if card.modality == "text":
            if self.input.element != "string":
                raise ZooError(f"model {card.name!r}: a text model needs a string input; {path.name} takes "
                               f"{self.input.describe()}")
            return
        if self.input.element not in _NUMPY_TYPES:
            raise ZooError(f"model {card.name!r}: image input {self.input.describe()} is not numeric")
        self.dtype = _NUMPY_TYPES[self.input.element]
        self.layout = spec.get("layout") or _layout(self.input, card.name)[0]
        if self.layout not in LAYOUTS:
            raise ZooError(f"model {card.name!r}: layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        self.sample_shape = _sample_shape(self.layout, card)
        declared = self.input.shape[1:] if self.input.shape else None
        if declared is not None and (len(declared) != len(self.sample_shape) or any(
                d is not None and d != s for d, s in zip(declared, self.sample_shape, strict=True))):
            raise ZooError(f"model {card.name!r}: the card's input_shape {list(card.input_shape)} as {self.layout} is "
                           f"{list(self.sample_shape)}, but the graph takes {self.input.describe()}: fix input_shape "
                           f"or the adapter's layout")
        default_scale = 255.0 if self.dtype == np.uint8 else 1.0  # a uint8 input takes raw pixel values
        self.scale = float(spec.get("scale", default_scale))
        channels = card.input_shape[0]
        self.mean = _per_channel(spec.get("mean"), channels, "mean", card.name)
        self.std = _per_channel(spec.get("std"), channels, "std", card.name)
        self.reverse = bool(spec.get("reverse_features", False))
        if self.reverse and self.layout != "flat":
            raise ZooError(f"model {card.name!r}: reverse_features applies to a flat input, not {self.layout}")

    def predict(self, batch) -> np.ndarray:
        x = self._text(batch) if self.card.modality == "text" else self._image(batch)
        rows = [self._run(x[start:start + self.batch]) for start in range(0, len(x), self.batch)]
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def _text(self, batch) -> np.ndarray:
        texts = np.asarray([str(t) for t in batch], dtype=object)
        rank = len(self.input.shape) if self.input.shape else 1
        return texts.reshape(-1, *[1] * (rank - 1))

    def _image(self, batch) -> np.ndarray:
        x = laid_out(batch, scale=self.scale, mean=self.mean, std=self.std, layout=self.layout)
        if self.layout == "flat" and self.reverse:
            x = x[:, ::-1]
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            x = np.clip(np.rint(x), info.min, info.max)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if self.pad and n < self.batch:
            x = np.concatenate([x, np.repeat(x[-1:], self.batch - n, axis=0)])
        out = self.session.run([self.output.name], {self.input.name: x})[0]
        if isinstance(out, list):  # a ZipMap: one {class label: probability} per row, in the model's class order
            keys = list(out[0]) if out else []
            out = np.asarray([[row[k] for k in keys] for row in out], dtype=np.float32)
        out = np.asarray(out)
        if out.ndim > 2 and all(d == 1 for d in out.shape[2:]):  # e.g. a conv head's [N, C, 1, 1]
            out = out.reshape(out.shape[0], -1)
        return out[:n]


@register("onnx", detect=detect, expects="one *.onnx file", priority=50)
def load(source: ModelSource) -> OnnxModel:
    return OnnxModel(source.file(suffix=".onnx"), source.card, source.spec)




def _proto_arg(onnx, value) -> _Arg:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return _Arg(value.name, "seq(map)" if kind == "sequence_type" else str(kind), None)
    tensor = value.type.tensor_type
    element = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    if not tensor.HasField("shape"):
        return _Arg(value.name, f"tensor({element})", None)
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim)
    return _Arg(value.name, f"tensor({element})", shape)


def _ort_arg(arg) -> _Arg:
    shape = None if arg.shape is None else tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return _Arg(arg.name, arg.type, shape)


def _the_input(inputs: list[_Arg], name: str | None, model: str) -> _Arg:
    if name is not None:
        for arg in inputs:
            if arg.name == name:
                return arg
        raise ZooError(f"model {model!r}: no graph input {name!r}. Inputs: {', '.join(a.name for a in inputs)}")
    if len(inputs) != 1:
        raise ZooError(f"model {model!r}: zoo2vec feeds one input, the graph takes {len(inputs)}: "
                       f"{'; '.join(a.describe() for a in inputs)}")
    return inputs[0]


def _the_output(outputs: list[_Arg], name: str | None, model: str) -> _Arg:
    """The named output, else the first float tensor of rank 2, else a ZipMap's sequence of maps, else the first
    float tensor (its extra dimensions of size 1 are dropped)."""
    if name is not None:
        for arg in outputs:
            if arg.name == name:
                return arg
        raise ZooError(f"model {model!r}: no graph output {name!r}. Outputs: {', '.join(a.name for a in outputs)}")
    floats = [a for a in outputs if a.element in ("float", "double", "float16")]
    for arg in floats:
        if arg.shape is not None and len(arg.shape) == 2:
            return arg
    for arg in outputs:
        if arg.type.startswith("seq(map"):
            return arg
    if floats:
        return floats[0]
    raise ZooError(f"model {model!r}: no output holds class scores (a float tensor [N, C] or a ZipMap). Outputs: "
                   f"{'; '.join(a.describe() for a in outputs)}")


def _class_count(outputs: list[_Arg]) -> int | None:
    try:
        out = _the_output(outputs, None, "?")
    except ZooError:
        return None
    return out.shape[1] if out.shape is not None and len(out.shape) == 2 else None


def _layout(arg: _Arg, model: str) -> tuple[str, tuple[int, int, int] | None]:
    """The input's layout and the image shape (C, H, W) it implies, None where a dimension is symbolic."""
    shape = arg.shape
    if shape is None or len(shape) not in (2, 3, 4):
        raise ZooError(f"model {model!r}: image input {arg.describe()} is none of [N,C,H,W], [N,H,W,C], [N,H,W] "
                       "or a flat [N,F]")
    if len(shape) == 2:
        return "flat", square_shape(shape[1])
    if len(shape) == 3:
        return "NHW", (1, shape[1], shape[2]) if None not in shape[1:] else None
    _, a, b, c = shape
    if c in (1, 3) and a not in (1, 3):
        return "NHWC", (c, a, b) if None not in (a, b) else None
    return "NCHW", (a, b, c) if None not in (a, b, c) else None



def _square_note(layout: str, shape) -> str:
    return f": {shape[1] * shape[2] * shape[0]} features read as a {shape[0]}x{shape[1]}x{shape[2]} image" \
        if layout == "flat" else ""


def _sample_shape(layout: str, card: ModelCard) -> tuple[int, ...]:
    if card.input_shape is None:
        raise ZooError(f"image model {card.name!r} needs input_shape (channels, height, width) in its card")
    c, h, w = card.input_shape
    if layout == "NHW" and c != 1:
        raise ZooError(f"model {card.name!r}: an [N,H,W] input takes one channel, the card says {c}")
    return {"NCHW": (c, h, w), "NHWC": (h, w, c), "NHW": (h, w), "flat": (c * h * w,)}[layout]


def _per_channel(value, channels: int, key: str, model: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if len(array) not in (1, channels):
        raise ZooError(f"model {model!r}: adapter {key} has {len(array)} values for {channels} channels")
    return array.reshape(1, -1, 1, 1)


def _label_names(meta: dict[str, str], graph, where: str) -> tuple[list[str] | None, str]:
    """Class names from metadata_props (a JSON list, an id2label object or comma-separated), else from the class
    labels of a classifier node (skl2onnx's ZipMap, LinearClassifier, TreeEnsembleClassifier, ...)."""
    for key, value in meta.items():
        if key.lower() in LABEL_KEYS:
            names = _parse_labels(value)
            if names:
                return names, f"{where} metadata_props {key!r}"
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and attr.strings:
                return [s.decode() for s in attr.strings], f"{where} {node.op_type} classlabels_strings"
            if attr.name in ("classlabels_int64s", "classlabels_ints") and attr.ints:
                return [str(i) for i in attr.ints], f"{where} {node.op_type} {attr.name}"
    return None, ""


def _parse_labels(value: str) -> list[str] | None:
    try:
        data = json.loads(value)
    except ValueError:
        data = [s for s in value.replace("\n", ",").split(",")]
    if isinstance(data, dict):
        if all(str(k).lstrip("-").isdigit() for k in data):  # id2label
            data = [data[k] for k in sorted(data, key=int)]
        elif all(isinstance(v, int) for v in data.values()):  # label2id
            data = sorted(data, key=data.get)
        else:
            return None
    if not isinstance(data, list):
        return None
    names = [str(x).strip() for x in data]
    names = [n for n in names if n]
    return names if len(names) >= 2 else None


def _params(onnx, model, where: str) -> tuple[int, str]:
    """Weights in initializers, in Constant nodes' tensors, and in the arrays of ONNX-ML nodes (a LinearClassifier's
    coefficients, a tree ensemble's node values): skl2onnx keeps a model's weights in node attributes."""
    FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    total = sum(math.prod(t.dims) for t in model.graph.initializer)
    parts = ["initializers"] if total else []
    in_nodes = 0
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in FLOAT_TYPES:  # not a shape constant
                in_nodes += math.prod(attr.t.dims)
            elif attr.type == onnx.AttributeProto.FLOATS and node.domain == "ai.onnx.ml":
                in_nodes += len(attr.floats)
    if in_nodes:
        parts.append("node attributes")
    return total + in_nodes, f"{where}: values in its {' and '.join(parts)}"
