"""What the last run learned about each model folder, so that a folder whose files did not change is neither read
through nor opened again: the nightly run's cost follows what changed.

<zoo>/.zoo2vec/folders.json holds, per model name:
    files        a signature of the folder's files as the file system lists them (path, size, mtime, inode, link)
    fingerprint  the hash of their bytes (zoo.adapters.fingerprint) that the signature stood for
    readers      the identity of the code that read the card (zoo2vec.zoo's source, the registered detectors)
    card         the card read from those files (or `skipped`: why the folder is no model zoo2vec indexes)
A folder keeps its fingerprint while its signature holds, and its card while the fingerprint and the readers hold;
anything else is computed again. A signature taken while a file was being written (modified within the last
seconds) is not kept, so a file rewritten in place within one mtime tick cannot pass for unchanged. The file is a
cache: losing it costs one run the hashing and card reading, nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import time
from pathlib import Path

from zoo2vec.errors import SkippedModel
from zoo2vec.zoo import adapters
from zoo2vec.zoo.card import ModelCard

SETTLED_S = 2.0  # a file modified more recently than this is still being written: its folder's signature is not kept


def files_signature(folder: Path) -> tuple[str, float]:
    """(hash of what the file system says of every file under `folder`, newest modification time among them)."""
    h = hashlib.sha256()
    newest = 0.0
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        st = path.stat()
        link = os.readlink(path) if path.is_symlink() else ""
        h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{link}\n".encode())
        newest = max(newest, st.st_mtime)
    return h.hexdigest()[:16], newest


@functools.cache
def _source_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def readers() -> str:
    """Identity of the code that turns a folder's files into a card: the source of every module of zoo2vec.zoo (the
    formats, their detectors, the card), the adapters' version, and every registered detector (its name, code and
    module's source: a plug-in's too). A zoo2vec that reads files better therefore reads every card again."""
    from zoo2vec import zoo

    adapters._own()
    own = sorted(Path(zoo.__file__).parent.rglob("*.py"))
    parts = [adapters.ADAPTER_VERSION] + [f"{p.name}:{_source_hash(str(p))}" for p in own]
    for kind, (priority, detector) in sorted(adapters._DETECTORS.items()):
        code = getattr(detector, "__code__", None)
        source = inspect.getsourcefile(detector) if code is not None else None
        parts += [kind, str(priority), getattr(detector, "__module__", ""), getattr(detector, "__qualname__", repr(detector)),
                  _source_hash(source) if source else "", hashlib.sha256(code.co_code).hexdigest()[:16] if code else ""]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class FolderMemo:
    """The zoo's folders.json, read at the start of a run and written (whole, atomically) at its end."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            before = json.loads(self.path.read_text())
        except (OSError, ValueError):
            before = {}
        self._before: dict[str, dict] = before if isinstance(before, dict) else {}
        self._now: dict[str, dict] = {}
        self._readers = readers()

    def fingerprint(self, name: str, folder: Path) -> str:
        """The folder's fingerprint: the last run's when its files' signature is the same, else hashed anew."""
        signature, newest = files_signature(folder)
        entry = self._before.get(name, {})
        if entry.get("files") == signature and entry.get("folder") == str(folder) and entry.get("fingerprint"):
            fp = entry["fingerprint"]
        else:
            fp = adapters.fingerprint(folder)
        settled = newest < time.time() - SETTLED_S
        kept = {k: v for k, v in entry.items() if k in ("card", "skipped", "readers", "card_of")}
        self._now[name] = {**kept, "folder": str(folder), "files": signature if settled else None, "fingerprint": fp}
        return fp

    def card(self, name: str, folder: Path, fp: str) -> ModelCard:
        """The folder's card: the last run's when its fingerprint and the readers are the same, else read anew (which
        may open the model's files: skops, pickles). Raises what read_card raises; a SkippedModel is remembered too."""
        entry = self._now.setdefault(name, {"folder": str(folder), "fingerprint": fp})
        if entry.get("card_of") == fp and entry.get("readers") == self._readers:
            if "skipped" in entry:
                raise SkippedModel(entry["skipped"])
            if "card" in entry:
                return ModelCard.from_dict(entry["card"])
        for key in ("card", "skipped"):
            entry.pop(key, None)
        entry.update(card_of=fp, readers=self._readers)
        try:
            card = adapters.read_card(folder, name).card
        except SkippedModel as exc:
            entry["skipped"] = str(exc)
            raise
        except Exception:
            entry.pop("card_of")
            raise
        entry["card"] = card.to_dict()
        return card

    def save(self):
        """Write what this run learned (folders it did not see are dropped): a temporary file, then a rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._now, sort_keys=True))
        tmp.replace(self.path)
