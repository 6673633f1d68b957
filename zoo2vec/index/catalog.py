"""The DuckDB catalog: models, cards, probe runs, vectors, concepts; the source of truth of an index."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo2vec.errors import ConfigError
from zoo2vec.index import filters

SCHEMA_VERSION = "3"  # 3: each concept row keeps the model's outputs for that class on the probe set
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS models (
    model_id INTEGER PRIMARY KEY, name VARCHAR UNIQUE NOT NULL, modality VARCHAR NOT NULL,
    license VARCHAR, params BIGINT, source VARCHAR, tags VARCHAR[], label_names VARCHAR[],
    training_data VARCHAR, description VARCHAR, card JSON NOT NULL, fingerprint VARCHAR NOT NULL,
    probe_set VARCHAR NOT NULL, encoder VARCHAR NOT NULL, confidence DOUBLE, entropy DOUBLE, input_shape INTEGER[],
    indexed_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS vectors (
    model_id INTEGER NOT NULL, kind VARCHAR NOT NULL, version VARCHAR NOT NULL, vector FLOAT[] NOT NULL,
    PRIMARY KEY (model_id, kind));
CREATE TABLE IF NOT EXISTS concepts (
    model_id INTEGER NOT NULL, idx INTEGER NOT NULL, label VARCHAR NOT NULL, mass FLOAT, prototype FLOAT[] NOT NULL,
    label_vector FLOAT[],  -- the label name's sentence embedding; NULL when the card names no labels
    outputs FLOAT[] NOT NULL,  -- P(this class | x) for every probe input x, in probe-set order
    PRIMARY KEY (model_id, idx));
CREATE TABLE IF NOT EXISTS probe_runs (
    snapshot_id VARCHAR, name VARCHAR, fingerprint VARCHAR, status VARCHAR, reason VARCHAR, seconds DOUBLE,
    ran_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS probe_embeddings (
    probe_set VARCHAR NOT NULL, encoder VARCHAR NOT NULL, idx INTEGER NOT NULL, embedding FLOAT[] NOT NULL,
    PRIMARY KEY (probe_set, encoder, idx));
CREATE TABLE IF NOT EXISTS index_runs (  -- one row per run: the zoo's run history, carried forward
    snapshot_id VARCHAR PRIMARY KEY, started_at TIMESTAMP NOT NULL, ended_at TIMESTAMP NOT NULL, executor VARCHAR,
    workers INTEGER, models INTEGER, probed INTEGER, reused INTEGER, failed INTEGER, skipped INTEGER, removed INTEGER,
    seconds DOUBLE, report JSON);  -- report: the names probed, reused, removed, and failed or skipped with reasons
-- published: the run's snapshot was published; failed, interrupted (Ctrl-C) or killed: it was not, and report says
-- the stage it stopped in and why (index.run_journal). Added to catalogs of this schema written before it.
ALTER TABLE index_runs ADD COLUMN IF NOT EXISTS status VARCHAR DEFAULT 'published';
"""


@dataclass(frozen=True)
class IndexedModel:
    """What a previous run recorded for a model, to decide whether to probe it again."""

    model_id: int
    fingerprint: str
    probe_set: str
    encoder: str
    card: dict  # the card it was indexed with


@dataclass(frozen=True)
class ModelProfile:
    """A model as search reads it back from the catalog: the concepts and calibration of its
    encoders.know2vec.ModelKnowledge (written at indexing; the kernel vector is searched through FAISS) joined with what its card
    says (label names and their embeddings, input shape) and how it was encoded. Two types because the write side
    holds what probing measured and the read side what a candidate needs to be scored."""

    labels: tuple[str, ...]
    mass: np.ndarray  # (n_classes,) mean P(c|x) over the probe set
    prototypes: np.ndarray  # (n_classes, d) unit-norm concept prototypes
    label_vectors: np.ndarray | None  # (n_classes, d_text) label-name embeddings; None when the card names no labels
    confidence: float
    entropy: float
    input_shape: tuple[int, ...] | None
    encoder: str = ""  # how the concepts were encoded, e.g. "know2vec-1/minilm-v1" (prototypes in that space)
    modality: str = ""
    outputs: np.ndarray | None = None  # (probe inputs, n_classes): the model's probabilities on the probe set


