"""scikit-learn classifiers with predict_proba: skops files (the `skops` extra), and joblib pickles (refused unless the
caller trusts them).

    {"kind": "skops" | "sklearn-pickle", "file": "model.skops" | "model.pkl", "scale"?: 16.0,
     "layout"?: "NCHW" | "NHWC"}

A model whose first step is a text vectoriser (TfidfVectorizer, CountVectorizer, HashingVectorizer) gets the list of
strings; any other gets zoo2vec's [0, 1] images flattened (channels first, or last with layout NHWC) times `scale`.
A skops file holding types beyond skops' trusted defaults is refused unless trust_pickle=True, then loaded trusting
exactly those. Without a card.json the estimator says modality, input_shape (n_features_in_ as a square image), labels
(classes_), parameters and tags; for a pickle, which is never run to be described, only what its opcodes name.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import math
import pickletools
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec.data.images import square_shape
from zoo2vec.errors import UntrustedCheckpointError, ZooError, require
from zoo2vec.zoo.adapters import Inferred, ModelSource, model_file, register
from zoo2vec.zoo.card import ModelCard

TEXT_VECTORISERS = ("TfidfVectorizer", "CountVectorizer", "HashingVectorizer")  # of sklearn.feature_extraction.text
LAYOUTS = ("NCHW", "NHWC")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
NOT_PARAMETERS = {"classes_", "n_iter_", "n_features_in_", "feature_names_in_", "n_outputs_", "n_classes_"}
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
                   "STRING"}
SCAN_BYTES = 1 << 20  # a pickle's opcodes are read this far, at most: the classes come first, arrays after


@dataclass(frozen=True)
class _Estimator:
    """What a fitted estimator says about itself, read from the object or from a skops file's schema."""

    classes: list[str]  # class names, outermost first (Pipeline, its steps, ...)
    first: str  # the class that receives the input: the first step of a pipeline
    last: str  # the class that answers: the last step
    n_features: int | None
    labels: list[str] | None
    params: int | None


def detect_skops(folder: Path) -> Inferred | None:
    """A skops file: loaded (safely) and described when it holds only skops' trusted types, else described from its
    schema alone (nothing is loaded)."""
    path = model_file(folder, "skops", (".skops",))
    if path is None:
        return None
    sio = require("skops.io", "skops")
    untrusted = _untrusted(sio, path)
    if untrusted:
        return _inferred(_from_schema(path), path.name, f"{path.name} schema.json", "skops")
    return _inferred(_from_object(_load_skops(sio, path, [], path.name)), path.name, path.name, "skops")


def detect_pickle(folder: Path) -> Inferred | None:
    """A pickle whose opcodes name scikit-learn classes. Never unpickled here: only the classes it names and, where
    its state says it before any array, n_features_in_ are read."""
    path = model_file(folder, "sklearn-pickle", PICKLE_SUFFIXES)
    if path is None:
        return None
    globals_, n_features = _scan_pickle(path)
    classes = [name for module, name in globals_ if module.split(".")[0] == "sklearn"]
    if not classes:
        return None
    estimator = _Estimator(classes, classes[0] if classes[0] != "Pipeline" or len(classes) == 1 else classes[1],
                           classes[-1], n_features, None, None)
    return _inferred(estimator, path.name, f"{path.name} (its pickle opcodes, not unpickled)", "sklearn-pickle")


