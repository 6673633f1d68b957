"""Speed at scale: zoo2vec's query time as the zoo grows, and FAISS latency/recall on synthetic vectors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from zoo2vec.index.catalog import Catalog
from zoo2vec.index.snapshots import SnapshotStore
from zoo2vec.index.vector_index import VectorIndex
from zoo2vec.zoo.layout import ZooLayout


def replicate_zoo(src_root: Path, n_models: int, dst_root: Path) -> Path:
    """A zoo whose index holds the source's models copied until there are n_models (for timing only).

    Every copy keeps its original's vectors and concepts, so search does the same work per model as
    on a real zoo of that size; no model folders are needed because search never calls a model.
    """
    src = SnapshotStore(src_root).current()
    dst = SnapshotStore(dst_root)
    shutil.rmtree(dst.base, ignore_errors=True)
    ZooLayout(dst_root).models.mkdir(parents=True, exist_ok=True)
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
                cols = "model_id + {0}, kind, version, vector" if table == "vectors" else "model_id + {0}, idx, label, mass, prototype, label_vector, outputs"
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
        # a 1%-selective filter: the allowed ids' exact top-k against what the index returns, and the time it takes
        allowed = np.sort(rng.choice(n, size=n // 100, replace=False))
        filtered_times, filtered_hits = [], []
        for row in q[:20]:
            t0 = time.perf_counter()
            ids, _ = index.search(row, k, allowed)
            filtered_times.append(time.perf_counter() - t0)
            best = allowed[np.argsort(-(data[allowed] @ row))[:k]]
            filtered_hits.append(len(set(ids.tolist()) & set(best.tolist())) / k)
        out[str(n)] = {"index": "Flat" if index.nprobe is None else f"IVF{index.index.nlist},Flat",
                       "nprobe": index.nprobe, "dim": dim, "recall_at_10": recall, "build_s": build_s,
                       "latency_ms_p50": 1000 * float(np.median(times)), "latency_ms_p95": 1000 * float(np.percentile(times, 95)),
                       "filtered_1pct_recall_at_10": float(np.mean(filtered_hits)),
                       "filtered_1pct_latency_ms_p50": 1000 * float(np.median(filtered_times))}
        del data, index, exact
    return out


def _random_filter(models, rng) -> dict:
    """One or two conditions over modality, license, params, tags and source, drawn from the zoo's own values."""
    fields = rng.choice(["modality", "license", "params", "tags", "source"], size=rng.integers(1, 3), replace=False)
    where: dict = {}
    for field in fields:
        if field == "modality":
            where["modality"] = str(rng.choice(sorted(models["modality"].unique())))
        elif field == "license":
            licenses = sorted(models["license"].dropna().unique())
            where["license"] = [str(x) for x in rng.choice(licenses, size=rng.integers(1, 3), replace=False)]
        elif field == "params":
            where["params"] = (str(rng.choice(["<", ">="])), float(np.quantile(models["params"].dropna(), rng.random())))
        elif field == "tags":
            tags = sorted({t for ts in models["tags"].dropna() for t in ts})
            where["tags"] = str(rng.choice(tags))
        else:
            where["source"] = str(rng.choice(sorted(models["source"].dropna().unique())))
    return where


def filtered_search(zoo_root: Path, *, pairs: int = 1000, k: int = 10, seed: int = 0) -> dict:
    """Filtered search against exact filtered search, and the latency of a 1%-selective filter.

    Exactness: `pairs` random (filter, query) pairs on the zoo's real task vectors; a pair matches when the
    index returns min(k, allowed) allowed models whose scores equal the exact top-k scores over the allowed
    vectors (equal scores may come in any order: replicated zoos hold identical vectors). Latency: end-to-end
    text searches with a filter that keeps 1% of the models (by name) against the same searches unfiltered.
    """
    import zoo2vec

    snapshot = SnapshotStore(zoo_root).current()
    index = VectorIndex.load(snapshot / "task.faiss")
    rng = np.random.default_rng(seed)
    with Catalog(snapshot / "catalog.duckdb", read_only=True) as cat:
        models = cat.models()
        ids, vectors = cat.vectors("task")
        row_of = {int(i): r for r, i in enumerate(ids)}
        matches, empty = 0, 0
        for _ in range(pairs):
            where = _random_filter(models, rng)
            allowed = cat.allowed_ids(where)
            query = vectors[rng.integers(len(vectors))] + 0.05 * rng.standard_normal(vectors.shape[1]).astype(np.float32)
            got, got_scores = index.search(query, k, allowed)
            if not len(allowed):
                empty += 1
                matches += len(got) == 0
                continue
            exact = np.sort(vectors[[row_of[int(a)] for a in allowed]] @ query)[::-1][:k]
            matches += (len(got) == len(exact) and set(got.tolist()) <= set(allowed.tolist())
                        and len(set(got.tolist())) == len(got) and np.allclose(got_scores, exact, atol=1e-4))
    zoo = zoo2vec.open(zoo_root)
    names = models["name"].tolist()
    texts = ["handwritten digit recognition", "movie review sentiment", "spam detection", "news topics",
             "medical images", "customer intent"]
    zoo.search(text=texts[0], k=k)  # warm: snapshot, sentence encoder
    plain, selective = [], []
    for i in range(60):
        text = texts[i % len(texts)]
        where = {"name": [str(n) for n in rng.choice(names, size=max(1, len(names) // 100), replace=False)]}
        t0 = time.perf_counter()
        zoo.search(text=text, k=k)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        found = zoo.search(text=text, k=k, where=where)
        selective.append(time.perf_counter() - t0)
        # replicas keep their original's card, so results carry the original name
        assert {r.name for r in found} <= {n.split("~")[0] for n in where["name"]}
    return {"exact_match_rate": matches / pairs, "pairs": pairs, "empty_filters": empty, "k": k,
            "models": len(names), "latency_ms_p50_unfiltered": 1000 * float(np.median(plain)),
            "latency_ms_p50_1pct": 1000 * float(np.median(selective)),
            "latency_ratio_1pct": float(np.median(selective) / np.median(plain))}