def _rows(column) -> list[np.ndarray]:
    """A column of float lists as one float32 array per row (views into one buffer, no Python floats)."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    offsets = column.offsets.to_numpy()
    return np.split(values, offsets[1:-1] - offsets[0]) if len(column) else []


MODEL_COLUMNS = ["model_id", "name", "modality", "license", "params", "source", "tags", "label_names", "training_data",
                 "description", "card", "fingerprint", "probe_set", "encoder", "confidence", "entropy", "input_shape"]


def _rows_of(model_id: int, entry: dict) -> tuple[list, list, list]:
    """One model's row, its vector rows (task kernel, card text) and its concept rows, for put_models."""
    card, k, label_vectors = entry["card"], entry["knowledge"], entry.get("label_vectors")
    labels = list(card.label_names) if card.label_names else [f"class {i}" for i in range(len(k.concepts))]
    model = [model_id, card.name, card.modality, card.license.lower(), card.params, card.source, list(card.tags),
             list(card.label_names) if card.label_names else None, card.training_data, card.description,
             json.dumps(card.to_dict()), entry["fingerprint"], entry["probe_set"], entry["encoder"], k.confidence,
             k.entropy, list(card.input_shape) if card.input_shape else None]
    vectors = [[model_id, "task", entry["encoder"], np.asarray(k.kernel_vector, dtype=np.float32)],
               [model_id, "card", "minilm-v1", np.asarray(entry["card_vector"], dtype=np.float32)]]
    concepts = [[model_id, i, labels[i], float(k.concept_mass[i]), np.asarray(k.concepts[i], dtype=np.float32),
                 None if label_vectors is None else np.asarray(label_vectors[i], dtype=np.float32),
                 np.asarray(k.outputs[:, i], dtype=np.float32)]
                for i in range(len(k.concepts))]
    return model, vectors, concepts


