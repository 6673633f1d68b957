"""The indexing job's numbers (issue 13): throughput per executor, what a 10% change costs, kill -9 at random moments,
a zoo of models that misbehave. Writes bench/INDEXING.md and the "indexing" entry of bench/results.json.

    ZOO2VEC_HOME=... python bench/indexing_numbers.py                 # everything (about 40 minutes on 2 cores)
    ZOO2VEC_HOME=... python bench/indexing_numbers.py --only kill9    # one part; parts done earlier are kept

Throughput and the 10% change run on the bench zoo (built by `zoo2vec eval`, or here when missing: long), the kill -9
trials on the demo zoo (built here when missing), the misbehaving models on the tiny zoo of the tests plus five of
tests/faulty_models.py. Each part's result is kept in $ZOO2VEC_HOME/bench/indexing.json, so parts can run apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MARK = "zoo2vec-bench-mark.txt"  # a file whose content changes a model folder's fingerprint (and nothing else)


def _say(text: str):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _cli() -> list[str]:
    return [str(Path(sys.executable).with_name("zoo2vec"))]


def _vectors(root: Path) -> dict[str, np.ndarray]:
    """Every model's task vector in the zoo's published catalog, by name."""
    from zoo2vec.index.catalog import Catalog
    from zoo2vec.index.snapshots import SnapshotStore

    with Catalog(SnapshotStore(root).current() / "catalog.duckdb", read_only=True) as catalog:
        rows = catalog.con.execute("SELECT m.name, v.vector FROM models m JOIN vectors v USING (model_id) "
                                   "WHERE v.kind = 'task'").fetchall()
    return {name: np.asarray(vector, dtype=np.float32) for name, vector in rows}


def _linked_copy(src: Path, dst: Path) -> Path:
    """A zoo with src's models as one link per model folder (so that single folders can be swapped for real copies)
    and src's manifest, without src's index."""
    from zoo2vec.zoo.layout import ZooLayout

    shutil.rmtree(dst, ignore_errors=True)
    src_layout, dst_layout = ZooLayout(src), ZooLayout(dst)
    dst_layout.models.mkdir(parents=True)
    for folder in sorted(src_layout.models.iterdir()):
        if folder.is_dir():
            (dst_layout.models / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
    dst_layout.write_manifest(src_layout.manifest())
    return dst


def _cold(home: Path):
    """Forget the sentence embeddings earlier runs kept (zoo.sentence's disk memo), so that a full run measured here
    costs what a zoo's first run costs."""
    shutil.rmtree(home / "encoders" / "memo", ignore_errors=True)


def throughput(home: Path, workers: tuple[int, ...] = (1, 2)) -> dict:
    """Models per minute on the bench zoo from an empty probe cache, per executor; then the cost of a run after 10%
    of the model folders changed, against the full run; and whether Ray's catalog vectors equal the local one's."""
    from zoo2vec.eval.bench_zoo import build_bench_zoo
    from zoo2vec.jobs.indexing import run_index
    from zoo2vec.zoo.layout import ZooLayout

    bench = home / "zoos" / "bench"
    if not ZooLayout(bench).manifest_path.exists():
        _say("building the bench zoo (long)")
    build_bench_zoo(bench)
    work = home / "bench" / "indexing-zoo"
    out: dict = {"models_per_min": {}, "runs": {}}
    vectors = {}
    configs = [(f"local_{w}", "local", w) for w in workers] + [("ray_2", "ray", 2)]
    for label, executor, n in configs:
        _linked_copy(bench, work)
        _cold(home)
        _say(f"full run, {label}")
        report = run_index(work, executor=executor, workers=n)
        out["models_per_min"][label] = 60 * len(report.probed) / report.seconds
        out["runs"][label] = {"models": report.indexed, "probed": len(report.probed), "failed": len(report.failed),
                              "seconds": report.seconds}
        vectors[label] = _vectors(work)
        _say(f"  {report.summary().splitlines()[0]}")
    local, ray = vectors[f"local_{max(workers)}"], vectors["ray_2"]
    out["ray_equals_local"] = bool(local.keys() == ray.keys() and all(
        np.allclose(local[n], ray[n], atol=1e-5) for n in local))
    return {**out, **incremental(home, max(workers))}


def incremental(home: Path, workers: int = 2) -> dict:
    """A full run of the bench zoo from an empty probe cache, then a run after 10% of the model folders changed, then
    one with nothing changed."""
    from zoo2vec.jobs.indexing import run_index
    from zoo2vec.zoo.layout import ZooLayout

    bench = home / "zoos" / "bench"
    work = home / "bench" / "indexing-zoo"
    out: dict = {}
    # 10% of the model folders change (a file added: new fingerprints); the index of the last full run is the start
    _linked_copy(bench, work)
    _cold(home)
    full = run_index(work, workers=workers)
    folders = sorted(p for p in ZooLayout(work).models.iterdir() if p.is_symlink())
    rng = np.random.default_rng(0)
    changed = sorted(rng.choice(len(folders), size=max(1, round(0.1 * full.indexed)), replace=False))
    names = set()
    for i in changed:
        link = folders[i]
        target = link.resolve()
        link.unlink()
        shutil.copytree(target, link, symlinks=True)
        (link / MARK).write_text("changed\n")
        names.add(link.name)
    _say(f"a run after {len(names)} of {full.indexed} models changed")
    again = run_index(work, workers=workers)
    out["incremental"] = {"models": full.indexed, "changed": len(names), "probed": len(again.probed),
                          "only_changed_probed": set(again.probed) == names, "full_s": full.seconds,
                          "incremental_s": again.seconds,
                          "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out["incremental_10pct_ratio"] = again.seconds / full.seconds
    still = run_index(work, workers=workers)  # nothing changed since: what a quiet night costs
    out["incremental"].update(no_change_s=still.seconds, no_change_probed=len(still.probed))
    shutil.rmtree(work, ignore_errors=True)
    return out


def kill9(home: Path, trials: int, seed: int = 0) -> dict:
    """kill -9 of `zoo2vec index` at `trials` random moments of a full run of the demo zoo (crash_trials.kill9)."""
    from zoo2vec.eval import crash_trials
    from zoo2vec.train.demo_zoo import build_demo_zoo

    root = home / "zoos" / "demo"
    build_demo_zoo(root, progress=lambda name: None)
    return crash_trials.kill9(root, trials, seed=seed, progress=_say)


def faulty(home: Path) -> dict:
    """The tiny zoo and five models that hang, segfault, os._exit, allocate past the cap and raise, indexed by the
    CLI: every misbehaviour recorded with its reason, every other model indexed, no worker left, exit code 1."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    import faulty_models
    from conftest import TINY_MODELS

    from zoo2vec.eval import crash_trials
    from zoo2vec.train.demo_zoo import build_demo_zoo
    from zoo2vec.zoo.layout import ZooLayout

    root = Path(tempfile.mkdtemp(prefix="zoo2vec-faulty-")) / "zoo"
    build_demo_zoo(root, names=TINY_MODELS)
    for how in faulty_models.HOW:
        faulty_models.save(ZooLayout(root).models, f"faulty-{how}", how)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "tests"), os.environ.get("PYTHONPATH", "")]),
           "ZOO2VEC_WORKER_MEMORY_MB": "4096"}
    child = subprocess.Popen([*_cli(), "index", str(root), "--workers", "2", "--timeout", "30", "--trust-pickle",
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    workers: set[int] = set()
    while child.poll() is None:
        workers |= crash_trials.spawned_children(child.pid)
        time.sleep(0.2)
    report = json.loads(child.stdout.read())
    time.sleep(1.0)
    failed = report["failed"]
    recorded = {how: failed.get(f"faulty-{how}", "") for how in faulty_models.HOW}
    shutil.rmtree(root.parent, ignore_errors=True)
    return {"planted": len(faulty_models.HOW), "recorded": sum(bool(v) for v in recorded.values()),
            "exit_code": child.returncode, "workers_left": len(crash_trials.alive(workers)),
            "others_indexed": report["indexed"] == len(TINY_MODELS), "reasons": recorded}


def render(numbers: dict, stamp: str) -> str:
    t = numbers.get("throughput", {})
    k = numbers.get("kill9", {})
    f = numbers.get("faulty", {})
    lines = ["# The indexing job (measured)", "",
             f"`python bench/indexing_numbers.py`, {stamp}. Models run only in worker processes. Every full run "
             "starts from an empty probe-output cache and an empty sentence-embedding memo. The machine is shared: "
             "compare the ratios, not the absolute rates.", ""]
    if t:
        lines += ["## Throughput on the bench zoo", "",
                  "| executor | models probed | seconds | models per minute |", "|---|---|---|---|"]
        for label, rate in t["models_per_min"].items():
            run = t["runs"][label]
            lines.append(f"| {label} | {run['probed']} ({run['failed']} failed) | {run['seconds']:.1f} | {rate:.1f} |")
        inc = t["incremental"]
        lines += ["", f"Measured {inc.get('measured_at', 'with the throughput above')}: "
                  f"a run after {inc['changed']} of {inc['models']} model folders changed: {inc['incremental_s']:.1f} s "
                  f"against {inc['full_s']:.1f} s for the full run (ratio {t['incremental_10pct_ratio']:.2f}); "
                  f"{inc['probed']} models probed, "
                  f"{'exactly the changed ones' if inc['only_changed_probed'] else 'NOT only the changed ones'}. "
                  "The rest of such a run is fixed cost: listing every folder (a folder the file system reports "
                  "unchanged is neither hashed nor its card read again), starting the workers and the frameworks the "
                  "changed models import (torch, TensorFlow, skops: once per worker), card and label text of the "
                  "changed models, the catalog copy and the FAISS rebuild. A changed text model on the packaged "
                  "sentence encoder reads the probe set's embeddings from the encoder's disk memo (zoo.sentence) "
                  "instead of loading the encoder and embedding the probe set again in each worker. "
                  + (f"A run with nothing changed: {inc['no_change_s']:.1f} s, {inc['no_change_probed']} probed."
                     if "no_change_s" in inc else ""), "",
                  f"Ray (2 CPUs, local instance) and local executors give the same catalog vectors (to 1e-5): "
                  f"**{t['ray_equals_local']}**.", ""]
    if k:
        lines += ["## kill -9 at random moments (demo zoo)", "",
                  f"{k['trials']} trials: `zoo2vec index` killed with SIGKILL at a random moment of a full run "
                  f"({k['full_run_s']:.0f} s), then run again.", "",
                  "| | trials |", "|---|---|",
                  f"| the next run finished with every model indexed | {k['resumed']} / {k['trials']} |",
                  f"| left an orphaned snapshot, temp file or held lock | {k['orphans']} |",
                  f"| worker processes alive after the kill | {k['workers_left']} |",
                  f"| models the killed run had cached that the next run ran again | {k['cached_run_again']} |",
                  f"| runs killed after they began (not while Python imported), before publishing, that `zoo2vec runs` lists | "
                  f"{k.get('killed_in_history', '-')} / {k.get('killed', '-')} |",
                  f"| searches against the old snapshot that answered differently | {k['search_mismatches']} of "
                  f"{k['searches']} |", "",
                  "| kill at s | models to probe | cached by the killed run | run by the next | indexed |",
                  "|---|---|---|---|---|"]
        lines += [f"| {d['kill_at_s']} | {d['changed']} | {d['cached_before']} | {d['models_run_again']} | "
                  f"{d['indexed']} |" for d in k["details"]]
        lines.append("")
    if f:
        lines += ["## A zoo with models that misbehave", "",
                  f"The tiny zoo plus {f['planted']} planted models: {f['recorded']} recorded with their reasons, "
                  f"other models all indexed: {f['others_indexed']}, exit code {f['exit_code']}, worker processes "
                  f"left: {f['workers_left']}.", "", "| model does | recorded reason |", "|---|---|"]
        lines += [f"| {how} | {reason.splitlines()[0][:160] if reason else '(not recorded)'} |"
                  for how, reason in f["reasons"].items()]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("throughput", "incremental", "kill9", "faulty"), action="append",
                        help="incremental: only the 10%% change part of throughput")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from zoo2vec import settings

    home = settings.home()
    kept = home / "bench" / "indexing.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    numbers = json.loads(kept.read_text()) if kept.exists() else {}
    parts = args.only or ["faulty", "kill9", "throughput"]
    for part in parts:
        _say(f"part {part}")
        if part == "incremental":  # throughput's last part again, its other figures kept
            numbers["throughput"] = {**numbers.get("throughput", {}), **incremental(home)}
        else:
            numbers[part] = {"throughput": lambda: throughput(home), "kill9": lambda: kill9(home, args.trials),
                             "faulty": lambda: faulty(home)}[part]()
        kept.write_text(json.dumps(numbers, indent=1))
    import zoo2vec

    stamp = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} with {os.cpu_count()} "
             f"cores, Python {platform.python_version()}, zoo2vec {zoo2vec.__version__}")
    (HERE / "INDEXING.md").write_text(render(numbers, stamp))
    results = HERE / "results.json"
    data = json.loads(results.read_text())
    t, k, f = numbers.get("throughput", {}), numbers.get("kill9", {}), numbers.get("faulty", {})
    data["indexing"] = {
        "models_per_min": t.get("models_per_min"), "incremental_10pct_ratio": t.get("incremental_10pct_ratio"),
        "kill9": {key: k.get(key) for key in ("trials", "resumed", "orphans", "cached_run_again", "workers_left",
                                             "killed", "killed_in_history")},
        "faulty": {key: f.get(key) for key in ("planted", "recorded", "exit_code", "workers_left")},
        "ray_equals_local": t.get("ray_equals_local")}
    results.write_text(json.dumps(data, indent=1) + "\n")
    _say(f"wrote {HERE / 'INDEXING.md'} and the indexing entry of {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
