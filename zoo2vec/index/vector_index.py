"""FAISS over the catalog's vectors: inner-product search, restricted to the ids a filter allows.

The index is derived data: it is rebuilt from DuckDB and saved beside the catalog in a snapshot.
The index type follows the vector count (as autofaiss does): exact search up to EXACT_LIMIT vectors,
an inverted file above it; a factory string overrides the choice. Filters are pushed into the search
(an IDSelector), and a selective filter on an inverted file scans every list, so a filtered search
returns k results and the right ones.

With faiss-gpu installed and a GPU visible, a loaded index is also copied to the GPUs and unfiltered searches run
there (filtered ones stay on the CPU copy, whose ID selector GPU indexes do not take); $ZOO2VEC_FAISS_GPU=0 turns
this off. Untested here: this project's machines have no GPU (see bench/INDEXING.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

EXACT_LIMIT = 50_000
# A filter that leaves at most this share of an inverted-file index is searched in every list (distances
# are computed for allowed vectors only): IVF probes only some lists, and a selective filter's few allowed
# vectors may lie elsewhere. A 1% filter at 10^6 vectors takes 7-8 ms this way (unfiltered: 1.1-1.5 ms).
SELECTIVE_SHARE = 0.05


def choose_factory(n: int) -> str:
    """Flat (exact) for small indexes; IVF with about 4 sqrt(n) lists (at most 1024: training stays
    under a minute on 2 cores) beyond EXACT_LIMIT."""
    if n <= EXACT_LIMIT:
        return "Flat"
    nlist = min(1024, 2 ** round(math.log2(4 * math.sqrt(n))))
    return f"IVF{nlist},Flat"


def on_gpus(index, nprobe: int | None = None):
    """A copy of `index` on every visible GPU, or None: faiss without GPU support, no GPU, $ZOO2VEC_FAISS_GPU=0, or an
    index type the GPU cloner does not take."""
    import faiss

    if os.environ.get("ZOO2VEC_FAISS_GPU", "").strip() == "0" or not hasattr(faiss, "index_cpu_to_all_gpus"):
        return None
    try:
        if faiss.get_num_gpus() < 1:
            return None
        gpu = faiss.index_cpu_to_all_gpus(index)
        if nprobe is not None:
            faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", nprobe)
        return gpu
    except (RuntimeError, AttributeError):
        return None


class VectorIndex:
    def __init__(self, index, *, nprobe: int | None = None, gpu=None):
        self.index = index
        self.nprobe = nprobe
        self.gpu = gpu  # the same vectors on the GPUs (on_gpus), for unfiltered searches

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, factory: str | None = None, seed: int = 0) -> VectorIndex:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1] if vectors.size else 1
        factory = factory or choose_factory(len(ids))
        if factory == "Flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
            if not index.is_trained:
                rng = np.random.default_rng(seed)
                sample = vectors[rng.choice(len(vectors), size=min(len(vectors), 64 * index.nlist), replace=False)]
                index.train(sample)
        if len(ids):
            index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        nprobe = max(16, index.nlist // 32) if hasattr(index, "nlist") else None
        return cls(index, nprobe=nprobe)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        import faiss

        index = faiss.read_index(str(path))
        ivf = faiss.try_extract_index_ivf(index)
        nprobe = max(16, ivf.nlist // 32) if ivf is not None else None
        return cls(index, nprobe=nprobe, gpu=on_gpus(index, nprobe))

    def save(self, path: Path):
        import faiss

        faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and inner-product scores of the k best vectors among `allowed` (all when None)."""
        ids, scores = self.search_many(np.asarray(query, dtype=np.float32).reshape(1, -1), k, allowed)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def search_many(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None):
        import faiss

        q = np.ascontiguousarray(queries, dtype=np.float32)
        if len(self) == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.full((len(q), 0), -1, dtype=np.int64), np.zeros((len(q), 0), dtype=np.float32)
        if allowed is None and self.gpu is not None:
            scores, ids = self.gpu.search(q, min(k, len(self)))
            return ids, scores
        sel = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if self.nprobe is not None:
            nprobe = self.nprobe
            if allowed is not None and len(allowed) <= SELECTIVE_SHARE * len(self):
                nprobe = faiss.extract_index_ivf(self.index).nlist
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        else:
            params = None if sel is None else faiss.SearchParameters(sel=sel)
        scores, ids = self.index.search(q, min(k, len(self)), params=params)
        return ids, scores