class Catalog:
    def __init__(self, path: Path, *, read_only: bool = False):
        import duckdb

        self.path = Path(path)
        if read_only and not self.path.exists():
            raise ConfigError(f"no catalog at {self.path}")
        self.con = duckdb.connect(str(self.path), read_only=read_only)
        if not read_only:
            self.con.execute(SCHEMA)
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
        version = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            raise ConfigError(f"catalog {self.path} has schema {version}, this zoo2vec reads {SCHEMA_VERSION}: run `zoo2vec index` again")

    @staticmethod
    def schema_of(path: Path) -> str | None:
        """The schema version a catalog file was written with (None when unreadable)."""
        import duckdb

        try:
            with duckdb.connect(str(path), read_only=True) as con:
                row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.Error:
            return None
        return row[0] if row else None

    def close(self):
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writes (the indexing job) --
    def indexed(self) -> dict[str, IndexedModel]:
        rows = self.con.execute("SELECT name, model_id, fingerprint, probe_set, encoder, card FROM models").fetchall()
        return {r[0]: IndexedModel(*r[1:5], json.loads(r[5])) for r in rows}

    def put_models(self, entries: list[dict]) -> list[int]:
        """Insert or replace models in one transaction, all or nothing. Each entry: card, fingerprint, probe_set,
        encoder, knowledge (know2vec.ModelKnowledge), card_vector, and label_vectors (None without label names).

        One transaction and one bulk insert per table: a commit per model made the catalog write cost
        more than most models' forward passes on the probe set."""
        if not entries:
            return []
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            names = [e["card"].name for e in entries]
            old = [r[0] for r in con.execute("SELECT model_id FROM models WHERE list_contains(?, name)", [names]).fetchall()]
            for table in ("vectors", "concepts", "models"):
                con.execute(f"DELETE FROM {table} WHERE list_contains(?, model_id)", [old])
            first = con.execute("SELECT coalesce(max(model_id), -1) + 1 FROM models").fetchone()[0]
            self._insert([_rows_of(model_id, e) for model_id, e in enumerate(entries, start=first)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return list(range(first, first + len(entries)))

    def _insert(self, rows: list[tuple[list, list, list]]):
        """Bulk inserts from data frames (DuckDB reads them by name): row-by-row inserts of long vectors are slow."""
        import pandas as pd

        new_models = pd.DataFrame([r[0] for r in rows], columns=MODEL_COLUMNS)  # noqa: F841
        new_vectors = pd.DataFrame([v for r in rows for v in r[1]], columns=["model_id", "kind", "version", "vector"])  # noqa: F841
        new_concepts = pd.DataFrame([c for r in rows for c in r[2]],  # noqa: F841
                                    columns=["model_id", "idx", "label", "mass", "prototype", "label_vector", "outputs"])
        cols = ", ".join(MODEL_COLUMNS)
        self.con.execute(f"INSERT INTO models ({cols}) SELECT {cols} FROM new_models")
        self.con.execute("INSERT INTO vectors SELECT model_id, kind, version, vector::FLOAT[] FROM new_vectors")
        self.con.execute("INSERT INTO concepts SELECT model_id, idx, label, mass, prototype::FLOAT[], "
                         "label_vector::FLOAT[], outputs::FLOAT[] FROM new_concepts")

    def _delete(self, model_id: int):
        for table in ("vectors", "concepts", "models"):
            self.con.execute(f"DELETE FROM {table} WHERE model_id = ?", [model_id])

    def remove_model(self, name: str):
        self.con.execute("BEGIN TRANSACTION")
        row = self.con.execute("SELECT model_id FROM models WHERE name = ?", [name]).fetchone()
        if row:
            self._delete(row[0])
        self.con.execute("COMMIT")

    def record_runs(self, runs: list[tuple]):
        """(snapshot_id, name, fingerprint, status, reason, seconds) per probe run."""
        if runs:
            self.con.executemany("INSERT INTO probe_runs (snapshot_id, name, fingerprint, status, reason, seconds)"
                                 " VALUES (?, ?, ?, ?, ?, ?)", [list(r) for r in runs])

    def put_probe_embeddings(self, probe_set: str, encoder: str, embeddings: np.ndarray):
        if self.con.execute("SELECT count(*) FROM probe_embeddings WHERE probe_set = ? AND encoder = ?",
                            [probe_set, encoder]).fetchone()[0] == len(embeddings):
            return
        import pandas as pd

        self.con.execute("DELETE FROM probe_embeddings WHERE probe_set = ? AND encoder = ?", [probe_set, encoder])
        rows = pd.DataFrame({"probe_set": probe_set, "encoder": encoder, "idx": np.arange(len(embeddings)),  # noqa: F841
                             "embedding": list(np.asarray(embeddings, dtype=np.float32))})
        self.con.execute("INSERT INTO probe_embeddings SELECT probe_set, encoder, idx, embedding::FLOAT[] FROM rows")

    def record_run(self, run: dict):
        """One indexing run (the keys of index_runs; `report` a JSON-ready dict); `models` defaults to the
        snapshot's model count."""
        n = self.con.execute("SELECT count(*) FROM models").fetchone()[0]
        row = {"models": n, **run, "report": json.dumps(run["report"])}
        columns = ", ".join(row)
        self.con.execute(f"INSERT INTO index_runs ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    # -- reads (search) --
    def models(self):
        """All indexed models as a DataFrame (no vectors)."""
        return self.con.execute(
            "SELECT model_id, name, modality, license, params, source, tags, label_names, training_data, description,"
            " confidence, entropy, fingerprint, probe_set, encoder, indexed_at FROM models ORDER BY name").df()

    def cards(self, model_ids) -> dict[int, dict]:
        rows = self.con.execute("SELECT model_id, card FROM models WHERE list_contains(?, model_id)", [list(map(int, model_ids))]).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def vectors(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self.con.execute("SELECT model_id, vector FROM vectors WHERE kind = ? ORDER BY model_id", [kind]).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray([r[0] for r in rows], dtype=np.int64), np.asarray([r[1] for r in rows], dtype=np.float32)

    def profiles(self, model_ids) -> dict[int, ModelProfile]:
        """Concepts and probe-set behaviour of the given models, read as Arrow columns: converting their vectors
        through Python lists cost about 1 ms per model."""
        ids = list(map(int, model_ids))
        concepts = self.con.sql(
            "SELECT model_id, label, mass, prototype, label_vector, outputs FROM concepts WHERE list_contains(?, model_id)"
            " ORDER BY model_id, idx", params=[ids]).to_arrow_table()
        info = {r[0]: r[1:] for r in self.con.execute(
            "SELECT model_id, confidence, entropy, input_shape, encoder, modality FROM models WHERE list_contains(?, model_id)", [ids]).fetchall()}
        owner = concepts.column("model_id").to_numpy()
        if not len(owner):
            return {}
        labels = concepts.column("label").to_pylist()
        mass = concepts.column("mass").to_numpy().astype(np.float32)
        protos = _rows(concepts.column("prototype"))
        outputs = _rows(concepts.column("outputs"))
        named = concepts.column("label_vector")
        has_vector = np.asarray(named.is_valid())
        vectors = _rows(named.filter(named.is_valid()))
        vector_row = np.cumsum(has_vector) - 1
        out = {}
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(owner)]):
            m = int(owner[start])
            conf, ent, shape, encoder, modality = info[m]
            own = np.stack([vectors[i] for i in vector_row[start:stop]]) if has_vector[start:stop].all() else None
            out[m] = ModelProfile(tuple(labels[start:stop]), mass[start:stop], np.stack(protos[start:stop]), own,
                                  float(conf or 0.0), float(ent or 0.0), tuple(shape) if shape else None, encoder,
                                  modality, np.stack(outputs[start:stop], axis=1))
        return out

    def probe_embeddings(self, probe_set: str, encoder: str) -> np.ndarray:
        rows = self.con.execute("SELECT embedding FROM probe_embeddings WHERE probe_set = ? AND encoder = ? ORDER BY idx",
                                [probe_set, encoder]).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.float32)

    def probe_set_of(self, modality: str) -> str | None:
        rows = self.con.execute("SELECT DISTINCT probe_set FROM models WHERE modality = ?", [modality]).fetchall()
        return rows[0][0] if len(rows) == 1 else None

    def allowed_ids(self, where: dict | None) -> np.ndarray:
        clause, params = filters.to_sql(where)
        rows = self.con.execute(f"SELECT model_id FROM models WHERE {clause}", params).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def modalities(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT DISTINCT modality FROM models").fetchall()}

    def history(self, last: int | None = None):
        """The zoo's indexing runs, newest first (the report column parsed back into a dict)."""
        sql = "SELECT * FROM index_runs ORDER BY started_at DESC" + (" LIMIT ?" if last else "")
        runs = self.con.execute(sql, [last] if last else []).df()
        runs["report"] = [json.loads(r) for r in runs["report"]]
        if "status" not in runs:  # a catalog written before runs had a status, opened read-only: all published
            runs["status"] = "published"
        return runs

    def failures(self):
        """The models that fail now, once each: those the latest run could not index (failed, or skipped as no
        classifier), with its reasons. Every run tries each failed model of the zoo again and a model since
        deleted is tried no more, so older runs' failures are either fixed, repeated here, or gone with the model."""
        latest = self.con.execute(
            "SELECT snapshot_id FROM index_runs ORDER BY started_at DESC LIMIT 1").fetchone()
        if latest is None:  # no run history: the newest probe run's snapshot
            latest = self.con.execute("SELECT snapshot_id FROM probe_runs ORDER BY ran_at DESC LIMIT 1").fetchone()
        return self.con.execute(
            "SELECT name, status, reason, ran_at FROM probe_runs WHERE snapshot_id = ? AND status <> 'ok' "
            "QUALIFY row_number() OVER (PARTITION BY name ORDER BY ran_at DESC) = 1 ORDER BY name",
            [latest[0] if latest else None]).df()

    def runs(self, snapshot_id: str | None = None):
        sql = "SELECT snapshot_id, name, fingerprint, status, reason, seconds, ran_at FROM probe_runs"
        if snapshot_id is None:
            return self.con.execute(sql + " ORDER BY ran_at").df()
        return self.con.execute(sql + " WHERE snapshot_id = ? ORDER BY ran_at", [snapshot_id]).df()
