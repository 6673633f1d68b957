"""Where a zoo's models are: the folders under its models/ and the sources its manifest names (a Hugging Face
cache), by model name. Every caller that walks a zoo asks here, so a new kind of source is added in one place."""

from __future__ import annotations

from pathlib import Path

from zoo2vec.errors import ZooError
from zoo2vec.zoo.adapters import hf_cache, read_card
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.layout import MANIFEST_FILE, ZooLayout

SCANNERS = {hf_cache.KIND: hf_cache.scan}


def discover(zoo_root: Path) -> dict[str, Path]:
    """Every model folder of the zoo by name (models/<name>/ and each source's models), in name order."""
    layout = ZooLayout(zoo_root)
    found = layout.discover()
    for source in layout.sources():
        scan = SCANNERS.get(source["kind"])
        if scan is None:
            raise ZooError(f"{layout.manifest_path}: unknown source kind {source['kind']!r}; "
                           f"known: {', '.join(sorted(SCANNERS))}")
        found.update(scan(Path(source["path"])))
    return dict(sorted(found.items()))


def locate(zoo_root: Path, name: str) -> Path:
    """The folder of one model of the zoo."""
    folder = ZooLayout(zoo_root).model_folder(name)
    if "/" not in name and folder.is_dir():
        return folder
    found = discover(zoo_root).get(name)
    if found is None:
        raise ZooError(f"model {name!r} is neither under {folder.parent} nor in a source of {MANIFEST_FILE}")
    return found


def cards(zoo_root: Path) -> dict[str, ModelCard]:
    """Every model's card (read or inferred, see adapters.read_card) by name; folders that are no model zoo2vec
    indexes (not classifiers, or in no format it reads: indexing records why) are left out."""
    found = {}
    for name, folder in discover(zoo_root).items():
        try:
            found[name] = read_card(folder, name).card
        except ZooError:
            continue
    return found
