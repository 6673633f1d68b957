"""The incremental indexing job, in stages that leave files behind:

  discover   model folders of the zoo (zoo.layout), each fingerprinted (files + adapter version)
  probe      black-box outputs on the probe set, cached per fingerprint in the zoo's state folder
  encode     Know2Vec knowledge and card text into the catalog of a new snapshot
  publish    FAISS indexes rebuilt from the catalog, then CURRENT swapped atomically

Only new or changed models (or those whose probe set or encoder changed, or that failed last time)
are probed. A model that raises, hangs, or answers with NaN or the wrong shape is recorded with its
reason and skipped; the run goes on. Readers never see a half-written snapshot.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo2vec.data.images import resize
from zoo2vec.encoders import know2vec, probe_set, reference
from zoo2vec.errors import ModelFailure, SkippedModel, Zoo2VecError, ZooError
from zoo2vec.index.catalog import SCHEMA_VERSION, Catalog
from zoo2vec.index.snapshots import SnapshotStore
from zoo2vec.index.vector_index import VectorIndex
from zoo2vec.zoo.adapters import fingerprint, load_model, read_card
from zoo2vec.zoo.blackbox import checked_predict
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.discovery import discover
from zoo2vec.zoo.layout import ZooLayout

Progress = Callable[[str, int, int], None]


@dataclass
class IndexReport:
    snapshot: str
    probed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # models zoo2vec does not index (not classifiers), and why
    seconds: float = 0.0
    # per freshly probed model: (seconds in its forward passes on the probe set, seconds of everything else zoo2vec
    # spent on it: loading, checks, Know2Vec encoding, its share of the card and label embedding)
    costs: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def indexed(self) -> int:
        return len(self.probed) + len(self.reused)

    def summary(self) -> str:
        text = (f"snapshot {self.snapshot}: {self.indexed} models indexed ({len(self.probed)} probed, "
                f"{len(self.reused)} unchanged), {len(self.failed)} failed, {len(self.skipped)} skipped, "
                f"{len(self.removed)} removed, {self.seconds:.1f} s")
        return "\n".join([text] + [f"  failed {name}: {reason}" for name, reason in sorted(self.failed.items())]
                         + [f"  skipped {name}: {reason}" for name, reason in sorted(self.skipped.items())])


def probe_set_names(zoo_root: Path) -> dict[str, str]:
    """Probe set per modality: the zoo's manifest may name them ({"probe_sets": {"image": ...}}), else the defaults."""
    names = {m: probe_set.default_for(m) for m in ("image", "text")}
    names.update(ZooLayout(zoo_root).probe_sets())
    for name in names.values():
        probe_set.config(name)  # an unknown name fails here, before any model is probed
    return names


@dataclass(frozen=True)
class Encoded:
    """One freshly probed model, ready for the catalog."""

    card: ModelCard
    fingerprint: str
    knowledge: know2vec.ModelKnowledge
    probe_set: str  # version
    encoder: str  # Know2Vec version / reference encoder identity
    seconds: float  # what zoo2vec spent on it, forward passes included, the run's shared set-up not


