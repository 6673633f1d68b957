"""`zoo2vec eval`, the report: bench/results.json, RESULTS.md and the plots, rendered from the dict eval.run
computes (so a report can be rendered again from a results.json without rerunning anything)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# entries of results.json other commands write (bench/indexing_numbers.py, zoo2vec eval --reliability,
# bench/text_space_study.py, bench/image_space_study.py, bench/verify_study.py, bench/words_study.py): a benchmark run
# keeps them
OTHERS = ("indexing", "reliability", "text_space", "image_space", "verify_study", "words_study")


def write_results(path: Path, entries: dict) -> None:
    """Put `entries` into the results.json at `path`, keeping the other commands' entries already there."""
    try:
        before = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        before = {}
    kept = {key: before[key] for key in OTHERS if key in before and key not in entries}
    Path(path).write_text(json.dumps({**entries, **kept}, indent=1) + "\n")


def write(results: dict, out_dir: Path, config_name: str) -> Path:
    """Write results.json, the plots and RESULTS.md (titled after the bench config) into out_dir; returns RESULTS.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(out_dir / "results.json", results)
    _plots(results, out_dir)
    path = out_dir / "RESULTS.md"
    path.write_text(markdown(results, config_name))
    return path


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


def _method_table(rows: dict) -> list[str]:
    lines = ["| method | weighted tau | tau (rank=None) | pearson | top-1 | top-3 | NDCG@5 | regret@1 | latency p50 ms | p95 ms | model forward passes | tasks |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, v in rows.items():
        lo, hi = v["weighted_tau_ci95"]
        lines.append(f"| {m} | {v['weighted_tau']:.3f} [{lo:.2f}, {hi:.2f}] | {v['weighted_tau_rank_none']:.3f} | "
                     f"{v['pearson']:.3f} | {v['top1']:.2f} | {v['top3']:.2f} | {v['ndcg5']:.3f} | {v['regret1']:.3f} | "
                     f"{v['latency_ms_p50']:.1f} | {v['latency_ms_p95']:.1f} | {v['forward_passes']:.0f} | {v['tasks']} |")
    return lines


def _by_dataset(per_task: dict) -> list[str]:
    by_dataset: dict[str, dict[str, list[float]]] = {}
    for m, tasks in per_task.items():
        for task_id, v in tasks.items():
            by_dataset.setdefault(task_id.rsplit("/", 1)[0], {}).setdefault(m, []).append(v["weighted_tau"])
    shown = [m for m in ("zoo2vec", "zoo2vec_untrained", "zoo2vec_verify5", "logme", "leep", "knn", "card_text", "static")
             if m in per_task]
    lines = ["| dataset | tasks | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
    for dataset, per_method in sorted(by_dataset.items()):
        lines.append(f"| {dataset} | {len(per_method['zoo2vec'])} | "
                     + " | ".join(f"{np.mean(per_method[m]):.2f}" for m in shown) + " |")
    return lines


def _new_domain(results: dict) -> list[str]:
    rows = results.get("new_domain")
    if not rows:
        return []
    datasets = "; ".join(f"{k}: {', '.join(v)}" for k, v in results["meta"].get("new_domain_datasets", {}).items())
    return ["", "## New domains", "",
            f"Tasks from datasets of domains the zoo has no model for and nothing the method learns has seen ({datasets}); "
            "the same ground truth recipe. zoo2vec_verify5 is `search(task, verify=5)`: its first 5 candidates run on the "
            "query samples and re-ordered by measured accuracy.", "", *_method_table(rows), "",
            "Weighted tau by new-domain dataset:", "", *_by_dataset(results["per_task_new_domain"])]


def _formats(results: dict) -> list[str]:
    formats = results.get("formats") or {}
    if not formats:
        return []
    lines = ["", "## Model formats", "", "Every bench model indexed afresh (the indexing-cost run), by the adapter kind its card "
             "names or its files were inferred as; the milliseconds include the model's forward passes on the probe set.", "",
             "| adapter kind | models | indexed | failed | skipped | median indexing ms per model |", "|---|---|---|---|---|---|"]
    for kind, f in formats.items():
        ms = "" if f.get("index_ms_p50") is None else f"{f['index_ms_p50']:.0f}"
        lines.append(f"| `{kind}` | {f['models']} | {f['indexed']} | {f['failed']} | {f.get('skipped', 0)} | {ms} |")
    return lines


def _protocol(results: dict) -> list[str]:
    rows = results.get("protocol")
    if not rows:
        return []
    lines = ["", "## Design choices: cross-validation and held-out", "",
             "Each choice is made on cross-validation over the meta-training tasks only (weighted tau): leave one "
             "domain family out (`cv_domain`: its tasks and the models trained on it held out together, as a new "
             "domain is) where the run has it, else leave one dataset out (`cv`). Held-out and new-domain numbers are "
             "computed afterwards, for the chosen option and the default beside it (they were not used to choose).", "",
             "| choice | option | CV by domain | CV by dataset | held-out | new domain |", "|---|---|---|---|---|---|"]
    for choice, options in rows.items():
        for option, v in options.items():
            lines.append(f"| {choice} | {option}{' (chosen)' if v.get('chosen') else ''} | {_two(v.get('cv_domain'))} | "
                         f"{_two(v.get('cv'))} | {_two(v.get('held_out'))} | {_two(v.get('new_domain'))} |")
    return lines


def _verify_curve(results: dict) -> list[str]:
    curve = results.get("verify_logme_curve")
    if not curve:
        return []
    splits = [s for s in ("held_out", "new_domain") if curve.get(s)]
    ns = list(curve[splits[0]])
    lines = ["", "### Verification by LogME: how many models to run", "",
             "zoo2vec's first n models re-ordered by LogME on the query samples (the n models' forward passes; n = 0 is "
             "zoo2vec alone).", "",
             "| n | " + " | ".join(f"{s} regret@1 | {s} top-3" for s in splits) + " |", "|---|" + "---|---|" * len(splits)]
    for n in ns:
        lines.append(f"| {n} | " + " | ".join(f"{curve[s][n]['regret1']:.3f} | {curve[s][n]['top3']:.2f}" for s in splits) + " |")
    return lines


def _noise(results: dict) -> list[str]:
    c = results.get("noise_ceiling")
    if not c:
        return []
    return ["", "## The ground truth's own noise", "",
            f"Each held-out task's test split redrawn {c['redraws']} times (same classes and sizes, query samples "
            f"excluded, the same fitted head): the model best on one split is still best on another in {c['top1']:.0%} of "
            f"draws; an oracle that knows each model's expected accuracy has a draw's best model in its top 3 in "
            f"{c['top3']:.0%} (top-3 ceiling) and reaches weighted tau {c['weighted_tau']:.3f} ({c['tasks']} tasks). "
            "Top-1 and top-3 numbers above are to be read against these ceilings."]


def _generalisation_targets(results: dict, met: dict) -> list[str]:
    lines = []
    new = results.get("new_domain")
    if new and "logme" in new:
        ours, logme = new["zoo2vec"], new["logme"]
        lines.append(f"| new domains: weighted tau ≥ exhaustive LogME with no forward pass | {ours['weighted_tau']:.3f} vs "
                     f"LogME {logme['weighted_tau']:.3f} | {met[ours['weighted_tau'] >= logme['weighted_tau']]} |")
        v = new.get("zoo2vec_verify5")
        if v:
            ok = v["regret1"] <= logme["regret1"] / 2 and v["top3"] >= logme["top3"]
            lines.append(f"| new domains, verify=5: regret@1 ≤ half LogME's, top-3 ≥ LogME's | regret@1 {v['regret1']:.3f} "
                         f"(LogME {logme['regret1']:.3f}), top-3 {v['top3']:.2f} (LogME {logme['top3']:.2f}) | {met[ok]} |")
    ceiling = results.get("noise_ceiling")
    if ceiling:
        top3 = results["held_out"]["zoo2vec"]["top3"]
        lines.append(f"| held-out top-3 within 0.1 of the noise ceiling | {top3:.2f} vs ceiling {ceiling['top3']:.2f} | "
                     f"{met[top3 >= ceiling['top3'] - 0.1]} |")
    text_ms = results["held_out"]["zoo2vec"].get("text_latency_ms_p50")
    if text_ms is not None:
        lines.append(f"| median query of a 100-sample text task < 100 ms | {text_ms:.0f} ms | {met[text_ms < 100]} |")
    return lines


def markdown(results: dict, config_name: str) -> str:
    """RESULTS.md."""
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
    ] + _method_table(results["held_out"])
    lines += ["", "![tau per method](tau_per_method.png)", "", "## Weighted tau by held-out dataset", ""]
    lines += _by_dataset(results["per_task"])
    lines += _new_domain(results)
    lines += _protocol(results)
    lines += _formats(results)
    ours, logme, static = (results["held_out"][m] for m in ("zoo2vec", "logme", "static"))
    ratio = results["scale"]["ratio_zoo2vec_to_logme_p50"]
    largest = max(results["scale"]["zoo_size"], key=int)
    cost = results.get("indexing_cost", {})
    met = {True: "met", False: "not met"}
    lines += ["", "## Against the method's targets", "",
              "| target | measured | |", "|---|---|---|", *_generalisation_targets(results, met),
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
    lines += _verify_curve(results) + _noise(results)
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
                  "models' decisions on the probe set); with samples = the same sentence plus the task's labelled "
                  "samples. New domains: the new-domain tasks' sentences (the zoo has no model of their domains).", "",
                  "| method | hit@3 | hit@3 bad cards | queries | new domains: hit@3 | queries |",
                  "|---|---|---|---|---|---|"]
        new = t.get("new_domain") or {}
        for m in ("bm25", "card_minilm", "moe", "zoo2vec", "zoo2vec_with_samples"):
            if m in t:
                there = new.get(m) or {}
                lines.append(f"| {m} | {_two(t[m]['hit3'])} | {_two(t[m]['hit3_bad_cards'])} | {t[m]['queries']} "
                             f"({t[m]['queries_bad_cards']} with a bad-card model measured) | "
                             f"{_two(there.get('hit3'))} | {there.get('queries', 0)} |")
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
