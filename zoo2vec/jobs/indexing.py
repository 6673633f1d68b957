"""The incremental indexing job, in stages that leave files behind:

  discover   model folders under <zoo>/models, each fingerprinted (files + adapter version)
  probe      black-box outputs on the probe set, cached per fingerprint in .zoo2vec/probes/
  encode     Know2Vec knowledge and card text into the catalog of a new snapshot
  publish    FAISS indexes rebuilt from the catalog, then CURRENT swapped atomically

Only new or changed models (or those whose probe set or encoder changed, or that failed last time)
are probed. A model that raises, hangs, or answers with NaN or the wrong shape is recorded with its
reason and skipped; the run goes on. Readers never see a half-written snapshot.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo2vec.data.images import fit
from zoo2vec.encoders import know2vec, probe_set, reference
from zoo2vec.errors import ModelFailure, Zoo2VecError, ZooError
from zoo2vec.index.catalog import SCHEMA_VERSION, Catalog
from zoo2vec.index.snapshots import SnapshotStore
from zoo2vec.index.vector_index import VectorIndex
from zoo2vec.zoo.blackbox import checked_predict
from zoo2vec.zoo.card import CARD_FILE, ModelCard
from zoo2vec.zoo.checkpoint import fingerprint, load_model

MODELS_DIR = "models"


@dataclass
class IndexReport:
    snapshot: str
    probed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # per freshly probed model: (seconds in its forward passes on the probe set, seconds of everything else zoo2vec
    # spent on it: loading, checks, Know2Vec encoding, its share of the card and label embedding)
    costs: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def indexed(self) -> int:
        return len(self.probed) + len(self.reused)

    def summary(self) -> str:
        text = (f"snapshot {self.snapshot}: {self.indexed} models indexed ({len(self.probed)} probed, "
                f"{len(self.reused)} unchanged), {len(self.failed)} failed, {len(self.removed)} removed, "
                f"{self.seconds:.1f} s")
        return "\n".join([text] + [f"  failed {name}: {reason}" for name, reason in sorted(self.failed.items())])


def discover(zoo_root: Path) -> dict[str, Path]:
    """Model folders (those holding a card.json) under <zoo>/models, by folder name."""
    models = Path(zoo_root) / MODELS_DIR
    if not models.is_dir():
        raise ZooError(f"{zoo_root} is not a zoo: it has no {MODELS_DIR}/ folder of model folders (each with a {CARD_FILE})")
    return {p.name: p for p in sorted(models.iterdir()) if p.is_dir() and not p.name.startswith(".") and (p / CARD_FILE).exists()}


def probe_set_names(zoo_root: Path) -> dict[str, str]:
    """Probe set per modality: the zoo's zoo.json may name them ({"probe_sets": {"image": ...}}), else the defaults."""
    import json

    names = {m: probe_set.default_for(m) for m in ("image", "text")}
    manifest = Path(zoo_root) / "zoo.json"
    if manifest.exists():
        names.update(json.loads(manifest.read_text()).get("probe_sets", {}))
    for name in names.values():
        probe_set.config(name)  # an unknown name fails here, before any model is probed
    return names


def _probe_inputs(card: ModelCard, probes: probe_set.ProbeSet, resized: dict):
    """The probe inputs in the card's input shape; images are resized once per run and shape (in `resized`)."""
    if card.modality == "image":
        key = (probes.name, tuple(card.input_shape))
        if key not in resized:
            resized[key] = fit(list(probes.inputs), card.input_shape)
        return resized[key].copy()  # a model never sees another's (mutable) batch
    return list(probes.inputs)


def _probe(folder: Path, card: ModelCard, probes: probe_set.ProbeSet, cache: Path, resized: dict, *, timeout_s: float,
           trust_pickle: bool):
    """The model's outputs on the probe set (from the cache when this fingerprint was probed before) and the
    seconds its forward passes took (None when cached)."""
    if cache.exists():
        return np.load(cache), None
    model = load_model(folder, trust_pickle=trust_pickle)
    inputs = _probe_inputs(card, probes, resized)
    t0 = time.perf_counter()
    probs = checked_predict(model, inputs, timeout_s=timeout_s)
    forward = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, probs)
    tmp.replace(cache)
    return probs, forward