class _ProbeContext:
    """What one run shares between models: probe sets loaded and embedded once, probe images resized once per shape."""

    def __init__(self, chosen: dict[str, str], catalog: Catalog, store: SnapshotStore, *, timeout_s: float,
                 trust_pickle: bool):
        self.chosen, self.catalog, self.store = chosen, catalog, store
        self.timeout_s, self.trust_pickle = timeout_s, trust_pickle
        self._identities: dict[str, str] = {}  # probe set -> its reference encoder's identity (which weights, for CLIP)
        self._loaded: dict[str, tuple[probe_set.ProbeSet, np.ndarray]] = {}
        self._resized: dict[tuple, np.ndarray] = {}  # (probe set, input shape) -> probe images at that shape

    def _identity(self, name: str) -> str:
        if name not in self._identities:
            self._identities[name] = reference.identity(probe_set.config(name)["reference_encoder"])
        return self._identities[name]

    def stamp(self, modality: str) -> tuple[str, str]:
        """(probe set version, encoder stamp) a model of this modality is indexed with."""
        name = self.chosen[modality]
        return probe_set.version(name), f"{know2vec.VERSION}/{self._identity(name)}"

    def probes(self, modality: str) -> tuple[probe_set.ProbeSet, np.ndarray]:
        """The modality's probe set and its reference embeddings (stored in the catalog the first time)."""
        name = self.chosen[modality]
        if name not in self._loaded:
            probes = probe_set.load(name)
            embeddings = reference.embed(probes.reference_encoder, probes.inputs)
            self.catalog.put_probe_embeddings(probe_set.version(name), self._identity(name), embeddings)
            self._loaded[name] = (probes, embeddings)
        return self._loaded[name]

    def inputs(self, card: ModelCard, probes: probe_set.ProbeSet):
        """The probe inputs in the card's input shape (a copy: a model never sees another's mutable batch)."""
        if card.modality != "image":
            return list(probes.inputs)
        key = (probes.name, tuple(card.input_shape))
        if key not in self._resized:
            self._resized[key] = resize(list(probes.inputs), card.input_shape)
        return self._resized[key].copy()

    def outputs(self, folder: Path, card: ModelCard, probes: probe_set.ProbeSet, cache: Path):
        """The model's outputs on the probe set (cached per fingerprint) and its forward seconds (None when cached)."""
        if cache.exists():
            return np.load(cache), None
        model = load_model(folder, card=card, trust_pickle=self.trust_pickle)
        inputs = self.inputs(card, probes)
        t0 = time.perf_counter()
        probs = checked_predict(model, inputs, timeout_s=self.timeout_s)
        forward = time.perf_counter() - t0
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, probs)
        tmp.replace(cache)
        return probs, forward


def run_index(zoo_root: Path, *, timeout_s: float = 120.0, trust_pickle: bool = False,
              progress: Progress | None = None) -> IndexReport:
    """Bring the zoo's index in step with its model folders; returns what was done."""
    zoo_root = Path(zoo_root)
    store = SnapshotStore(zoo_root)
    started = time.perf_counter()
    found = discover(zoo_root)
    chosen = probe_set_names(zoo_root)
    with store.lock():
        previous = store.current()
        snapshot = store.create()
        report = IndexReport(snapshot=snapshot.name)
        try:
            # a catalog of an older schema is not carried over: every model is encoded again from its cached probe outputs
            if previous is not None and Catalog.schema_of(previous / "catalog.duckdb") == SCHEMA_VERSION:
                shutil.copy2(previous / "catalog.duckdb", snapshot / "catalog.duckdb")
            with Catalog(snapshot / "catalog.duckdb") as catalog:
                context = _ProbeContext(chosen, catalog, store, timeout_s=timeout_s, trust_pickle=trust_pickle)
                _update(catalog, found, context, report, progress)
                catalog.record_snapshot(snapshot.name, len(report.failed))
                for kind in ("task", "card"):
                    VectorIndex.build(*catalog.vectors(kind)).save(snapshot / f"{kind}.faiss")
                catalog.con.execute("CHECKPOINT")
        except BaseException:
            shutil.rmtree(snapshot, ignore_errors=True)
            raise
        store.publish(snapshot)
    report.seconds = time.perf_counter() - started
    return report


