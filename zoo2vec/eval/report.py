"""`zoo2vec eval`: build the bench zoo, index it, measure ground truth, rank held-out tasks with every
method, and write bench/results.json, bench/RESULTS.md and plots."""

from __future__ import annotations

import json
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
from zoo2vec.eval.speed import filtered_search, index_scale, replicate_zoo
from zoo2vec.eval.tasks import materialize
from zoo2vec.jobs.indexing import run_index
from zoo2vec.zoo.bench import BENCH_VERSION

METHODS = ("zoo2vec", "zoo2vec_untrained", "random", "largest", "static", "card_text", "logme", "leep", "nce", "knn")
EXHAUSTIVE = ("logme", "leep", "nce", "knn")
METRICS = ("weighted_tau", "weighted_tau_rank_none", "pearson", "top1", "top3", "ndcg5", "regret1")


def _say(progress, text):
    if progress:
        progress(text)


def run(config_name: str = "bench", *, out_dir: Path = Path("bench"), fresh: bool = False,
        progress: Callable[[str], None] | None = None) -> dict:
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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    _plots(results, out_dir)
    (out_dir / "RESULTS.md").write_text(_markdown(results, config_name))
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
        return alignment.fit([(x, y) for x, y, _ in data], features=names, hidden=hidden)

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

    manifest = json.loads((root / "zoo.json").read_text())
    report = run_index(link_zoo(root, work / "fresh-index", manifest.get("probe_sets", {})))
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


