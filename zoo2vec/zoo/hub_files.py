"""What a model repository's own files say about it, for cards inferred without a card.json: a Hugging Face
README's front matter and the parameter count in a safetensors file's header (no weights read)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from zoo2vec.errors import ZooError
from zoo2vec.zoo.card import Inferred

README = "README.md"


def readme_fields(folder: Path) -> Inferred:
    """License, tags (tags, language, pipeline tag, library), training data and description from README.md's YAML
    front matter (read by huggingface_hub, as the Hub reads it); nothing when there is no README or no front matter."""
    from huggingface_hub import ModelCard as HubCard

    path = Path(folder) / README
    if not path.is_file():
        return Inferred({})
    try:
        hub = HubCard.load(path)
    except Exception:  # a README that is not a valid model card is only prose: infer nothing from it
        return Inferred({})
    meta = hub.data.to_dict()
    fields, origin = {}, {}
    where = f"{README} front matter"
    if isinstance(meta.get("license"), str):
        fields["license"], origin["license"] = meta["license"], f"{where} (license)"
    tags = [*_strings(meta.get("tags")), *(f"language:{x}" for x in _strings(meta.get("language")))]
    for key in ("pipeline_tag", "library_name"):
        if isinstance(meta.get(key), str):
            tags.append(meta[key])
    if tags:
        fields["tags"], origin["tags"] = list(dict.fromkeys(tags)), f"{where} (tags, language, pipeline_tag)"
    datasets = _strings(meta.get("datasets"))
    if datasets:
        fields["training_data"], origin["training_data"] = ", ".join(datasets), f"{where} (datasets)"
    text = _first_paragraph(hub.text)
    if text:
        fields["description"], origin["description"] = text, f"{README} (first paragraph)"
    return Inferred(fields, origin)


def read_json(path: Path) -> Any:
    """A JSON file of the model's, None when it is not there."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path} is not valid JSON: {exc}") from None


def safetensors_params(path: Path) -> int:
    """Number of parameters stored in a safetensors file, from its JSON header alone."""
    try:
        with Path(path).open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (struct.error, ValueError, MemoryError, OverflowError) as exc:
        raise ZooError(f"{path} is not a safetensors file (its header does not read: {exc})") from None
    total = 0
    for key, entry in header.items():
        if key != "__metadata__":
            n = 1
            for dim in entry["shape"]:
                n *= int(dim)
            total += n
    return total


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _first_paragraph(text: str, limit: int = 500) -> str:
    """The README's first paragraph of prose (headings, tables, code and comments skipped), cut to `limit` chars."""
    for block in text.split("\n\n"):
        block = block.strip()
        if block and not block.startswith(("#", "|", "```", "<!--", "<", "!", "-", "*")):
            return " ".join(block.split())[:limit]
    return ""