class SklearnModel:
    """A fitted estimator as a black box: predict_proba on the list of texts, or on the flattened images times
    `scale`."""

    def __init__(self, estimator, card: ModelCard, spec: dict[str, Any]):
        self.estimator = estimator
        self.card = card
        name = type(estimator).__name__
        if _steps(estimator):
            name += f" ending in {type(_end(estimator, -1)).__name__}"
        if not hasattr(estimator, "predict_proba"):  # False too for an SVC fitted without probability=True
            raise ZooError(f"model {card.name!r}: the {name} has no predict_proba, so it gives no class probabilities "
                           "(an SVC needs probability=True, a LinearSVC or RidgeClassifier a CalibratedClassifierCV)")
        self.scale = float(spec.get("scale", 1.0))
        self.layout = spec.get("layout", "NCHW")
        if self.layout not in LAYOUTS:
            raise ZooError(f"model {card.name!r}: layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        n_features = getattr(estimator, "n_features_in_", None)
        size = math.prod(card.input_shape) if card.modality == "image" and card.input_shape else None
        if size is not None and isinstance(n_features, int | np.integer) and size != n_features:
            raise ZooError(f"model {card.name!r}: the {name} takes {n_features} features, the card's input_shape "
                           f"{list(card.input_shape)} makes {size}")

    def predict(self, batch) -> np.ndarray:
        if self.card.modality == "text":
            return self.estimator.predict_proba([str(t) for t in batch])
        x = np.asarray(batch, dtype=np.float32)
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        return self.estimator.predict_proba(x.reshape(len(x), -1) * np.float32(self.scale))


@register("skops", detect=detect_skops, expects="one *.skops file", priority=50)
def load_skops(source: ModelSource) -> SklearnModel:
    sio = require("skops.io", "skops")
    path = source.file(suffix=".skops")
    untrusted = _untrusted(sio, path)
    if untrusted and not source.trust_pickle:
        raise UntrustedCheckpointError(
            f"model {source.card.name!r}: {path.name} holds types skops does not trust by default, whose loading can "
            f"run their code: {', '.join(untrusted)}. Pass trust_pickle=True (CLI: --trust-pickle) if you trust its "
            "source; they are then trusted for this file alone.")
    return SklearnModel(_load_skops(sio, path, untrusted, source.card.name), source.card, source.spec)


@register("sklearn-pickle", detect=detect_pickle, expects="one *.pkl or *.joblib file of a scikit-learn estimator",
          priority=50)
def load_pickle(source: ModelSource) -> SklearnModel:
    path = source.file()
    if path.suffix not in PICKLE_SUFFIXES:
        raise ZooError(f"model {source.card.name!r}: adapter 'sklearn-pickle' expects a {', '.join(PICKLE_SUFFIXES)} "
                       f"file, got {path.name}")
    if not source.trust_pickle:
        raise UntrustedCheckpointError(
            f"model {source.card.name!r}: {path.name} is a pickled scikit-learn model, which can run arbitrary code "
            "when loaded. Save it with skops instead, or pass trust_pickle=True (CLI: --trust-pickle) if you trust "
            "its source.")
    import joblib
    import sklearn

    try:
        estimator = joblib.load(path)
    except Exception as exc:  # an old pickle fails in any way: a module moved, an attribute renamed, a class gone
        raise ZooError(
            f"model {source.card.name!r}: {path.name} does not load in scikit-learn {sklearn.__version__}: "
            f"{type(exc).__name__}: {exc}. It was probably pickled by another version; load it there and save it "
            "again (with skops, for a file that loads anywhere)") from None
    return SklearnModel(estimator, source.card, source.spec)


def _untrusted(sio, path: Path) -> list[str]:
    try:
        return list(sio.get_untrusted_types(file=path))
    except Exception as exc:  # not a zip, no schema.json, a schema of a newer skops
        raise ZooError(f"{path} is not a readable skops file: {type(exc).__name__}: {exc}") from None


def _load_skops(sio, path: Path, trusted: list[str], model: str):
    try:
        return sio.load(path, trusted=trusted)
    except Exception as exc:  # a type that moved since it was saved, a damaged array
        raise ZooError(f"model {model!r}: {path.name} does not load with skops: {type(exc).__name__}: {exc}") from None


def _inferred(estimator: _Estimator, file: str, where: str, kind: str) -> Inferred:
    """Card fields from what an estimator says about itself."""
    fields: dict[str, Any] = {"adapter": {"kind": kind, "file": file}, "tags": list(dict.fromkeys(estimator.classes))}
    origin = {"adapter": file, "tags": f"{where}: estimator classes"}
    if estimator.first in TEXT_VECTORISERS:
        fields["modality"], origin["modality"] = "text", f"{where}: starts with a {estimator.first}"
    else:
        fields["modality"] = "image"
        origin["modality"] = f"{where}: starts with a {estimator.first}, no text vectoriser"
        shape = square_shape(estimator.n_features)
        if shape is not None:
            c, h, w = shape
            fields["input_shape"] = list(shape)
            origin["input_shape"] = (f"{where}: {estimator.first} n_features_in_={estimator.n_features}, "
                                     f"read as a {c}x{h}x{w} image")
    if estimator.labels:
        fields["label_names"], origin["label_names"] = estimator.labels, f"{where}: {estimator.last} classes_"
    if estimator.params:
        fields["params"] = estimator.params
        origin["params"] = f"{where}: numbers in the fitted attributes (coef_, intercept_, ...) of its estimators"
    return Inferred(fields, origin)



# --- a fitted estimator, loaded


def _from_object(estimator) -> _Estimator:
    first, last = _end(estimator, 0), _end(estimator, -1)
    labels = getattr(last, "classes_", None)
    n_features = getattr(first, "n_features_in_", None)
    return _Estimator(classes=[type(e).__name__ for e in _estimators(estimator)], first=type(first).__name__,
                      last=type(last).__name__, n_features=int(n_features) if n_features is not None else None,
                      labels=[str(c) for c in labels] if labels is not None else None,
                      params=_parameter_count(estimator) or None)


def _steps(estimator) -> list:
    """A pipeline's steps (passthrough ones left out); [] for anything else."""
    steps = getattr(estimator, "steps", None)
    if not isinstance(steps, list):
        return []
    return [step for _, step in steps if step is not None and step != "passthrough"]


def _end(estimator, which: int):
    """The first (0) or last (-1) estimator of a pipeline, nested pipelines opened."""
    steps = _steps(estimator)
    return _end(steps[which], which) if steps else estimator


def _estimators(estimator, seen=None) -> list:
    """The estimator and every estimator inside it (pipeline steps, fitted sub-estimators), outermost first."""
    from sklearn.base import BaseEstimator

    seen = set() if seen is None else seen
    if id(estimator) in seen:
        return []
    seen.add(id(estimator))
    found = [estimator]
    for value in vars(estimator).values():
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, tuple) and len(item) >= 2:  # a pipeline's (name, step)
                item = item[1]
            if isinstance(item, BaseEstimator):
                found += _estimators(item, seen)
    return found


