"""`zoo2vec eval --study`: how probe-set size and the image reference encoder change ranking quality and
indexing cost.

Each variant is the bench zoo's models (linked, not copied) indexed afresh with other probe sets, so every
model is probed and its cost measured. The alignment is retrained on the variant's meta-training features
exactly as `zoo2vec train-align` does; the untrained and learned scores are evaluated on the held-out tasks
against the cached ground truth. Writes bench/study.json, bench/STUDY.md and bench/probe_set_size.png.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import zoo2vec
from zoo2vec import settings
from zoo2vec.encoders import alignment, probe_set
from zoo2vec.eval import align
from zoo2vec.eval.tasks import materialize
from zoo2vec.jobs.indexing import run_index
from zoo2vec.train.alignment import fit
from zoo2vec.zoo.layout import ZooLayout

VARIANTS = {
    "n256": {"image": "image-v1-n256", "text": "text-v2-n256"},
    "default": {"image": "image-v1-pixels-hog", "text": "text-v2"},
    "n1024": {"image": "image-v1-n1024", "text": "text-v2-n1024"},
    "n4096": {"image": "image-v1-n4096", "text": "text-v2-n4096"},
    "clip": {"image": "image-v1-clip", "text": "text-v2"},
}
QUALITY = ("weighted_tau", "top1", "top3", "regret1")


def link_zoo(src: Path, dst: Path, probe_sets: dict[str, str]) -> Path:
    """A zoo of src's models (linked) with other probe sets and no index yet, so that indexing it measures every model."""
    src, dst = ZooLayout(src), ZooLayout(dst)
    shutil.rmtree(dst.state, ignore_errors=True)
    dst.root.mkdir(parents=True, exist_ok=True)
    if not dst.models.exists():
        dst.models.symlink_to(src.models.resolve(), target_is_directory=True)
    dst.write_manifest({**src.manifest(), "probe_sets": probe_sets})
    return dst.root


def _quality(feats, gt, ids, scorer, modality_of) -> dict:
    by_group = {"all": ids, **{m: [t for t in ids if modality_of[t] == m] for m in ("image", "text")}}
    quality = {group: align.evaluate(scorer, feats, gt, task_ids, QUALITY) for group, task_ids in by_group.items()}
    return {group: q for group, q in quality.items() if q is not None}


def costs_of(report) -> dict:
    """Indexing cost per freshly probed model: zoo2vec's own time against the model's forward passes."""
    forward = np.array([f for f, _ in report.costs.values()])
    other = np.array([o for _, o in report.costs.values()])
    if not len(forward):
        return {}
    within = other <= np.maximum(0.2 * forward, 0.05)
    return {"models": len(forward), "forward_ms_p50": 1000 * float(np.median(forward)),
            "other_ms_p50": 1000 * float(np.median(other)), "other_ms_p95": 1000 * float(np.percentile(other, 95)),
            "within_target": float(within.mean()), "index_s": report.seconds}


