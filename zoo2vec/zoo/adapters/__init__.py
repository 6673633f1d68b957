"""Adapters: how a model folder becomes a black box, one module per format, looked up by the card's adapter kind.

Each module of this package registers its kinds with `@register("kind")`; other packages add formats through the
`zoo2vec.adapters` entry-point group (name = the kind, object = a loader), so no central list names them all:

    [project.entry-points."zoo2vec.adapters"]
    onnx = "my_package.onnx_adapter:load"

A loader takes a `ModelSource` (the folder, its card, the caller's trust settings) and returns a `BlackBoxModel`;
nothing runs until predict() is called. Adding a format is one new module here (or one entry point) plus its tests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo2vec.errors import ZooError
from zoo2vec.zoo.blackbox import BlackBoxModel
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.layout import CARD_FILE

ENTRY_POINT_GROUP = "zoo2vec.adapters"
ADAPTER_VERSION = "1"  # part of every fingerprint: a change in how we call models re-probes them


@dataclass(frozen=True)
class ModelSource:
    """What a loader gets: a model folder, its card, and what the caller allows."""

    folder: Path
    card: ModelCard
    trust_pickle: bool = False

    @property
    def spec(self) -> dict[str, Any]:
        """The card's adapter entry (kind and the format's own settings)."""
        return dict(self.card.adapter)

    def file(self, key: str = "file", *, suffix: str | None = None) -> Path:
        """The file the adapter entry names under `key`, checked to exist inside the model folder."""
        name = self.spec.get(key)
        if not name:
            raise ZooError(f"model {self.card.name!r}: adapter {self.spec.get('kind')!r} needs a {key!r} entry")
        path = (self.folder / name).resolve()
        if self.folder.resolve() not in path.parents:
            raise ZooError(f"model {self.card.name!r}: adapter file {name!r} points outside its folder")
        if not path.is_file():
            raise ZooError(f"model {self.card.name!r}: adapter file {path} is missing")
        if suffix is not None and path.suffix != suffix:
            raise ZooError(f"model {self.card.name!r}: adapter {self.spec.get('kind')!r} expects a {suffix} file, "
                           f"got {path.name}")
        return path


Loader = Callable[[ModelSource], BlackBoxModel]
_LOADERS: dict[str, Loader] = {}  # zoo2vec's own formats, filled by this package's modules as they are imported


def register(kind: str) -> Callable[[Loader], Loader]:
    """Decorator: make `loader` the way to open models whose card says adapter.kind == kind."""

    def add(loader: Loader) -> Loader:
        _LOADERS[kind] = loader
        return loader

    return add


def _own() -> dict[str, Loader]:
    """zoo2vec's own formats: every module of this package, imported (each registers its kinds on import)."""
    _import_modules()
    return _LOADERS


@functools.cache
def _import_modules():
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def _plug_ins() -> dict[str, Any]:
    """Formats other packages add, by kind (entry points, not loaded yet); none replaces one of zoo2vec's own."""
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP) if point.name not in _own()}


def available() -> list[str]:
    """Every adapter kind this installation can load."""
    return sorted({*_own(), *_plug_ins()})


def loader_for(kind: str | None, model: str = "?") -> Loader:
    """The loader of a kind. A plug-in is imported only when its kind is asked for, so one that is broken fails
    the models of its own format, not every model."""
    if kind in _own():
        return _LOADERS[kind]
    point = _plug_ins().get(kind)
    if point is None:
        raise ZooError(f"model {model!r}: unknown adapter kind {kind!r} in {CARD_FILE}. "
                       f"Available: {', '.join(available())}")
    try:
        return point.load()
    except Exception as exc:  # a third-party plug-in may fail in any way; say which one
        raise ZooError(f"model {model!r}: the adapter plug-in for {kind!r} ({point.value}) does not load: "
                       f"{type(exc).__name__}: {exc}") from None


def load_model(folder: Path, *, trust_pickle: bool = False) -> BlackBoxModel:
    """Open one model folder as a black box. Nothing runs until predict() is called."""
    folder = Path(folder)
    card = ModelCard.load(folder)
    return loader_for(card.adapter.get("kind"), card.name)(ModelSource(folder, card, trust_pickle=trust_pickle))


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
