"""The zoo on disk: the one module that knows its folder layout and its manifest.

    <zoo>/
        zoo.json                optional manifest: {"probe_sets": {"image": ..., "text": ...},
                                "sources": [{"kind": "hf-cache", "path": "~/.cache/huggingface/hub"}], ...}
        models/<name>/          one folder per model
            card.json           its card (name, modality, adapter, ...); optional for formats that say it themselves
            ...                 the model's files
        .zoo2vec/               what indexing writes (snapshots, probe-output cache, lock; see index.snapshots)

Everything else asks this module for paths (`ZooLayout(root).model_folder(name)`) and never spells these
names itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo2vec.errors import ZooError

MODELS_DIR = "models"
CARD_FILE = "card.json"
MANIFEST_FILE = "zoo.json"
STATE_DIR = ".zoo2vec"


@dataclass(frozen=True)
class ZooLayout:
    """Paths inside one zoo folder."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def models(self) -> Path:
        return self.root / MODELS_DIR

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_FILE

    @property
    def state(self) -> Path:
        """Where indexing keeps its files (snapshots, probe outputs, the lock)."""
        return self.root / STATE_DIR

    def model_folder(self, name: str) -> Path:
        return self.models / name

    def discover(self) -> dict[str, Path]:
        """Model folders under models/ (every folder but hidden ones: a card or the format's own files describe
        it), by folder name, in name order; {} when the zoo has no models/ but its manifest names sources."""
        if not self.models.is_dir():
            if self.sources():
                return {}
            raise ZooError(f"{self.root} is not a zoo: it has no {MODELS_DIR}/ folder of model folders "
                           f"and its {MANIFEST_FILE} names no sources")
        return {p.name: p for p in sorted(self.models.iterdir()) if p.is_dir() and not p.name.startswith(".")}

    def manifest(self) -> dict[str, Any]:
        """The zoo's manifest (zoo.json), {} when it has none."""
        try:
            data = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ZooError(f"{self.manifest_path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ZooError(f"{self.manifest_path} must hold a JSON object")
        return data

    def probe_sets(self) -> dict[str, str]:
        """The probe set the manifest names per modality ({} for the defaults)."""
        chosen = self.manifest().get("probe_sets", {})
        if not isinstance(chosen, dict) or not all(isinstance(v, str) for v in chosen.values()):
            raise ZooError(f"{self.manifest_path}: 'probe_sets' must map a modality to a probe set name, "
                           f'e.g. {{"image": "image-v1", "text": "text-v2"}}; got {chosen!r}')
        return chosen

    def sources(self) -> list[dict[str, str]]:
        """The other places the manifest names models in, e.g. [{"kind": "hf-cache", "path": ...}], each path
        with ~ expanded and relative paths taken from the zoo folder."""
        sources = self.manifest().get("sources", [])
        if not isinstance(sources, list) or not all(
                isinstance(s, dict) and isinstance(s.get("kind"), str) and isinstance(s.get("path"), str)
                for s in sources):
            raise ZooError(f"{self.manifest_path}: 'sources' must be a list of {{\"kind\": ..., \"path\": ...}}, "
                           f'e.g. [{{"kind": "hf-cache", "path": "~/.cache/huggingface/hub"}}]; got {sources!r}')
        return [{**s, "path": str(self.root / Path(s["path"]).expanduser())} for s in sources]

    def add_source(self, kind: str, path: Path) -> bool:
        """Name another place models are in the manifest (kept for every later run); False when it is already there."""
        manifest = self.manifest()
        entry = {"kind": kind, "path": str(Path(path).expanduser().resolve())}
        sources = manifest.get("sources", [])
        if entry in sources:
            return False
        self.write_manifest({**manifest, "sources": [*sources, entry]})
        return True

    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        """Write zoo.json whole (through a temporary file, so a reader never sees half of it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.replace(self.manifest_path)
        return self.manifest_path


def card_path(folder: Path) -> Path:
    """The card file of a model folder."""
    return Path(folder) / CARD_FILE