def _plots(results: dict, out_dir: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    methods = list(results["held_out"])
    data = [[v["weighted_tau"] for v in results["per_task"][m].values()] for m in methods]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(methods) + 1), methods)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("weighted Kendall's tau (scipy default)")
    ax.set_title("Per held-out task ranking quality")
    fig.tight_layout()
    fig.savefig(out_dir / "tau_per_method.png", dpi=110)
    plt.close(fig)

    growth = results["scale"]["zoo_size"]
    sizes = [int(n) for n in growth]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [growth[str(n)]["zoo2vec_ms_p50"] for n in sizes], "o-", label="zoo2vec search (measured)")
    ax.plot(sizes, [growth[str(n)]["logme_ms_estimate"] for n in sizes], "s--", label="exhaustive LogME (per-model cost x N)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("models in the zoo")
    ax.set_ylabel("query time (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "latency_vs_zoo_size.png", dpi=110)
    plt.close(fig)


def _two(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _markdown(results: dict, config_name: str) -> str:
    meta = results["meta"]
    lines = [
        f"# zoo2vec benchmark ({config_name})", "",
        f"Command: `{meta['command']}` · {meta['date']} · {meta['machine']} · "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
        f"Zoo: {meta['models']} models ({', '.join(f'{v} {k}' for k, v in meta['models_by_modality'].items())}), "
        f"indexed with probe sets {', '.join(meta['probe_sets'])} and encoder {', '.join(meta['encoder'])}; "
        f"zoo2vec scores with the alignment {meta.get('alignment', '?')} (zoo2vec_untrained: the untrained score). "
        f"Held-out datasets (never used to train anything the method learns): "
        + "; ".join(f"{k}: {', '.join(v)}" for k, v in meta["held_out_datasets"].items())
        + f". {meta['tasks_held_out']} held-out tasks, {meta['tasks_meta_training']} meta-training tasks "
        "(used by `zoo2vec train-align` and the static baseline, with models trained on meta-training datasets only). Ground truth: accuracy on the task's test split of a logistic-regression "
        "head on the model's log-probabilities for the query samples.", "",
        "Means over held-out tasks; [95% bootstrap interval] for weighted tau. `weighted_tau` is scipy's default "
        "`weightedtau` (rank=True), `tau (rank=None)` the Model Spider convention. Latency is per query; for the "
        "exhaustive scores it is the measured forward passes of every model on the query samples plus scoring.", "",
        "| method | weighted tau | tau (rank=None) | pearson | top-1 | top-3 | NDCG@5 | regret@1 | latency p50 ms | p95 ms | model forward passes | tasks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, v in results["held_out"].items():
        lo, hi = v["weighted_tau_ci95"]
        lines.append(f"| {m} | {v['weighted_tau']:.3f} [{lo:.2f}, {hi:.2f}] | {v['weighted_tau_rank_none']:.3f} | "
                     f"{v['pearson']:.3f} | {v['top1']:.2f} | {v['top3']:.2f} | {v['ndcg5']:.3f} | {v['regret1']:.3f} | "
                     f"{v['latency_ms_p50']:.1f} | {v['latency_ms_p95']:.1f} | {v['forward_passes']:.0f} | {v['tasks']} |")
    by_dataset: dict[str, dict[str, list[float]]] = {}
    for m, tasks in results["per_task"].items():
        for task_id, v in tasks.items():
            by_dataset.setdefault(task_id.rsplit("/", 1)[0], {}).setdefault(m, []).append(v["weighted_tau"])
    shown = ("zoo2vec", "zoo2vec_untrained", "logme", "leep", "knn", "card_text", "static")
    lines += ["", "![tau per method](tau_per_method.png)", "", "## Weighted tau by held-out dataset", "",
              "| dataset | tasks | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
    for dataset, per_method in sorted(by_dataset.items()):
        lines.append(f"| {dataset} | {len(per_method['zoo2vec'])} | "
                     + " | ".join(f"{np.mean(per_method[m]):.2f}" for m in shown) + " |")
    ours, logme, static = (results["held_out"][m] for m in ("zoo2vec", "logme", "static"))
    ratio = results["scale"]["ratio_zoo2vec_to_logme_p50"]
    largest = max(results["scale"]["zoo_size"], key=int)
    cost = results.get("indexing_cost", {})
    met = {True: "met", False: "not met"}
    lines += ["", "## Against the method's targets", "",
              "| target | measured | |", "|---|---|---|",
              f"| weighted tau ≥ exhaustive LogME, clearly above static | {ours['weighted_tau']:.3f} vs LogME "
              f"{logme['weighted_tau']:.3f}, static {static['weighted_tau']:.3f} | "
              f"{met[ours['weighted_tau'] >= logme['weighted_tau']]} |",
              f"| top-3 hit ≥ 0.8 | {ours['top3']:.2f} (LogME {logme['top3']:.2f}) | {met[ours['top3'] >= 0.8]} |",
              f"| median query ≤ 1/100 of LogME at bench size | {ratio:.3f} ({1 / ratio:.1f}x faster); "
              f"{results['scale']['zoo_size'][largest]['ratio']:.4f} at {largest} models | {met[ratio <= 0.01]} |"]
    if cost:
        lines.append(f"| zoo2vec's own indexing time per model ≤ max(20% of its forward passes, 50 ms) | median "
                     f"{cost['other_ms_p50']:.1f} ms (p95 {cost['other_ms_p95']:.1f}) vs forward passes "
                     f"{cost['forward_ms_p50']:.1f} ms; {cost['within_target']:.0%} of {cost['models']} models within | "
                     f"{met[cost['within_target'] >= 0.95]} |")
    v, f = results.get("verify"), results.get("filtered")
    if v:
        lines += ["", f"## Verification (`search(task, verify={v['n']})`)", "",
                  f"The first {v['n']} candidates are run on the query samples and re-ranked by a quick linear probe "
                  f"(k-fold accuracy of a logistic-regression head on their outputs). Over {v['tasks']} held-out tasks: "
                  f"regret@1 {v['regret1']:.3f} → {v['regret1_verified']:.3f}, gap closed {v['gap_closed']:.2f} "
                  f"(target ≥ 0.5); median query {v['latency_ms_p50']:.0f} ms with {v['forward_passes']:.0f} model forward "
                  f"passes (exhaustive LogME: {logme['forward_passes']:.0f}, {logme['latency_ms_p50']:.0f} ms). Against the "
                  f"true accuracy of the verified models, the predicted score is off by {v['mean_abs_error_predicted']:.3f} "
                  f"on average and the measured one by {v['mean_abs_error_measured']:.3f}."]
    if f:
        lines += ["", "## Filtered search", "",
                  f"{f['pairs']:,} random (filter, query) pairs over the {f['models']:,}-model replica's real vectors "
                  f"({f['empty_filters']} filters left no model): results identical to exact filtered search in "
                  f"{f['exact_match_rate']:.1%} of pairs (k = {f['k']}; equal scores in any order). A filter keeping 1% of "
                  f"the models: median text search {f['latency_ms_p50_1pct']:.1f} ms vs {f['latency_ms_p50_unfiltered']:.1f} ms "
                  f"unfiltered, ratio {f['latency_ratio_1pct']:.2f} (target ≤ 2)."]
    t = results.get("text_queries")
    if t:
        card, ours, both = t["card_minilm"], t["zoo2vec"], t["zoo2vec_with_samples"]
        r = t.get("moe_routing", {})
        lines += ["", "## Text queries", "",
                  "Each held-out task as a sentence: what the user wants in their own words (eval.text_queries.ASK, "
                  "not the cards' wording) and the task's classes. hit@3: a model that measured best on the task "
                  "(ties included) is among the first 3, over all models; 'bad cards': over the models whose cards are "
                  "terse, name no labels or describe another dataset, ranked among themselves. zoo2vec = the words "
                  "scorer (card text; the named classes against label names, probed concepts and, as pseudo-tasks, the "
                  "models' decisions on the probe set; a prior from probe behaviour); with samples = the same sentence plus the task's labelled samples.", "",
                  "| method | hit@3 | hit@3 bad cards | queries |", "|---|---|---|---|"]
        for m in ("bm25", "card_minilm", "moe", "zoo2vec", "zoo2vec_with_samples"):
            if m in t:
                lines.append(f"| {m} | {_two(t[m]['hit3'])} | {_two(t[m]['hit3_bad_cards'])} | {t[m]['queries']} "
                             f"({t[m]['queries_bad_cards']} with a bad-card model measured) |")
        if card["hit3_bad_cards"] is not None:
            gain, gain_both = ours["hit3_bad_cards"] - card["hit3_bad_cards"], both["hit3_bad_cards"] - card["hit3_bad_cards"]
            lines += ["", f"Target: bad-card hit@3 at least 15 points above card MiniLM. Words alone: {100 * gain:+.1f} "
                      f"points ({met[gain >= 0.15 - 1e-9]}); words and samples: {100 * gain_both:+.1f} points "
                      f"({met[gain_both >= 0.15 - 1e-9]})."]
        if r:
            lines.append(f"The mixture-of-experts encoder routed {r['to_own_domain']:.0%} of the {r['queries']} held-out "
                         f"sentences to their domain's expert ({r['to_general']:.0%} to the general one).")
        if t.get("ablation"):
            lines += ["", "The words scorer retrained on the meta-training sentences without each component (or with the "
                      "MoE encoder's card similarity in place of MiniLM's), held-out sentences:", "",
                      "| variant | hit@3 | hit@3 bad cards |", "|---|---|---|"]
            for name, v in t["ablation"].items():
                lines.append(f"| {name} | {_two(v['hit3'])} | {_two(v['hit3_bad_cards'])} |")
    lines += ["", "## Ablation (held-out tasks)", "",
              "Each learned row is trained on the same meta-training tasks and models as the served checkpoint; "
              "'without X' drops that knowledge component's features (encoders.alignment.GROUPS) and retrains.", "",
              "| variant | weighted tau | top-1 | top-3 | regret@1 |", "|---|---|---|---|---|"]
    for name, v in results.get("ablation", {}).items():
        lines.append(f"| {name} | {v['weighted_tau']:.3f} | {v['top1']:.2f} | {v['top3']:.2f} | {v['regret1']:.3f} |")
    lines += ["", "## Speed as the zoo grows", "",
              f"At the bench zoo's size, zoo2vec's median query (ranking every model of the task's modality) takes "
              f"{ratio:.3f} of exhaustive LogME's median ({1 / ratio:.1f}x faster), with no model forward pass.", "",
              "zoo2vec: measured median search time (10 held-out queries, encoding included) on an index replicated "
              "to N models. Exhaustive LogME: the measured median per-model cost (forward pass on the query samples + "
              "LogME) times N.", "",
              "| models | zoo2vec p50 ms | exhaustive LogME ms | zoo2vec / LogME |", "|---|---|---|---|"]
    for n, v in results["scale"]["zoo_size"].items():
        lines.append(f"| {n} | {v['zoo2vec_ms_p50']:.1f} | {v['logme_ms_estimate']:.0f} | {v['ratio']:.4f} |")
    lines += ["", "![latency vs zoo size](latency_vs_zoo_size.png)", "", "## Index scale (synthetic clustered vectors)", "",
              "| vectors | index zoo2vec picks | dim | recall@10 vs exact | search p50 ms | p95 ms | 1% filter: recall@10 | 1% filter: p50 ms | build s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n, v in results["scale"]["index"].items():
        lines.append(f"| {int(n):,} | {v['index']}" + (f" (nprobe {v['nprobe']})" if v["nprobe"] else "")
                     + f" | {v['dim']} | {v['recall_at_10']:.3f} | {v['latency_ms_p50']:.2f} | {v['latency_ms_p95']:.2f} "
                     f"| {v['filtered_1pct_recall_at_10']:.3f} | {v['filtered_1pct_latency_ms_p50']:.2f} | {v['build_s']:.1f} |")
    return "\n".join(lines) + "\n"
