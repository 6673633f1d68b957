"""Models in a local Hugging Face hub cache (`hub/models--ORG--NAME/snapshots/REV/`), indexed where they lie.

    {"kind": "hf-cache", "format": "transformers", ...the format's own settings}

A snapshot is read by the format its files are in (a transformers or timm folder) and named ORG/NAME@REF, the ref
(main, a branch or tag) that points at it, else ORG/NAME@ and the commit's first 12 digits. `scan` lists every
snapshot of a cache as huggingface_hub reads it; nothing is copied.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from zoo2vec.errors import SkippedModel, ZooError
from zoo2vec.zoo.adapters import (
    Inferred,
    ModelSource,
    detect,
    formats_accepted,
    loader_for,
    register,
)

KIND = "hf-cache"


def repo_and_revision(folder: Path) -> tuple[Path, str, str] | None:
    """(the repo's cache folder, ORG/NAME, commit) of a snapshot folder; None for any other folder."""
    folder = Path(folder)
    repo = folder.parent.parent
    if folder.parent.name != "snapshots" or not repo.name.startswith("models--"):
        return None
    return repo, repo.name.removeprefix("models--").replace("--", "/"), folder.name


def model_name(folder: Path) -> str:
    """ORG/NAME@REF of a snapshot folder (see the module's docstring)."""
    repo, repo_id, commit = repo_and_revision(folder)
    refs = sorted(p.relative_to(repo / "refs").as_posix() for p in (repo / "refs").rglob("*")
                  if p.is_file() and p.read_text().strip() == commit)
    ref = "main" if "main" in refs else (refs[0] if refs else commit[:12])
    return f"{repo_id}@{ref.replace('/', '-')}"


def detect_snapshot(folder: Path) -> Inferred | None:
    if repo_and_revision(folder) is None:
        return None
    name = model_name(folder)
    inner = detect(folder, exclude=(KIND,))
    if inner is None:
        raise SkippedModel(f"{name} in the Hugging Face cache is no classifier zoo2vec reads; it reads:\n"
                           f"{formats_accepted()}")
    adapter = dict(inner.fields.get("adapter", {}))
    adapter = {"kind": KIND, "format": adapter.pop("kind", None), **adapter}
    fields = {**inner.fields, "name": name, "source": f"Hugging Face cache ({folder.parent.parent.parent})",
              "adapter": adapter}
    origin = {**inner.origin, "name": "the cache folder (models--ORG--NAME, refs/)", "source": "the cache folder"}
    return Inferred(fields, origin)


@register(KIND, detect=detect_snapshot, priority=10,
          expects="a snapshot folder of a Hugging Face cache (models--ORG--NAME/snapshots/REV/) in a format below")
def load(source: ModelSource):
    inner = source.spec.get("format")
    card = replace(source.card, adapter={**source.spec, "kind": inner})
    return loader_for(inner, card.name)(ModelSource(source.folder, card, trust_pickle=source.trust_pickle))


def scan(cache_dir: Path) -> dict[str, Path]:
    """Every model snapshot in a Hugging Face cache, by name (ORG/NAME@REF), as huggingface_hub reads the cache."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(Path(cache_dir).expanduser())
    except (CacheNotFound, ValueError):  # ValueError: a file, not a folder
        raise ZooError(f"no Hugging Face cache at {cache_dir}: point at the hub folder "
                       "(e.g. ~/.cache/huggingface/hub, or $HF_HUB_CACHE)") from None
    found = {}
    for repo in info.repos:
        if repo.repo_type == "model":
            for revision in repo.revisions:
                found[model_name(revision.snapshot_path)] = Path(revision.snapshot_path)
    return dict(sorted(found.items()))
