"""The incremental indexing job, in stages that leave files behind:

  discover   model folders of the zoo (zoo.layout), each fingerprinted (files + adapter version) and its card read;
             a folder whose files the file system reports unchanged keeps both from the last run (jobs.memo)
  probe      black-box outputs on the probe set, cached per fingerprint in the zoo's state folder; models are loaded
             and run in worker processes (jobs.executors), never in this one, which decides what needs probing
  encode     Know2Vec knowledge and card text into the catalog of a new snapshot
  publish    FAISS indexes rebuilt from the catalog, then CURRENT swapped atomically

Only new or changed models (or those whose probe set or encoder changed, or that failed last time)
are probed. A model that raises, hangs (killed with its worker), crashes its worker (segfault, exit, memory past the
worker's cap), or answers with NaN or the wrong shape is recorded with its reason and skipped; the run goes on.
Readers never see a half-written snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from zoo2vec.encoders import know2vec, probe_set, reference
from zoo2vec.errors import ConfigError, SkippedModel, ZooError
from zoo2vec.index.catalog import SCHEMA_VERSION, Catalog
from zoo2vec.index.run_journal import RunJournal, as_history_row
from zoo2vec.index.snapshots import SnapshotStore
from zoo2vec.index.vector_index import VectorIndex
from zoo2vec.jobs.executors import Executor, Probed, ProbeJob, make_executor, reason_of, resolve_device
from zoo2vec.jobs.memo import FolderMemo
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.discovery import discover
from zoo2vec.zoo.layout import ZooLayout

Progress = Callable[[str, int, int], None]
KEEP_VARIABLE = "ZOO2VEC_KEEP_SNAPSHOTS"


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
    warnings: list[str] = field(default_factory=list)  # what the run found amiss and mended (a lock taken over)

    @property
    def indexed(self) -> int:
        return len(self.probed) + len(self.reused)

    def to_dict(self) -> dict:
        """The report as JSON-ready values, with the count of indexed models."""
        return {**asdict(self), "indexed": self.indexed}

    def summary(self) -> str:
        text = (f"snapshot {self.snapshot}: {self.indexed} models indexed ({len(self.probed)} probed, "
                f"{len(self.reused)} unchanged), {len(self.failed)} failed, {len(self.skipped)} skipped, "
                f"{len(self.removed)} removed, {self.seconds:.1f} s")
        return "\n".join([text] + [f"  warning: {w}" for w in self.warnings] + [f"  failed {name}: {reason}" for name, reason in sorted(self.failed.items())]
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
    """What one run shares between models: probe sets loaded and embedded once (in this process, for the encoders;
    the workers load their own to run models on)."""

    def __init__(self, chosen: dict[str, str], catalog: Catalog, store: SnapshotStore):
        self.chosen, self.catalog, self.store = chosen, catalog, store
        self._identities: dict[str, str] = {}  # probe set -> its reference encoder's identity (which weights, for CLIP)
        self._loaded: dict[str, np.ndarray] = {}

    def _identity(self, name: str) -> str:
        if name not in self._identities:
            self._identities[name] = reference.identity(probe_set.config(name)["reference_encoder"])
        return self._identities[name]

    def stamp(self, modality: str) -> tuple[str, str]:
        """(probe set version, encoder stamp) a model of this modality is indexed with."""
        name = self.chosen[modality]
        return probe_set.version(name), f"{know2vec.VERSION}/{self._identity(name)}"

    def embeddings(self, modality: str) -> np.ndarray:
        """The reference embeddings of the modality's probe set: those the catalog holds for this probe set and
        encoder (a run after a run), else the probe set loaded and embedded once, and stored in the catalog."""
        name = self.chosen[modality]
        if name not in self._loaded:
            version, identity = probe_set.version(name), self._identity(name)
            embeddings = self.catalog.probe_embeddings(version, identity)
            if not len(embeddings):
                probes = probe_set.load(name)
                embeddings = reference.embed(probes.reference_encoder, probes.inputs)
                self.catalog.put_probe_embeddings(version, identity, embeddings)
            self._loaded[name] = embeddings
        return self._loaded[name]


def run_index(zoo_root: Path, *, timeout_s: float = 120.0, trust_pickle: bool = False, workers: int | None = None,
              executor: str = "local", address: str | None = None, device: str = "cpu", keep: int | None = None,
              progress: Progress | None = None) -> IndexReport:
    """Bring the zoo's index in step with its model folders; returns what was done. Models that need probing run in
    `workers` processes (default: one per core) of the `executor` ("local", or "ray" at `address`), each killed after
    `timeout_s` seconds (jobs.executors), on `device` ("cpu", "cuda", or "auto": cuda when torch sees a GPU).
    The run is recorded in the catalog it publishes (Catalog.history), with the runs since the last publish that
    stopped without publishing (index.run_journal). After publishing, all but the newest `keep`
    snapshots (default $ZOO2VEC_KEEP_SNAPSHOTS, else 3) and the probe outputs no model uses any more are deleted."""
    zoo_root = Path(zoo_root)
    store = SnapshotStore(zoo_root)
    keep = snapshots_kept() if keep is None else keep
    started, started_at = time.perf_counter(), _utc_now()
    found = discover(zoo_root)
    chosen = probe_set_names(zoo_root)
    probing = make_executor(executor, workers, address=address, timeout_s=timeout_s, trust_pickle=trust_pickle,
                            device=_device_for(executor, device))  # starts no process yet
    journal = RunJournal(store.base)
    with store.lock() as taken_over:
        store.collect(keep)  # what crashed runs left, before this run adds its own folder
        previous = store.current()
        snapshot = store.create()
        report = IndexReport(snapshot=snapshot.name, warnings=[taken_over] if taken_over else [])
        earlier = journal.notes(locked=True)  # runs since the last publish that did not publish: carried into this one
        journal.begin(snapshot.name, started_at, f"{executor}/{probing.device}", probing.workers)
        try:
            # a catalog of an older schema is not carried over: every model is encoded again from its cached probe outputs
            if previous is not None and Catalog.schema_of(previous / "catalog.duckdb") == SCHEMA_VERSION:
                shutil.copy2(previous / "catalog.duckdb", snapshot / "catalog.duckdb")
            with Catalog(snapshot / "catalog.duckdb") as catalog, probing:
                context = _ProbeContext(chosen, catalog, store)
                live = _update(catalog, found, context, report, progress, probing,
                               stage=lambda name: journal.stage(snapshot.name, name))
                journal.stage(snapshot.name, "publish")
                for note in earlier:
                    catalog.record_run(as_history_row(note))
                catalog.record_run(_run_record(report, f"{executor}/{probing.device}", probing.workers, started_at,
                                               time.perf_counter() - started))
                for kind in ("task", "card"):
                    VectorIndex.build(*catalog.vectors(kind)).save(snapshot / f"{kind}.faiss")
                catalog.con.execute("CHECKPOINT")
        except BaseException as exc:
            shutil.rmtree(snapshot, ignore_errors=True)
            journal.end(snapshot.name, "failed" if isinstance(exc, Exception) else "interrupted", _why(exc))
            raise
        store.publish(snapshot, keep=keep)
        journal.forget([snapshot.name, *(note["snapshot_id"] for note in earlier)])
        store.collect_probes(live)
    report.seconds = time.perf_counter() - started
    return report


def _why(exc: BaseException) -> str:
    """Why a run stopped, in one line (the run's own exception, not a model's)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return reason_of(exc) if str(exc) else type(exc).__name__


