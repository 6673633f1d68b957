"""Adapters: how a model folder becomes a black box, one module per format, looked up by the card's adapter kind.

Each module of this package registers its kinds with `@register("kind", detect=...)`; other packages add formats
through the `zoo2vec.adapters` entry-point group (name = the kind, object = a loader), so no central list names them all:

    [project.entry-points."zoo2vec.adapters"]
    my-format = "my_package.my_adapter:load"

A loader takes a `ModelSource` (the folder, its card, the caller's trust settings) and returns a `BlackBoxModel`;
nothing runs until predict() is called. A detector takes a model folder and says what the format's own files tell
about the model (`Inferred`: card fields, the adapter entry among them, and where each came from), or None when
the folder is not of its format; so a folder needs no `card.json`. `read_card` merges the two: a `card.json`
beside the model overrides the inferred card field by field. Adding a format is one new module here (or one entry
point) plus its tests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo2vec.errors import ZooError
from zoo2vec.zoo.blackbox import BlackBoxModel
from zoo2vec.zoo.card import Inferred, ModelCard, card_json
from zoo2vec.zoo.hub_files import readme_fields
from zoo2vec.zoo.layout import CARD_FILE, card_path

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
        path = inside(self.folder, name)
        if path is None:
            raise ZooError(f"model {self.card.name!r}: adapter file {name!r} points outside its folder")
        if not path.is_file():
            raise ZooError(f"model {self.card.name!r}: adapter file {path} is missing")
        if suffix is not None and path.suffix != suffix:
            raise ZooError(f"model {self.card.name!r}: adapter {self.spec.get('kind')!r} expects a {suffix} file, "
                           f"got {path.name}")
        return path


def inside(folder: Path, name: str) -> Path | None:
    """`folder/name` when it stays in the model folder, and so does what it links to (a Hugging Face cache snapshot's
    files link into the cache's blobs, which count as inside); None when either leads elsewhere."""
    base = Path(os.path.normpath(Path(folder).absolute()))
    path = Path(os.path.normpath(base / name))
    if base not in path.parents:
        return None
    snapshot = base.parent.name == "snapshots" and base.parent.parent.name.startswith("models--")
    allowed = (base.parents[2] if snapshot else base).resolve()
    target = path.resolve()
    return path if allowed in target.parents else None


Loader = Callable[[ModelSource], BlackBoxModel]
Detector = Callable[[Path], "Inferred | None"]
# (folder, adapter entry) -> (parameter count, where it was read), or None; reads weight files, never runs model code
ParamCounter = Callable[[Path, dict], "tuple[int, str] | None"]
_LOADERS: dict[str, Loader] = {}  # zoo2vec's own formats, filled by this package's modules as they are imported
_DETECTORS: dict[str, tuple[int, Detector]] = {}  # kind -> (priority, detector); lower priority is asked first
_EXPECTS: dict[str, str] = {}  # kind -> what a folder of that format holds, for the error that lists them
_PARAM_COUNTERS: dict[str, ParamCounter] = {}  # kind -> how to count a model's parameters from its weight files


def register(kind: str, *, detect: Detector | None = None, expects: str = "", priority: int = 50,
             params: ParamCounter | None = None) -> Callable[[Loader], Loader]:
    """Decorator: make `loader` the way to open models whose card says adapter.kind == kind. `detect` recognises a
    folder of this format without a card (`expects` says in a few words what it looks for); a format that others
    contain (a Hugging Face cache snapshot holds a transformers folder) asks first with a lower `priority`.
    `params` counts a model's parameters from its weight files when neither its card nor its detector says them."""

    def add(loader: Loader) -> Loader:
        _LOADERS[kind] = loader
        if params is not None:
            _PARAM_COUNTERS[kind] = params
        if detect is not None:
            _DETECTORS[kind] = (priority, detect)
        _EXPECTS[kind] = expects or "a card.json whose adapter entry names it"
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


def detector_for(kind: str) -> Detector | None:
    _own()
    entry = _DETECTORS.get(kind)
    return entry[1] if entry else None


def detect(folder: Path, *, exclude: tuple[str, ...] = ()) -> Inferred | None:
    """What the first format that recognises the folder reads from it (formats in `exclude` not asked); None when
    none does."""
    _own()
    for kind, (_, detector) in sorted(_DETECTORS.items(), key=lambda item: item[1][0]):
        found = None if kind in exclude else detector(folder)
        if found is not None:
            return found
    return None


def formats_accepted() -> str:
    """Every format a folder may be in, one per line, for the error of a folder that is none of them."""
    _own()
    return "\n".join(f"  {kind}: {_EXPECTS.get(kind, 'a card.json whose adapter entry names it')}"
                     for kind in available())


@dataclass(frozen=True)
class ResolvedCard:
    """A model's card and where each of its fields came from (card.json, a file of the model, the folder's name)."""

    card: ModelCard
    origin: dict[str, str]


def read_card(folder: Path, name: str | None = None) -> ResolvedCard:
    """The card zoo2vec indexes for a model folder: what its format's files say (license, tags, training data and
    description from a Hugging Face README's front matter where there is one), overridden field by field by a
    card.json beside it; `name` (else the folder's name) when neither names the model. Raises ZooError for a folder
    that is no model zoo2vec knows, SkippedModel for one that is a model but not a classifier."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ZooError(f"{folder} is not a folder: a model is a folder of files (give the folder that holds it)")
    written = card_json(folder) or {}
    kind = written.get("adapter", {}).get("kind") if isinstance(written.get("adapter"), dict) else None
    if kind is not None:
        detector = detector_for(kind)
        inferred = (detector(folder) if detector else None) or Inferred({})
    else:
        inferred = detect(folder)
        if inferred is None and "modality" in written:  # a whole card without an adapter: loading it will say so
            inferred = Inferred({})
        elif inferred is None:
            where = f"{folder} has no {CARD_FILE} with an adapter entry" if written else f"{folder} has no {CARD_FILE}"
            raise ZooError(f"{where} and is in none of the formats zoo2vec reads without one. Formats:\n"
                           f"{formats_accepted()}\nAdd a {CARD_FILE} naming its adapter, or save it in one of these.")
    inferred = inferred | readme_fields(folder)  # a README says license, tags, datasets: over what files guess
    fields = dict(inferred.fields)
    origin = dict(inferred.origin)
    if "name" not in fields:
        fields["name"], origin["name"] = name or folder.name, "the folder's name"
    for key, value in written.items():
        if key == "adapter" and isinstance(value, dict) and isinstance(fields.get("adapter"), dict):
            value = {**fields["adapter"], **value}
        fields[key], origin[key] = value, CARD_FILE
    if fields.get("params") is None:
        counted = count_params(folder, fields.get("adapter"))
        if counted is not None:
            fields["params"], origin["params"] = counted
    return ResolvedCard(ModelCard.from_dict(fields), origin)


def count_params(folder: Path, adapter: Any) -> tuple[int, str] | None:
    """A model's parameter count read from its weight files by its format's counter (no model code runs), and
    where it was read; None when the format has no counter or its files do not say (loading will tell why)."""
    _own()
    counter = _PARAM_COUNTERS.get(adapter.get("kind")) if isinstance(adapter, dict) else None
    if counter is None:
        return None
    try:
        return counter(Path(folder), adapter)
    except (ZooError, OSError, ValueError, KeyError, TypeError):
        return None


def written_adapter(folder: Path) -> dict[str, Any]:
    """The adapter entry of the folder's card.json; {} without one (or when it does not read: read_card says why)."""
    try:
        adapter = json.loads(card_path(folder).read_text()).get("adapter")
    except (OSError, ValueError, AttributeError):
        return {}
    return adapter if isinstance(adapter, dict) else {}


def model_file(folder: Path, kind: str, suffixes: tuple[str, ...]) -> Path | None:
    """The one file of a format in a folder, for its detector: the one its card.json's adapter entry names (for
    `kind`), else the only file with one of `suffixes`; None when there is none, or several and no card names one."""
    folder = Path(folder)
    named = written_adapter(folder)
    if named.get("kind") in (None, kind) and isinstance(named.get("file"), str):
        path = inside(folder, named["file"])
        return path if path is not None and path.is_file() and path.suffix in suffixes else None
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in suffixes] if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def load_model(folder: Path, *, card: ModelCard | None = None, trust_pickle: bool = False) -> BlackBoxModel:
    """Open one model folder as a black box (its card read with `read_card` unless given). Nothing runs until
    predict() is called."""
    folder = Path(folder)
    card = card or read_card(folder).card
    return loader_for(card.adapter.get("kind"), card.name)(ModelSource(folder, card, trust_pickle=trust_pickle))


def fingerprint(folder: Path) -> str:
    """Hash of every file in the model folder (card included) and of the adapter code version. A file that links
    into a Hugging Face cache's blobs/ is hashed by its blob's name, which is already its content's hash, so a
    cached model of gigabytes is not read."""
    folder = Path(folder)
    h = hashlib.sha256(f"adapter-v{ADAPTER_VERSION}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        link = Path(os.readlink(path)) if path.is_symlink() else None
        if link is not None and link.parent.name == "blobs":  # the first hop: a blob may link on to a shared store
            h.update(f"blob:{link.name}:{path.stat().st_size}".encode())
            continue
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
