"""Speed at scale: zoo2vec's query time as the zoo grows, and FAISS latency/recall on synthetic vectors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from zoo2vec.index.catalog import Catalog
from zoo2vec.index.snapshots import SnapshotStore
from zoo2vec.index.vector_index import VectorIndex


def replicate_zoo(src_root: Path, n_models: int, dst_root: Path) -> Path:
    """A zoo whose index holds the source's models copied until there are n_models (for timing only).

    Every copy keeps its original's vectors and concepts, so search does the same work per model as
    on a real zoo of that size; no model folders are needed because search never calls a model.
    """
    src = SnapshotStore(src_root).current()
    dst = SnapshotStore(dst_root)
    shutil.rmtree(dst.base, ignore_errors=True)
    (Path(dst_root) / "models").mkdir(parents=True, exist_ok=True)
    snap = dst.create()
    shutil.copy2(src / "catalog.duckdb", snap / "catalog.duckdb")
    with Catalog(snap / "catalog.duckdb") as cat:
        n0 = cat.con.execute("SELECT count(*) FROM models").fetchone()[0]
        offset = cat.con.execute("SELECT max(model_id) + 1 FROM models").fetchone()[0]
        copies = -(-n_models // n0)
        for r in range(1, copies):
            cat.con.execute(f"""
                INSERT INTO models SELECT model_id + {r * offset}, name || '~{r}', modality, license, params, source, tags,
                    label_names, training_data, description, card, fingerprint, probe_set, encoder, confidence, entropy,
                    input_shape, indexed_at FROM models WHERE model_id < {offset}""")
            for table in ("vectors", "concepts"):
                cols = "model_id + {0}, kind, version, vector" if table == "vectors" else "model_id + {0}, idx, label, mass, prototype, label_vector"
                cat.con.execute(f"INSERT INTO {table} SELECT {cols.format(r * offset)} FROM {table} WHERE model_id < {offset}")
        # a mix of modalities in any size: order by a hash of the name, not by id (ids follow indexing order)
        keep = [r[0] for r in cat.con.execute("SELECT model_id FROM models ORDER BY md5(name), model_id LIMIT ?",
                                              [n_models]).fetchall()]
        for table in ("vectors", "concepts", "models"):
            cat.con.execute(f"DELETE FROM {table} WHERE NOT list_contains(?, model_id)", [keep])
        for kind in ("task", "card"):
            VectorIndex.build(*cat.vectors(kind)).save(snap / f"{kind}.faiss")
        cat.con.execute("CHECKPOINT")
    dst.publish(snap)
    return Path(dst_root)


def index_scale(sizes, *, dim: int, queries: int, k: int = 10, seed: int = 0) -> dict:
    """Latency and recall@k of the index zoo2vec picks vs exact search, on clustered synthetic vectors."""
    import faiss

    rng = np.random.default_rng(seed)
    out = {}
    for n in sizes:
        centres = rng.normal(size=(max(10, n // 1000), dim)).astype(np.float32)
        data = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        q = data[rng.choice(n, queries, replace=False)] + 0.05 * rng.normal(size=(queries, dim)).astype(np.float32)
        t0 = time.perf_counter()
        index = VectorIndex.build(np.arange(n), data)
        build_s = time.perf_counter() - t0
        exact = faiss.IndexFlatIP(dim)
        exact.add(data)
        _, truth = exact.search(q, k)
        times, found = [], []
        for row in q:
            t0 = time.perf_counter()
            ids, _ = index.search(row, k)
            times.append(time.perf_counter() - t0)
            found.append(ids)
        recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)]))
        out[str(n)] = {"index": "Flat" if index.nprobe is None else f"IVF{index.index.nlist},Flat",
                       "nprobe": index.nprobe, "dim": dim, "recall_at_10": recall, "build_s": build_s,
                       "latency_ms_p50": 1000 * float(np.median(times)), "latency_ms_p95": 1000 * float(np.percentile(times, 95))}
        del data, index, exact
    return out