def _parameter_count(estimator) -> int:
    """Numbers in the fitted array attributes (names ending in "_": coef_, intercept_, mean_, idf_, ...) of every
    estimator in it, bookkeeping (classes_, n_iter_) left out."""
    total = 0
    for part in _estimators(estimator):
        for key, value in vars(part).items():
            if key.endswith("_") and not key.startswith("__") and key not in NOT_PARAMETERS \
                    and isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
                total += value.size
    return total


# --- a skops file, from its schema (nothing loaded)


def _from_schema(path: Path) -> _Estimator:
    """What a skops file's schema.json says about the estimator in it: its classes, the first step's n_features_in_
    and the last step's classes_ (read from the file's .npy without pickles)."""
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
        classes = [node["__class__"] for node in _schema_objects(schema)]
        first, last = _schema_end(schema, 0), _schema_end(schema, -1)
        n_features = _schema_attr(first, "n_features_in_")
        labels = _schema_array(archive, _schema_attrs(last).get("classes_"))
    return _Estimator(classes, first.get("__class__", "?"), last.get("__class__", "?"),
                      n_features if isinstance(n_features, int) else None,
                      [str(c) for c in labels] if labels is not None else None, None)


def _schema_attrs(node: dict) -> dict:
    """An ObjectNode's attributes (attribute name -> node)."""
    content = node.get("content") if isinstance(node, dict) else None
    inner = content.get("content") if isinstance(content, dict) else None
    return inner if isinstance(inner, dict) else {}


def _schema_attr(node: dict, name: str):
    value = _schema_attrs(node).get(name)
    if isinstance(value, dict) and value.get("is_json"):
        try:
            return json.loads(value["content"])
        except (TypeError, ValueError):
            return None
    return None