def _device_for(executor: str, choice: str) -> str:
    """The device the executor runs models on: resolved here for local workers; for Ray, "auto" is left for the
    executor to resolve from the cluster's GPUs (this process's are not the cluster's)."""
    if executor == "ray" and choice == "auto":
        return choice
    return resolve_device(choice)


def _run_record(report: IndexReport, executor: str, workers: int, started_at: datetime, seconds: float) -> dict:
    """The run as the catalog's index_runs keeps it (Catalog.record_run)."""
    names = {k: v for k, v in report.to_dict().items() if k not in ("snapshot", "costs", "seconds", "indexed")}
    return dict(snapshot_id=report.snapshot, started_at=started_at, ended_at=_utc_now(), executor=executor,
                workers=workers, probed=len(report.probed), reused=len(report.reused), failed=len(report.failed),
                skipped=len(report.skipped), removed=len(report.removed), seconds=seconds, report=names,
                status="published")


def _utc_now() -> datetime:
    """Now in UTC, as the catalog's TIMESTAMP columns keep it (no zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def snapshots_kept() -> int:
    """How many published snapshots a run keeps ($ZOO2VEC_KEEP_SNAPSHOTS, default 3; at least 1)."""
    value = os.environ.get(KEEP_VARIABLE, "").strip() or "3"
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{KEEP_VARIABLE}={value!r}: give the number of snapshots to keep, 1 or more")
    return int(value)


@dataclass(frozen=True)
class _Planned:
    """A model whose entry must be written anew, and where its probe outputs are (or will be) cached."""

    name: str
    folder: Path
    card: ModelCard
    fingerprint: str
    probe_set: str  # version
    encoder: str
    cache: Path
    seconds: float  # what zoo2vec spent on it in this process so far (fingerprint, card)


def _update(catalog: Catalog, found: dict[str, Path], context: _ProbeContext, report: IndexReport,
            progress: Progress | None, executor: Executor, stage: Callable[[str], None]) -> set[Path]:
    """Decide here which models need probing, probe those in the executor's workers (in parallel), and encode each
    from its cached outputs here as it comes back; `stage` hears each stage entered. Returns the probe-output files
    the zoo's models use."""
    indexed = catalog.indexed()
    for name in sorted(set(indexed) - set(found)):
        catalog.remove_model(name)
        report.removed.append(name)
    pending: list[Encoded] = []
    runs: dict[str, tuple] = {}  # probe runs, written with the models (the snapshot is published whole or not at all)
    to_probe: dict[str, _Planned] = {}
    live: set[Path] = set()
    done = 0

    def finished(name: str):
        nonlocal done
        done += 1
        if progress:
            progress(name, done, len(found))

    def fail(name: str, fp: str, status: str, reason: str, seconds: float):
        (report.skipped if status == "skipped" else report.failed)[name] = reason
        runs[name] = (report.snapshot, name, fp, status, reason, seconds)
        if name in indexed:  # an old entry no longer describes the model in the folder: drop it until it indexes again
            catalog.remove_model(name)

    def add(plan: _Planned, probed: Probed | None):
        encoded = _encode_outputs(plan, context, report, probed)
        pending.append(encoded)
        runs[plan.name] = (report.snapshot, plan.name, plan.fingerprint, "ok", "", encoded.seconds)

    memo = FolderMemo(context.store.base / "folders.json")
    for name, folder in found.items():
        t0 = time.perf_counter()
        fp = "?"
        try:
            fp = memo.fingerprint(name, folder)  # an unchanged folder is neither hashed nor its card read again
            plan = _plan(name, folder, fp, memo.card(name, folder, fp), context, started=t0)
            live.add(plan.cache)
            if _unchanged(plan, indexed.get(name)):
                report.reused.append(name)
            elif not plan.cache.exists():
                to_probe[name] = plan
                continue
            else:  # outputs cached (a card inferred anew, a catalog rebuilt): no model is run
                add(plan, None)
        except Exception as exc:  # one broken model never stops the run: record it and go on
            fail(name, fp, "skipped" if isinstance(exc, SkippedModel) else "failed", reason_of(exc),
                 time.perf_counter() - t0)
        finished(name)

    stage("probe")
    jobs = [ProbeJob(p.name, p.folder, p.card.to_dict(), context.chosen[p.card.modality], p.cache)
            for p in to_probe.values()]
    results = executor.run(jobs)  # the workers start...
    for modality in sorted({p.card.modality for p in to_probe.values()}):
        with contextlib.suppress(Exception):  # a failure here comes again, and is recorded, for each of its models
            context.embeddings(modality)  # ...while this process embeds the probe sets the encoders need
    for job, probed in results:  # as each worker answers
        plan = to_probe[job.name]
        if probed.status != "ok":
            fail(plan.name, plan.fingerprint, probed.status, probed.reason, plan.seconds + probed.seconds)
        else:
            try:
                add(plan, probed)
            except Exception as exc:  # e.g. outputs the encoder cannot use
                fail(plan.name, plan.fingerprint, "failed", reason_of(exc), plan.seconds + probed.seconds)
        finished(job.name)

    stage("encode")
    if pending:
        order = {name: i for i, name in enumerate(found)}
        _encode(catalog, sorted(pending, key=lambda e: order[e.card.name]), report)
    catalog.record_runs([runs[name] for name in found if name in runs])
    memo.save()
    if progress:
        progress("", len(found), len(found))
    return live