def _update(catalog: Catalog, found: dict[str, Path], context: _ProbeContext, report: IndexReport,
            progress: Progress | None):
    indexed = catalog.indexed()
    for name in sorted(set(indexed) - set(found)):
        catalog.remove_model(name)
        report.removed.append(name)
    pending: list[Encoded] = []
    runs = []  # probe runs, written with the models (the snapshot is published whole or not at all)
    for i, (name, folder) in enumerate(found.items()):
        if progress:
            progress(name, i, len(found))
        t0 = time.perf_counter()
        fp = "?"
        try:
            fp = fingerprint(folder)
            encoded = _probe_model(name, folder, fp, indexed.get(name), context, report, started=t0)
            if encoded is not None:
                pending.append(encoded)
                runs.append((report.snapshot, name, fp, "ok", "", encoded.seconds))
        except Exception as exc:  # one broken model never stops the run: record it and go on
            reason, status = _reason(exc), "skipped" if isinstance(exc, SkippedModel) else "failed"
            (report.skipped if status == "skipped" else report.failed)[name] = reason
            runs.append((report.snapshot, name, fp, status, reason, time.perf_counter() - t0))
            if name in indexed:  # an old entry no longer describes the model in the folder: drop it until it indexes again
                catalog.remove_model(name)
    if pending:
        _encode(catalog, pending, report)
    catalog.record_runs(runs)
    if progress:
        progress("", len(found), len(found))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ModelFailure):
        return exc.reason
    return str(exc) if isinstance(exc, Zoo2VecError) else f"{type(exc).__name__}: {exc}"


def _probe_model(name: str, folder: Path, fp: str, before, context: _ProbeContext, report: IndexReport, *,
                 started: float) -> Encoded | None:
    """Probe and encode one model; None when its last entry still holds (same files, card, probe set and encoder;
    a card inferred anew from the same files is encoded again from the cached probe outputs).
    `started`: when the run began on this model (its fingerprint counts towards its cost)."""
    card = read_card(folder, name).card
    if card.name != name:
        raise ZooError(f"folder {name!r} holds a card named {card.name!r}; rename one so they agree")
    ps_version, encoder = context.stamp(card.modality)
    if before and (before.fingerprint, before.probe_set, before.encoder, before.card) == (
            fp, ps_version, encoder, json.loads(json.dumps(card.to_dict()))):
        report.reused.append(name)
        return None
    setup = time.perf_counter()
    probes, embeddings = context.probes(card.modality)  # once per run and probe set, not charged to the model
    setup = time.perf_counter() - setup
    # keyed by the adapter entry too: a newer zoo2vec may infer another way to call the same files (scale, layout)
    how = hashlib.sha256(json.dumps(card.adapter, sort_keys=True).encode()).hexdigest()[:8]
    cache = context.store.probes / ps_version / f"{card.file_name}-{fp}-{how}.npy"
    probs, forward = context.outputs(folder, card, probes, cache)
    knowledge = know2vec.encode_model(probs, embeddings)
    spent = time.perf_counter() - started - setup
    if forward is not None:
        report.costs[name] = (forward, spent - forward)
    return Encoded(card, fp, knowledge, ps_version, encoder, spent)


def _encode(catalog: Catalog, pending: list[Encoded], report: IndexReport):
    """Card and label-name embeddings for the freshly probed models, then all of them into the catalog at once."""
    t0 = time.perf_counter()
    card_vectors = reference.embed_text([e.card.text() for e in pending])
    label_vectors = _label_vectors([e.card for e in pending])
    entries = [dict(card=e.card, fingerprint=e.fingerprint, probe_set=e.probe_set, encoder=e.encoder,
                    knowledge=e.knowledge, card_vector=card_vector, label_vectors=labels)
               for e, card_vector, labels in zip(pending, card_vectors, label_vectors)]
    catalog.put_models(entries)
    report.probed.extend(e.card.name for e in pending)
    share = (time.perf_counter() - t0) / len(pending)
    report.costs = {name: (forward, other + share) for name, (forward, other) in report.costs.items()}


def _label_vectors(cards: list[ModelCard]) -> list[np.ndarray | None]:
    """Per card, its label names' sentence embeddings (None when it names none); each distinct name embedded once."""
    names = sorted({n for card in cards for n in (card.label_names or ())})
    vector = dict(zip(names, reference.embed_text(names))) if names else {}
    return [np.stack([vector[n] for n in card.label_names]) if card.label_names else None for card in cards]
