"""The index snapshot a search reads: its catalog, FAISS indexes, reference embeddings and model profiles, opened
once and kept while it is the zoo's current snapshot; and candidate retrieval from it."""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec.errors import IndexNotBuiltError
from zoo2vec.index.catalog import Catalog, ModelProfile
from zoo2vec.index.snapshots import SnapshotStore, pin
from zoo2vec.index.vector_index import VectorIndex


class Snapshot:
    """One published snapshot, read-only. Reference embeddings and model profiles are read once, when first asked for."""

    def __init__(self, folder: Path, zoo_root: Path):
        self.folder = folder
        self.zoo_root = zoo_root  # named in the errors that say how to re-index
        pinned = pin(folder)  # no indexing run collects the folder while this reader has it open (or until it is gone)
        self._unpin = weakref.finalize(self, os.close, pinned) if pinned is not None else None
        self.catalog = Catalog(folder / "catalog.duckdb", read_only=True)
        self.task_index = VectorIndex.load(folder / "task.faiss")  # models' kernel vectors (decisions on the probe set)
        self.card_index = VectorIndex.load(folder / "card.faiss")  # models' card embeddings
        self._references: dict[str, tuple[str, np.ndarray]] = {}  # probe set version -> (encoder, embeddings)
        self._profiles: dict[int, ModelProfile] = {}

    def close(self) -> None:
        self.catalog.close()
        if self._unpin is not None:
            self._unpin()

    def allowed_ids(self, where: dict[str, Any]) -> np.ndarray:
        """The ids of the models the filters let through."""
        return self.catalog.allowed_ids(where)

    def nearest_by_decisions(self, kernel_vector: np.ndarray, n: int, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The n models among `among` whose decisions on the probe set agree most with these (ids, kernel alignment)."""
        return self.task_index.search(kernel_vector, n, among)

    def nearest_by_card(self, text_vector: np.ndarray, n: int, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The n models among `among` whose cards are nearest this sentence embedding (ids, cosine)."""
        return self.card_index.search(text_vector, n, among)

    def reference_for(self, modality: str) -> tuple[str, np.ndarray]:
        """The reference encoder the modality's models were encoded with, and the probe set's embeddings in it."""
        from zoo2vec.encoders import probe_set, reference

        version = self.catalog.probe_set_of(modality)
        if version not in self._references:
            if version is None:
                raise IndexNotBuiltError(f"the {modality} models of {self.zoo_root} were not all probed with one probe "
                                         f"set: run `zoo2vec index {self.zoo_root}` again")
            name = probe_set.config(version.split("@")[0])["reference_encoder"]
            embeddings = self.catalog.probe_embeddings(version, reference.identity(name))
            if not len(embeddings):
                raise IndexNotBuiltError(f"the {modality} models of {self.zoo_root} were encoded with another reference "
                                         f"encoder than {reference.identity(name)}: run `zoo2vec index {self.zoo_root}` again")
            self._references[version] = (name, embeddings)
        return self._references[version]

    def profiles_of(self, ids: np.ndarray) -> dict[int, ModelProfile]:
        """What probing found each model to know; the mapping holds at least `ids`."""
        missing = [i for i in ids.tolist() if i not in self._profiles]
        if missing:
            self._profiles.update(self.catalog.profiles(missing))
        return self._profiles


class CurrentSnapshot:
    """The zoo's current snapshot, reopened when indexing publishes a new one."""

    def __init__(self, zoo_root: Path):
        self.zoo_root = zoo_root
        self._store = SnapshotStore(zoo_root)
        self._open: Snapshot | None = None

    def get(self) -> Snapshot:
        current = self._store.current()
        if current is None:
            raise IndexNotBuiltError(f"zoo {self.zoo_root} has no index yet: run `zoo2vec index {self.zoo_root}` "
                                     f"or zoo.index()")
        if self._open is None or self._open.folder != current:
            if self._open is not None:
                self._open.close()
                self._open = None
            self._open = Snapshot(current, self.zoo_root)
        return self._open