def _schema_steps(node: dict) -> list[dict]:
    steps = _schema_attrs(node).get("steps") if node.get("__class__") == "Pipeline" else None
    items = steps.get("content") if isinstance(steps, dict) else None
    found = []
    for item in items if isinstance(items, list) else []:
        pair = item.get("content") if isinstance(item, dict) else None
        if isinstance(pair, list) and len(pair) == 2 and pair[1].get("__loader__") == "ObjectNode":
            found.append(pair[1])
    return found


def _schema_end(node: dict, which: int) -> dict:
    steps = _schema_steps(node)
    return _schema_end(steps[which], which) if steps else node


def _schema_objects(node) -> list[dict]:
    """Every ObjectNode of the schema, outermost first."""
    found = []
    if isinstance(node, dict):
        if node.get("__loader__") == "ObjectNode":
            found.append(node)
        for value in node.values():
            found += _schema_objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _schema_objects(value)
    return found


def _schema_array(archive: zipfile.ZipFile, node) -> np.ndarray | list | None:
    if not isinstance(node, dict) or node.get("__loader__") != "NdArrayNode":
        return None
    try:
        if node.get("type") == "numpy":
            return np.load(io.BytesIO(archive.read(node["file"])), allow_pickle=False)
        if node.get("type") == "json":
            return list(json.loads(node["content"]) if isinstance(node["content"], str) else node["content"])
    except (KeyError, ValueError, TypeError):  # an object array (stored pickled) or an unknown form: no labels
        return None
    return None


# --- a pickle, from its opcodes (nothing unpickled)


def _scan_pickle(path: Path) -> tuple[list[tuple[str, str]], int | None]:
    """The (module, name) of every class a pickle names, in order, and the first n_features_in_ its state holds,
    read from its opcodes without running them. joblib writes arrays as raw bytes inside the stream, where the opcodes
    end to pickletools: what came before (the estimators' classes, usually their n_features_in_) is what is read."""
    raw = _decompressed(path)
    globals_: list[tuple[str, str]] = []
    strings: list[str] = []  # strings pushed so far, for STACK_GLOBAL
    memo: dict[int, str] = {}  # the memoised strings, by memo index
    memoised = 0
    top = None  # the last thing pushed, when it is a string
    n_features = None
    with contextlib.suppress(Exception):  # the raw bytes of an array, or the cut: the opcodes read so far stand
        for opcode, arg, _ in pickletools.genops(raw):
            name = opcode.name
            if name in _STRING_OPCODES:
                top = str(arg)
                strings.append(top)
                continue
            if name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):  # the stack is unchanged: `top` stays
                index = memoised if name == "MEMOIZE" else int(arg)
                memoised += name == "MEMOIZE"
                if top is not None:
                    memo[index] = top
                continue
            if name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                top = memo[int(arg)]
                strings.append(top)
                continue
            if name == "GLOBAL":
                module, _, cls = str(arg).partition(" ")
                globals_.append((module, cls))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                globals_.append((strings[-2], strings[-1]))
            elif name in ("BININT", "BININT1", "BININT2", "INT", "LONG1") and top == "n_features_in_" \
                    and n_features is None:  # the value of the state's "n_features_in_" key
                n_features = int(arg)
            top = None
    return globals_, n_features


def _decompressed(path: Path) -> bytes:
    """The start of a file's pickle stream (SCAN_BYTES), joblib's compressions (zlib, gzip, bz2, xz, lzma) undone;
    nothing for a zip archive (torch.save's format, a skops file)."""
    with path.open("rb") as f:
        head = f.read(6)
    if head[:2] == b"PK":
        return b""
    try:
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path) as f:
                return f.read(SCAN_BYTES)
        if head[:3] == b"BZh":
            with bz2.open(path) as f:
                return f.read(SCAN_BYTES)
        if head == b"\xfd7zXZ\x00" or head[:3] == b"\x5d\x00\x00":
            with lzma.open(path) as f:
                return f.read(SCAN_BYTES)
        if head[:1] == b"\x78":  # joblib's zlib: one stream
            with path.open("rb") as f:
                return zlib.decompressobj().decompress(f.read(SCAN_BYTES), SCAN_BYTES)
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return b""
    with path.open("rb") as f:
        return f.read(SCAN_BYTES)