def run_index(
    zoo_root: Path,
    *,
    timeout_s: float = 120.0,
    trust_pickle: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> IndexReport:
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
                _update(catalog, found, chosen, store, report, timeout_s=timeout_s, trust_pickle=trust_pickle,
                        progress=progress)
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


def _update(catalog: Catalog, found: dict[str, Path], chosen: dict[str, str], store: SnapshotStore,
            report: IndexReport, *, timeout_s: float, trust_pickle: bool, progress):
    indexed = catalog.indexed()
    for name in sorted(set(indexed) - set(found)):
        catalog.remove_model(name)
        report.removed.append(name)
    probe_sets: dict[str, tuple[probe_set.ProbeSet, np.ndarray]] = {}
    references: dict[str, str] = {}  # probe set -> its reference encoder's identity (which weights, for CLIP)
    resized: dict = {}  # (probe set, input shape) -> probe images at that shape
    pending = []  # (card, fingerprint, knowledge, probe set version, encoder id)
    runs = []  # probe runs, written with the models (the snapshot is published whole or not at all)
    for i, (name, folder) in enumerate(found.items()):
        if progress:
            progress(name, i, len(found))
        t0 = time.perf_counter()
        fp = "?"
        try:
            fp = fingerprint(folder)
            card = ModelCard.load(folder)
            if card.name != name:
                raise ZooError(f"folder {name!r} holds a card named {card.name!r}; rename one so they agree")
            ps_name = chosen[card.modality]
            ps_version = probe_set.version(ps_name)
            if ps_name not in references:
                references[ps_name] = reference.identity(probe_set.config(ps_name)["reference_encoder"])
            encoder = f"{know2vec.VERSION}/{references[ps_name]}"  # models are stamped with Know2Vec + reference encoder
            before = indexed.get(name)
            if before and (before.fingerprint, before.probe_set, before.encoder) == (fp, ps_version, encoder):
                report.reused.append(name)
                continue
            setup = time.perf_counter()
            if ps_name not in probe_sets:  # once per run and probe set, not charged to the model
                probes = probe_set.load(ps_name)
                emb = reference.embed(probes.reference_encoder, probes.inputs)
                catalog.put_probe_embeddings(ps_version, references[ps_name], emb)
                probe_sets[ps_name] = (probes, emb)
            setup = time.perf_counter() - setup
            probes, emb = probe_sets[ps_name]
            probs, forward = _probe(folder, card, probes, store.probes / ps_version / f"{name}-{fp}.npy", resized,
                                    timeout_s=timeout_s, trust_pickle=trust_pickle)
            pending.append((card, fp, know2vec.encode_model(probs, emb), ps_version, encoder))
            spent = time.perf_counter() - t0 - setup
            if forward is not None:
                report.costs[name] = (forward, spent - forward)
            runs.append((report.snapshot, name, fp, "ok", "", spent))
        except Exception as exc:  # one broken model never stops the run: record it and go on
            reason = exc.reason if isinstance(exc, ModelFailure) else (
                str(exc) if isinstance(exc, Zoo2VecError) else f"{type(exc).__name__}: {exc}")
            report.failed[name] = reason
            runs.append((report.snapshot, name, fp, "failed", reason, time.perf_counter() - t0))
            # an old entry no longer describes the model in the folder: drop it until it indexes again
            if name in indexed:
                catalog.remove_model(name)
    if pending:
        t0 = time.perf_counter()
        card_vectors = reference.embed_text([card.text() for card, *_ in pending])
        names = sorted({n for card, *_ in pending for n in (card.label_names or ())})
        label_vector = dict(zip(names, reference.embed_text(names))) if names else {}
        entries = []
        for (card, fp, knowledge, ps_version, encoder), card_vector in zip(pending, card_vectors):
            labels = np.stack([label_vector[n] for n in card.label_names]) if card.label_names else None
            entries.append(dict(card=card, fingerprint=fp, probe_set=ps_version, encoder=encoder, knowledge=knowledge,
                                card_vector=card_vector, label_vectors=labels))
        catalog.put_models(entries)
        report.probed.extend(card.name for card, *_ in pending)
        share = (time.perf_counter() - t0) / len(pending)
        report.costs = {name: (forward, other + share) for name, (forward, other) in report.costs.items()}
    catalog.record_runs(runs)
    if progress:
        progress("", len(found), len(found))
