"""`zoo2vec eval`, the run: build the bench zoo, index it, measure ground truth, rank held-out tasks with every
method, and measure the rest (ablation, indexing cost, verification, text queries, filtered search, speed and
scale); the result is the dict written as bench/results.json (eval.report renders it as RESULTS.md and plots)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import zoo2vec
from zoo2vec import settings
from zoo2vec.encoders import alignment
from zoo2vec.errors import SkippedModel
from zoo2vec.eval import align, metrics, noise_ceiling
from zoo2vec.eval.bench_zoo import BENCH_VERSION
from zoo2vec.eval.speed import filtered_search, index_scale, replicate_zoo
from zoo2vec.eval.tasks import materialize
from zoo2vec.jobs.indexing import run_index
from zoo2vec.train.alignment import fit
from zoo2vec.zoo.adapters import hf_cache, read_card
from zoo2vec.zoo.discovery import discover
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
    models = zoo.models()
    meta_tasks = {s.task_id for s in specs if s.meta}
    baselines = _Baselines(static=gt[gt.task_id.isin(meta_tasks)].groupby("model")["accuracy"].mean(),
                           params=models.set_index("name")["params"].fillna(0), n_models=len(models))
    _say(progress, "ranking the held-out tasks with every method")
    held_out, per_task, held_features, held_rankings = _compare(zoo, untrained, [s for s in specs if s.held_out], gt, baselines)
    held_out["zoo2vec"]["text_latency_ms_p50"] = _text_latency(zoo, [s for s in specs if s.held_out])
    _say(progress, "ranking the new-domain tasks (verify=5 included)")
    new_specs = [s for s in specs if s.split == "new_domain"]
    new_domain, new_per_task, new_features, new_rankings = _compare(zoo, untrained, new_specs, gt, baselines, verify=5)
    curve = {"held_out": verify_curve(held_rankings, gt), "new_domain": verify_curve(new_rankings, gt)}
    _say(progress, "noise ceiling: every held-out task's test split redrawn 5 times")
    noise = noise_ceiling.summarise(noise_ceiling.measure(root, [s for s in specs if s.held_out],
                                                          work / "noise_ceiling.parquet"), gt)

    _say(progress, "ablation: the alignment retrained without each knowledge component")
    meta = [s for s in specs if s.meta]
    meta_features = align.task_features(untrained, meta)
    allowed = align.meta_training_models(root, config)
    ablation = _ablation(zoo, meta, meta_features, allowed, gt, held_features)
    _say(progress, "protocol: each design choice's cross-validation and held-out numbers")
    protocol = align.protocol(meta_features, {"held_out": held_features, "new_domain": new_features}, gt, meta, allowed)
    _say(progress, "indexing cost: the bench zoo's models indexed afresh in a linked copy")
    cost, formats = _indexing_cost(root, work)
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
        "new_domain": new_domain,
        "per_task": per_task,
        "per_task_new_domain": new_per_task,
        "ablation": ablation,
        "protocol": protocol,
        "indexing_cost": cost,
        "formats": formats,
        "verify": verified,
        "verify_logme_curve": curve,
        "noise_ceiling": noise,
        "filtered": filtered,
        "text_queries": words,
        "scale": {"zoo_size": growth, "index": scale,
                  "ratio_zoo2vec_to_logme_p50": held_out["zoo2vec"]["latency_ms_p50"] / held_out["logme"]["latency_ms_p50"]},
    }
    return results


@dataclass(frozen=True)
class _Baselines:
    static: pd.Series  # mean measured accuracy of each model over the meta-training tasks
    params: pd.Series  # each model's parameter count
    n_models: int


def _compare(zoo, untrained, specs, gt, baselines: _Baselines, *, verify: int = 0):
    """Every method's ranking of every task in `specs` against the ground truth: (summary by method, metrics by method
    and task, zoo2vec's pair features by task and model, zoo2vec's ranking by task). verify=n adds zoo2vec_verify{n}, the ranking search(verify=n)
    returns (its first n run on the query samples and re-ordered by measured accuracy)."""
    methods = METHODS + ((f"zoo2vec_verify{verify}",) if verify else ())
    per_task: dict[str, dict[str, dict]] = {m: {} for m in methods}
    latency: dict[str, list[float]] = {m: [] for m in methods}
    work_passes: dict[str, list[float]] = {m: [] for m in methods}
    features: dict[str, dict[str, dict]] = {}
    rankings: dict[str, list[str]] = {}
    for spec in specs:
        rows = gt[gt.task_id == spec.task_id].set_index("model")
        if len(rows) < 2:
            continue
        names = list(rows.index)
        query, _ = materialize(spec)
        scores = {}
        for m, z in (("zoo2vec", zoo), ("zoo2vec_untrained", untrained)):
            t0 = time.perf_counter()
            found = {r.name: r for r in z.search(query, k=baselines.n_models)}
            latency[m].append(time.perf_counter() - t0)
            work_passes[m].append(0)
            scores[m] = [found[n].score if n in found else -1e9 for n in names]
            if m == "zoo2vec":
                rankings[spec.task_id] = [n for n in found if n in rows.index]  # search order, best first
        features[spec.task_id] = {n: r.features for n, r in found.items()}  # the same for both scorers
        if verify:
            t0 = time.perf_counter()
            ranked = [r.name for r in zoo.search(query, k=baselines.n_models, verify=verify)]
            latency[methods[-1]].append(time.perf_counter() - t0)
            work_passes[methods[-1]].append(verify * len(query))
            scores[methods[-1]] = [-float(ranked.index(n)) if n in ranked else -1e9 for n in names]
        t0 = time.perf_counter()
        words = {r.name: r.text_similarity for r in zoo.search(text="classes: " + ", ".join(query.label_names),
                                                                  k=baselines.n_models, where={"modality": spec.modality})}
        latency["card_text"].append(time.perf_counter() - t0)
        work_passes["card_text"].append(0)
        scores["card_text"] = [words.get(n, -1e9) for n in names]
        rng = np.random.default_rng(spec.seed)
        static = baselines.static
        query_blind = {
            "random": lambda: rng.random(len(names)).tolist(),
            "largest": lambda: [float(baselines.params.get(n, 0)) for n in names],
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
        y = rows["accuracy"].to_numpy()
        for m in methods:
            per_task[m][spec.task_id] = metrics.all_metrics(y, np.asarray(scores[m], dtype=np.float64))
    summary = {}
    for m in methods:
        values = per_task[m]
        if not values:
            continue
        row = {k: float(np.mean([v[k] for v in values.values()])) for k in METRICS}
        row.update({f"{k}_ci95": list(metrics.bootstrap_ci([v[k] for v in values.values()])) for k in METRICS})
        row.update(latency_ms_p50=1000 * float(np.median(latency[m])), latency_ms_p95=1000 * float(np.percentile(latency[m], 95)),
                   forward_passes=float(np.mean(work_passes[m])), tasks=len(values))
        summary[m] = row
    return summary, per_task, features, rankings


VERIFY_NS = (0, 1, 2, 3, 5, 8, 10, 15, 20)


def verify_curve(rankings: dict[str, list[str]], gt, ns=VERIFY_NS, *, measure: str = "logme", weight: float = 0.0,
                 scores: dict[str, dict[str, float]] | None = None) -> dict:
    """search(verify=n) replayed from the ground truth, for each n: each task's ranking ({task: models, best first})
    with its first n re-ordered by `measure` on the query samples (the ground truth caches it, and what it cost: the
    n models' forward passes and the score), mixed with the predicted `scores` ({task: {model: score}}) by `weight`.
    {n: {"regret1", "top3", "seconds" (the median task's), "tasks"}}; bench/verify_study.py replays every measure."""
    by_task = {task_id: rows.set_index("model") for task_id, rows in gt[gt.task_id.isin(set(rankings))].groupby("task_id")}
    measured = {task_id: rows[measure].to_dict() for task_id, rows in by_task.items()}
    out = {}
    for n in ns:
        regret, top3, seconds = [], [], []
        for task_id, order in rankings.items():
            rows = by_task[task_id]
            ranked = reorder(order, measured[task_id], n, weight, scores[task_id] if weight else None)
            truth = rows.loc[ranked, "accuracy"].to_numpy(dtype=np.float64)
            position = -np.arange(len(ranked), dtype=np.float64)
            regret.append(metrics.regret_at_1(truth, position))
            top3.append(metrics.top_k_hit(truth, position, 3))
            head = rows.loc[ranked[:n]]
            seconds.append(float((head["forward_s"] + head[f"{measure}_s"]).sum()))
        out[str(n)] = {"regret1": float(np.mean(regret)), "top3": float(np.mean(top3)),
                       "seconds": float(np.median(seconds)), "tasks": len(regret)}
    return out


def reorder(order: list[str], measured: dict[str, float], n: int, weight: float = 0.0,
            scores: dict[str, float] | None = None) -> list[str]:
    """`order` with its first n re-ordered by the measurement, highest first; with a `weight`, by the measurement
    and the predicted `scores` mixed, each z-normalised over the n."""
    head = list(order[:n])
    if len(head) < 2:
        return list(order)
    key = _z(np.array([measured[m] for m in head]))
    if weight:
        key = (1 - weight) * key + weight * _z(np.array([scores[m] for m in head]))
    return [head[i] for i in np.argsort(-key, kind="stable")] + list(order[n:])


def _z(x: np.ndarray) -> np.ndarray:
    spread = x.std()
    return (x - x.mean()) / spread if spread > 0 else np.zeros_like(x)


def text_tasks(held: list, *, samples: int = 100) -> list:
    """Text tasks of `samples` labelled samples, one per held-out text dataset (drawn from its task half), for timing."""
    from zoo2vec.data.task import Task
    from zoo2vec.eval.bench_zoo import bench_data

    tasks = []
    for dataset in sorted({s.dataset for s in held if s.modality == "text"}):
        data = bench_data(dataset, "tasks")
        idx = np.random.default_rng(0).permutation(len(data))[:samples]
        tasks.append(Task.from_arrays([data.x[i] for i in idx], [data.label_names[data.y[i]] for i in idx]))
    return tasks


def _text_latency(zoo, held: list, *, samples: int = 100) -> float:
    """Median search time (ms) of text tasks of `samples` labelled samples, one per held-out text dataset."""
    tasks = text_tasks(held, samples=samples)
    if not tasks:
        return float("nan")
    zoo.search(tasks[0], k=5)  # warm the encoder
    times = []
    for task in tasks:
        t0 = time.perf_counter()
        zoo.search(task, k=5)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def _ablation(zoo, meta: list, meta_features: dict, allowed: set[str], gt, held_features: dict) -> dict:
    """Held-out quality of the untrained score, the learned alignment, and the alignment retrained without each
    knowledge component (same meta-training tasks and settings as the served checkpoint)."""
    held_ids = list(held_features)
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


def _indexing_cost(root: Path, work: Path) -> tuple[dict, dict]:
    """zoo2vec's own time per model against the model's forward passes on the probe set, every model probed afresh;
    and per adapter kind: models, indexed, failed and the median indexing time per model."""
    from zoo2vec.eval.study import costs_of, link_zoo

    probe_sets = ZooLayout(root).manifest().get("probe_sets", {})
    report = run_index(link_zoo(root, work / "fresh-index", probe_sets))
    return costs_of(report), formats_of(report, discover(root))


def formats_of(report, folders: dict[str, Path]) -> dict:
    """Per adapter kind (as the registry names it): the zoo's models, how many indexed and failed, and the median
    milliseconds zoo2vec spent indexing one (forward passes included) among those probed in `report`."""
    kinds = {}
    for name, folder in folders.items():
        try:
            kinds[name] = read_card(folder, name).card.adapter.get("kind", "?")
        except SkippedModel:  # a model, not a classifier: counted where it was found
            kinds[name] = hf_cache.KIND if hf_cache.repo_and_revision(folder) else "not a classifier"
        except Exception:  # a folder that is no model is counted as its own kind, failed  # noqa: BLE001
            kinds[name] = "unreadable"
    out = {}
    for kind in sorted(set(kinds.values())):
        names = [n for n, k in kinds.items() if k == kind]
        spent = [1000 * sum(report.costs[n]) for n in names if n in report.costs]
        out[kind] = {"models": len(names), "indexed": sum(n in report.probed or n in report.reused for n in names),
                     "failed": sum(n in report.failed for n in names), "skipped": sum(n in report.skipped for n in names),
                     "index_ms_p50": float(np.median(spent)) if spent else None}
    return out


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
        "held_out_datasets": config["held_out"], "new_domain_datasets": config.get("new_domain", {}),
        "tasks_held_out": sum(s.held_out for s in specs), "tasks_new_domain": sum(s.split == "new_domain" for s in specs),
        "tasks_meta_training": sum(s.meta for s in specs), "seconds": seconds,
        "weighted_tau": "scipy.stats.weightedtau default (rank=True); weighted_tau_rank_none uses rank=None (Model Spider)",
    }