def _plan(name: str, folder: Path, fp: str, card: ModelCard, context: _ProbeContext, *, started: float) -> _Planned:
    """How one model is indexed in this run, and where its probe outputs are cached.
    `started`: when the run began on this model (its fingerprint and card count towards its cost)."""
    if card.name != name:
        raise ZooError(f"folder {name!r} holds a card named {card.name!r}; rename one so they agree")
    ps_version, encoder = context.stamp(card.modality)
    # keyed by the adapter entry too: a newer zoo2vec may infer another way to call the same files (scale, layout)
    how = hashlib.sha256(json.dumps(card.adapter, sort_keys=True).encode()).hexdigest()[:8]
    cache = context.store.probes / ps_version / f"{card.file_name}-{fp}-{how}.npy"
    return _Planned(name, folder, card, fp, ps_version, encoder, cache, time.perf_counter() - started)


def _unchanged(plan: _Planned, before) -> bool:
    """Whether the model's last entry still holds: same files, card, probe set and encoder (a card inferred anew from
    the same files is encoded again from the cached probe outputs)."""
    return before is not None and (before.fingerprint, before.probe_set, before.encoder, before.card) == (
        plan.fingerprint, plan.probe_set, plan.encoder, json.loads(json.dumps(plan.card.to_dict())))


def _encode_outputs(plan: _Planned, context: _ProbeContext, report: IndexReport, probed: Probed | None) -> Encoded:
    """Know2Vec knowledge from the model's cached probe outputs. Its cost: this process's time on it plus its
    worker's (forward passes apart), the run's shared set-up (probe set and its embeddings) not counted."""
    embeddings = context.embeddings(plan.card.modality)  # once per run and probe set
    t0 = time.perf_counter()
    knowledge = know2vec.encode_model(np.load(plan.cache), embeddings)
    spent = plan.seconds + (time.perf_counter() - t0)
    if probed is not None:
        spent += probed.seconds
        report.costs[plan.name] = (probed.forward_s, spent - probed.forward_s)
    return Encoded(plan.card, plan.fingerprint, knowledge, plan.probe_set, plan.encoder, spent)


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
