"""ModelCard: what a zoo publishes about a model, next to the black box itself."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo2vec.errors import ZooError
from zoo2vec.zoo.layout import CARD_FILE, card_path

MODALITIES = ("image", "text")
# a folder's name, or a Hugging Face cache model's ORG/NAME@REV
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?(@[A-Za-z0-9._-]{1,64})?$")


@dataclass(frozen=True)
class ModelCard:
    """Metadata of one model. Only `name` and `modality` are required; the rest may be missing,
    terse or wrong, as on real zoos.

    `input_shape` (channels, height, width) tells zoo2vec how to feed an image model: float32
    arrays in [0, 1], NCHW. `adapter` says how to reach the model (see zoo.adapters).
    """

    name: str
    modality: str
    label_names: tuple[str, ...] | None = None
    training_data: str = ""
    params: int | None = None
    license: str = "unknown"
    source: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    input_shape: tuple[int, int, int] | None = None
    adapter: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _check_name(self.name)
        if self.modality not in MODALITIES:
            raise ZooError(f"model {self.name!r}: modality {self.modality!r} is not one of {', '.join(MODALITIES)}")
        # JSON and callers bring lists and floats; tuples and ints make a loaded card equal to the saved one
        if self.label_names is not None:
            object.__setattr__(self, "label_names", tuple(str(x) for x in self.label_names))
        object.__setattr__(self, "tags", tuple(str(t) for t in self.tags))
        object.__setattr__(self, "input_shape", _input_shape(self.name, self.input_shape))
        if self.modality == "image" and self.input_shape is None:
            raise ZooError(f"image model {self.name!r} needs input_shape (channels, height, width) in its card")
        if self.params is not None:
            object.__setattr__(self, "params", int(self.params))

    def text(self) -> str:
        """The card as one passage, for text search."""
        parts = [self.name.replace("-", " ").replace("_", " "), self.description, self.training_data]
        if self.label_names:
            parts.append("classes: " + ", ".join(self.label_names))
        if self.tags:
            parts.append("tags: " + ", ".join(self.tags))
        return ". ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("label_names", "tags", "input_shape"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ZooError(f"unknown card field(s) {unknown}; known fields: {sorted(known)}")
        if "name" not in data or "modality" not in data:
            raise ZooError("a card needs at least 'name' and 'modality'")
        return cls(**data)

    @property
    def file_name(self) -> str:
        """The name as one file name (ORG/NAME@REV -> ORG--NAME@REV), for caches keyed by model."""
        return self.name.replace("/", "--")

    def save(self, folder: Path) -> Path:
        path = card_path(folder)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> ModelCard:
        """The card.json of a folder, whole (adapters.read_card also infers what a card.json leaves out)."""
        data = card_json(folder)
        if data is None:
            raise ZooError(f"{folder} has no {CARD_FILE}: every model folder needs one")
        return cls.from_dict(data)


def card_json(folder: Path) -> dict[str, Any] | None:
    """What a folder's card.json holds, None without one; ZooError when it is no JSON object."""
    path = card_path(folder)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ZooError(f"{path} must hold a JSON object")
    return data


def _check_name(name) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ZooError(
            f"bad model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(a Hugging Face cache model is named ORG/NAME@REV)"
        )


def _input_shape(name: str, input_shape) -> tuple[int, int, int] | None:
    if input_shape is None:
        return None
    shape = tuple(int(x) for x in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ZooError(f"model {name!r}: input_shape must be (channels, height, width), got {input_shape!r}")
    return shape


@dataclass(frozen=True)
class Inferred:
    """What a format's own files say about a model: card fields (the `adapter` entry among them) and, per field,
    where it was read, e.g. {"label_names": "config.json id2label"}."""

    fields: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)

    def __or__(self, other: Inferred) -> Inferred:
        """`other`'s fields over these (tags are joined, and so are their origins)."""
        fields, origin = {**self.fields, **other.fields}, {**self.origin, **other.origin}
        if "tags" in self.fields and "tags" in other.fields:
            fields["tags"] = list(dict.fromkeys([*self.fields["tags"], *other.fields["tags"]]))
            origin["tags"] = "; ".join(o for o in (self.origin.get("tags"), other.origin.get("tags")) if o)
        return Inferred(fields, origin)
