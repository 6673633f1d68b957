"""`zoo2vec eval`, the run: build the bench zoo, index it, measure ground truth, rank held-out tasks with every
method, and measure the rest (ablation, indexing cost, verification, text queries, filtered search, speed and
scale); the result is the dict written as bench/results.json (eval.report renders it as RESULTS.md and plots)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import zoo2vec
from zoo2vec import settings
from zoo2vec.encoders import alignment
from zoo2vec.eval import align, metrics
from zoo2vec.eval.bench_zoo import BENCH_VERSION
from zoo2vec.eval.speed import filtered_search, index_scale, replicate_zoo
from zoo2vec.eval.tasks import materialize
from zoo2vec.jobs.indexing import run_index
from zoo2vec.train.alignment import fit
from zoo2vec.zoo.layout import ZooLayout

METHODS = ("zoo2vec", "zoo2vec_untrained", "random", "largest", "static", "card_text", "logme", "leep", "nce", "knn")
EXHAUSTIVE = ("logme", "leep", "nce", "knn")
METRICS = ("weighted_tau", "weighted_tau_rank_none", "pearson", "top1", "top3", "ndcg5", "regret1")


def _say(progress, text):
    if progress:
        progress(text)


def run(config_name: str = "bench", *, fresh: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """The whole benchmark of a bench config ("bench" or "quick"): results.json's dict. fresh=True measures the
    ground truth again instead of reusing the cached one."""
    started = time.perf_counter()
    root, config, specs, gt = align.prepare(config_name, fresh=fresh, progress=progress)
    work = settings.home() / "bench" / config["name"]
    zoo = zoo2vec.open(root)
    untrained = zoo2vec.open(root, alignment=alignment.UNTRAINED)
    held_features: dict[str, dict[str, dict]] = {}
    models = zoo.models()

    meta_tasks = {s.task_id for s in specs if not s.held_out}
    static = gt[gt.task_id.isin(meta_tasks)].groupby("model")["accuracy"].mean()
    params = models.set_index("name")["params"].fillna(0)
    per_task: dict[str, dict[str, dict]] = {m: {} for m in METHODS}
    latency: dict[str, list[float]] = {m: [] for m in METHODS}
    work_passes: dict[str, list[float]] = {m: [] for m in METHODS}
    for spec in [s for s in specs if s.held_out]:
        rows = gt[gt.task_id == spec.task_id].set_index("model")
        if len(rows) < 2:
            continue
        names = list(rows.index)
        y = rows["accuracy"].to_numpy()
        query, _ = materialize(spec)
        scores = {}
        for m, z in (("zoo2vec", zoo), ("zoo2vec_untrained", untrained)):
            t0 = time.perf_counter()
            found = {r.name: r for r in z.search(query, k=len(models))}
            latency[m].append(time.perf_counter() - t0)
            work_passes[m].append(0)
            scores[m] = [found[n].score if n in found else -1e9 for n in names]
        held_features[spec.task_id] = {n: r.features for n, r in found.items()}  # the same for both scorers
        t0 = time.perf_counter()
        words = {r.name: r.text_similarity for r in zoo.search(text="classes: " + ", ".join(query.label_names),
                                                                  k=len(models), where={"modality": spec.modality})}
        latency["card_text"].append(time.perf_counter() - t0)
        work_passes["card_text"].append(0)
        rng = np.random.default_rng(spec.seed)
        scores["card_text"] = [words.get(n, -1e9) for n in names]
        query_blind = {
            "random": lambda: rng.random(len(names)).tolist(),
            "largest": lambda: [float(params.get(n, 0)) for n in names],
            "static": lambda: [float(static.get(n, static.mean() if len(static) else 0.0)) for n in names],
        }
        for m, rank in query_blind.items():
            t0 = time.perf_counter()
            scores[m] = rank()
            latency[m].append(time.perf_counter() - t0)
            work_passes[m].append(0)
        for m in EXHAUSTIVE:
            scores[m] = rows[m].to_numpy().tolist()
            latency[m].append(float((rows["forward_s"] + rows[f"{m}_s"]).sum()))
            work_passes[m].append(float(rows["forward_passes"].sum()))
        for m in METHODS:
            per_task[m][spec.task_id] = metrics.all_metrics(y, np.asarray(scores[m], dtype=np.float64))

    held_out = {}
    for m in METHODS:
        values = per_task[m]
        summary = {k: float(np.mean([v[k] for v in values.values()])) for k in METRICS}
        summary.update({f"{k}_ci95": list(metrics.bootstrap_ci([v[k] for v in values.values()])) for k in METRICS})
        summary.update(latency_ms_p50=1000 * float(np.median(latency[m])), latency_ms_p95=1000 * float(np.percentile(latency[m], 95)),
                       forward_passes=float(np.mean(work_passes[m])), tasks=len(values))
        held_out[m] = summary

    _say(progress, "ablation: the alignment retrained without each knowledge component")
    ablation = _ablation(zoo, untrained, root, config, specs, gt, held_features)
    _say(progress, "indexing cost: the bench zoo's models indexed afresh in a linked copy")
    cost = _indexing_cost(root, work)
    _say(progress, "timing search as the zoo grows")
    growth = _growth(root, work, config, gt, specs)
    _say(progress, "verify: the first 5 candidates run on the query samples")
    verified = _verify(zoo, specs, gt, n=5)
    _say(progress, "text queries: BM25, card MiniLM, the mixture-of-experts encoder and zoo2vec's words search")
    words = _text_queries(zoo, root, work, config, specs, gt, progress)
    _say(progress, "filtered search: exactness and a 1%-selective filter's latency")
    filtered = filtered_search(work / f"replica-{max(config['zoo_sizes'])}")
    _say(progress, "index scale on synthetic vectors")
    scale = index_scale(**config["index_scale"])
    results = {
        "meta": _meta(config, models, specs, time.perf_counter() - started, zoo.alignment.version),
        "held_out": held_out,
        "per_task": per_task,
        "ablation": ablation,
        "indexing_cost": cost,
        "verify": verified,
        "filtered": filtered,
        "text_queries": words,
        "scale": {"zoo_size": growth, "index": scale,
                  "ratio_zoo2vec_to_logme_p50": held_out["zoo2vec"]["latency_ms_p50"] / held_out["logme"]["latency_ms_p50"]},
    }
    return results


def _ablation(zoo, untrained, root: Path, config: dict, specs, gt, held_features: dict) -> dict:
    """Held-out quality of the untrained score, the learned alignment, and the alignment retrained without each
    knowledge component (same meta-training tasks and settings as the served checkpoint)."""
    meta = [s for s in specs if not s.held_out]
    meta_features = align.task_features(untrained, meta)
    allowed = align.meta_training_models(root, config)
    held_ids = [s.task_id for s in specs if s.held_out and s.task_id in held_features]
    hidden = int(zoo.alignment.trained_on.get("hidden", 0)) if not zoo.alignment.untrained else 0

    def evaluate(scorer) -> dict:
        return align.evaluate(scorer, held_features, gt, held_ids)

    def learned(names) -> alignment.Alignment:
        data = align.groups(meta_features, gt, [s.task_id for s in meta], names, allowed)
        return fit([(x, y) for x, y, _ in data], features=names, hidden=hidden)

    rows = {"untrained score (mean of kernel alignment and concept match)": evaluate(alignment.untrained()),
            f"learned alignment ({zoo.alignment.version}, served)": evaluate(zoo.alignment),
            "learned alignment, retrained here": evaluate(learned(alignment.FEATURES))}
    for group, names in alignment.GROUPS.items():
        rows[f"learned, without {group}"] = evaluate(learned(tuple(f for f in alignment.FEATURES if f not in names)))
    return rows


def _verify(zoo, specs, gt, *, n: int) -> dict:
    """search(verify=n) on the held-out tasks: regret@1 with and without it, and predicted vs measured vs true accuracy."""
    plain, verified, latency, passes, errors = [], [], [], [], {"predicted": [], "measured": []}
    for spec in [s for s in specs if s.held_out]:
        truth = gt[gt.task_id == spec.task_id].set_index("model")["accuracy"]
        if len(truth) < 2:
            continue
        query, _ = materialize(spec)
        first = zoo.search(query, k=1)[0].name
        t0 = time.perf_counter()
        found = zoo.search(query, k=n, verify=n)
        latency.append(time.perf_counter() - t0)
        passes.append(n * len(query))
        plain.append(float(truth.max() - truth.get(first, truth.min())))
        verified.append(float(truth.max() - truth.get(found[0].name, truth.min())))
        for r in found:
            if r.measured is not None and r.name in truth:
                errors["predicted"].append(abs(r.score - truth[r.name]))
                errors["measured"].append(abs(r.measured - truth[r.name]))
    regret, regret_verified = float(np.mean(plain)), float(np.mean(verified))
    return {"n": n, "tasks": len(plain), "regret1": regret, "regret1_verified": regret_verified,
            "gap_closed": 1 - regret_verified / regret if regret > 0 else 0.0,
            "latency_ms_p50": 1000 * float(np.median(latency)), "forward_passes": float(np.mean(passes)),
            "mean_abs_error_predicted": float(np.mean(errors["predicted"])),
            "mean_abs_error_measured": float(np.mean(errors["measured"]))}


def _text_queries(zoo, root: Path, work: Path, config: dict, specs, gt, progress) -> dict:
    """The text-query benchmark (text_queries.benchmark). The mixture-of-experts encoder is trained on this config's
    meta-training zoo the first time (bench: ~3 min) and kept beside the ground truth."""
    from zoo2vec.encoders import moe
    from zoo2vec.eval import text_queries

    folder = work / "text-encoder"
    if not (folder / "experts.safetensors").is_file():
        _say(progress, "training the mixture-of-experts text encoder")
        text_queries.fit_encoder(root, config, out=folder, progress=progress)
    return text_queries.benchmark(zoo, root, config, specs, gt, encoder=moe.load(str(folder)))


def _indexing_cost(root: Path, work: Path) -> dict:
    """zoo2vec's own time per model against the model's forward passes on the probe set, every model probed afresh."""
    from zoo2vec.eval.study import costs_of, link_zoo

    probe_sets = ZooLayout(root).manifest().get("probe_sets", {})
    report = run_index(link_zoo(root, work / "fresh-index", probe_sets))
    return costs_of(report)


def _growth(root: Path, work: Path, config: dict, gt, specs) -> dict:
    """zoo2vec query time at each zoo size (replicated index) next to exhaustive LogME's (measured per model x N)."""
    per_model = float((gt["forward_s"] + gt["logme_s"]).groupby(gt["task_id"]).mean().median())
    held = [s for s in specs if s.held_out]
    # ten queries spread over the held-out datasets, so both modalities (and text encoding) are in the timing
    queries = [materialize(s)[0] for s in held[:: max(1, len(held) // 10)][:10]]
    out = {}
    for n in config["zoo_sizes"]:
        zoo = zoo2vec.open(replicate_zoo(root, n, work / f"replica-{n}"))
        zoo.search(queries[0], k=5)  # open the snapshot and warm the encoder
        times = []
        for q in queries:
            t0 = time.perf_counter()
            zoo.search(q, k=5)
            times.append(time.perf_counter() - t0)
        zoo2vec_ms = 1000 * float(np.median(times))
        out[str(n)] = {"zoo2vec_ms_p50": zoo2vec_ms, "logme_ms_estimate": 1000 * per_model * n,
                       "ratio": zoo2vec_ms / (1000 * per_model * n)}
    return out


def _meta(config, models, specs, seconds, alignment_version: str) -> dict:
    import duckdb
    import faiss
    import torch

    return {
        "command": "zoo2vec eval" + (" --quick" if config["name"] == "quick" else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "versions": {"zoo2vec": zoo2vec.__version__, "bench_zoo": BENCH_VERSION, "python": platform.python_version(),
                     "torch": torch.__version__, "faiss": faiss.__version__, "duckdb": duckdb.__version__},
        "config": config["name"], "models": int(len(models)), "alignment": alignment_version,
        "probe_sets": sorted(models["probe_set"].unique().tolist()), "encoder": sorted(models["encoder"].unique().tolist()),
        "models_by_modality": models.groupby("modality").size().to_dict(),
        "held_out_datasets": config["held_out"], "tasks_held_out": sum(s.held_out for s in specs),
        "tasks_meta_training": sum(not s.held_out for s in specs), "seconds": seconds,
        "weighted_tau": "scipy.stats.weightedtau default (rank=True); weighted_tau_rank_none uses rank=None (Model Spider)",
    }