def run(out_dir: Path = Path("bench"), *, variants: list[str] | None = None,
        progress: Callable[[str], None] | None = None) -> dict:
    say = progress or (lambda text: None)
    root, config, specs, gt = align.prepare("bench", progress=say)
    meta_ids = [s.task_id for s in specs if s.meta]
    held_ids = [s.task_id for s in specs if s.held_out]
    modality_of = {s.task_id: s.modality for s in specs}
    allowed = align.meta_training_models(root, config)
    out: dict = {"variants": {}}
    for name in variants or list(VARIANTS):
        sets = VARIANTS[name]
        if sets["image"] == "image-v1-clip":
            _ensure_clip(config, say)
        say(f"study {name}: indexing with {sets}")
        vroot = link_zoo(root, settings.home() / "zoos" / "study" / name, sets)
        report = run_index(vroot)
        if report.failed:
            say(f"  {len(report.failed)} models failed: {sorted(report.failed.items())[:3]}")
        zoo = zoo2vec.open(vroot, alignment=alignment.UNTRAINED)
        feats = align.task_features(zoo, specs)
        scorer = fit([(x, y) for x, y, _ in align.groups(feats, gt, meta_ids, alignment.FEATURES, allowed)])
        learned = zoo2vec.open(vroot)
        learned.alignment = scorer
        latency = []
        for spec in [s for s in specs if s.held_out][:24]:
            query, _ = materialize(spec)
            t0 = time.perf_counter()
            learned.search(query, k=5)
            latency.append(time.perf_counter() - t0)
        out["variants"][name] = {
            "probe_sets": {m: probe_set.version(p) for m, p in sets.items()},
            "probes": {m: sum(part["n"] for part in probe_set.config(p)["parts"]) for m, p in sets.items()},
            "untrained": _quality(feats, gt, held_ids, alignment.untrained(), modality_of),
            "learned": _quality(feats, gt, held_ids, scorer, modality_of),
            "indexing": costs_of(report), "failed": len(report.failed),
            "search_ms_p50": 1000 * float(np.median(latency)),
        }
        say(f"  learned weighted tau {out['variants'][name]['learned']['all']['weighted_tau']:.3f}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "study.json").write_text(json.dumps(out, indent=1))
    (out_dir / "STUDY.md").write_text(_markdown(out))
    _plot(out, out_dir)
    return out


def _ensure_clip(config: dict, say):
    from zoo2vec.encoders import clip
    from zoo2vec.eval import captions
    from zoo2vec.eval.tasks import held_out_datasets

    if clip.current().startswith("self:") and not (clip.checkpoint_dir() / "model.pt").exists():
        say("training the self-trained CLIP first (zoo2vec train-clip)")
        captions.train(held_out=held_out_datasets(config), progress=say)


def _markdown(out: dict) -> str:
    lines = ["# Probe sets and reference encoders (`zoo2vec eval --study`)", "",
             "Each variant indexes the bench zoo's 169 models afresh with the probe sets named; the alignment is "
             "retrained on that variant's meta-training features (as `zoo2vec train-align`); quality is on the 72 "
             "held-out tasks. Indexing cost per model: zoo2vec's own time (loading, checks, Know2Vec encoding, its share "
             "of card/label embedding) next to the model's forward passes on the probe set; the target is at most "
             "max(20% of the forward passes, 50 ms).", "",
             "| variant | probes (image / text) | learned tau | untrained tau | image tau | text tau | top-3 | regret@1 "
             "| forward ms p50 | zoo2vec ms p50 | within target | index s | search ms p50 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in out["variants"].items():
        learned, plain, cost = v["learned"], v["untrained"], v["indexing"]
        lines.append(
            f"| {name} ({v['probe_sets']['image'].split('@')[0]}, {v['probe_sets']['text'].split('@')[0]}) "
            f"| {v['probes']['image']} / {v['probes']['text']} | {learned['all']['weighted_tau']:.3f} "
            f"| {plain['all']['weighted_tau']:.3f} | {learned['image']['weighted_tau']:.3f} | {learned['text']['weighted_tau']:.3f} "
            f"| {learned['all']['top3']:.2f} | {learned['all']['regret1']:.3f} "
            + (f"| {cost['forward_ms_p50']:.1f} | {cost['other_ms_p50']:.1f} | {cost['within_target']:.0%} | {cost['index_s']:.0f} "
               if cost else "| - | - | - | - ")
            + f"| {v['search_ms_p50']:.0f} |")
    lines += ["", "![quality and cost vs probe-set size](probe_set_size.png)", ""]
    return "\n".join(lines)


def _plot(out: dict, out_dir: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sized = [(v["probes"]["image"] + v["probes"]["text"], v) for k, v in out["variants"].items() if k != "clip"]
    sized.sort(key=lambda t: t[0])
    if not sized:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    n = [s for s, _ in sized]
    for group in ("all", "image", "text"):
        a.plot(n, [v["learned"][group]["weighted_tau"] for _, v in sized], "o-", label=f"learned, {group}")
    a.plot(n, [v["untrained"]["all"]["weighted_tau"] for _, v in sized], "s--", label="untrained, all")
    a.set_xscale("log")
    a.set_xlabel("probe inputs (image + text)")
    a.set_ylabel("weighted tau, held-out tasks")
    a.legend()
    b.plot(n, [v["indexing"].get("index_s", np.nan) for _, v in sized], "o-")
    b.set_xscale("log")
    b.set_xlabel("probe inputs (image + text)")
    b.set_ylabel("indexing the bench zoo from scratch (s)")
    fig.tight_layout()
    fig.savefig(out_dir / "probe_set_size.png", dpi=110)
    plt.close(fig)
