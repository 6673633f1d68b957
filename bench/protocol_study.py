"""The scorer's design, chosen by leave-one-domain-out cross-validation (issue 11's honest protocol).

    ZOO2VEC_HOME=... python bench/protocol_study.py [--config bench] [--fresh-features] [--no-kept]

Reads the bench zoo and its cached ground truth only (align.cached: nothing is built, indexed or measured), so it can
run beside `zoo2vec eval` once that has measured the ground truth. Every option of align.DESIGNS is cross-validated
over the meta-training tasks, leaving one domain family out (what chooses; the family's models leave the fold too)
and leaving one dataset out (reported). Only then are the chosen design and the packaged default's design, each
fitted on every meta-training task, scored on the held-out and the new-domain tasks: once, and no other option.
The chosen design is written as a checkpoint search serves (zoo2vec.open(root, alignment=<path>)), checked on one
meta-training task. Prints markdown tables; writes every number to $ZOO2VEC_HOME/bench/protocol_study[-config].json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import time
from pathlib import Path

import numpy as np

import zoo2vec
from zoo2vec import settings
from zoo2vec.encoders import alignment
from zoo2vec.eval import align
from zoo2vec.eval.tasks import materialize

KEYS = ("weighted_tau", "top3", "regret1")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def features(zoo, specs, path: Path, fresh: bool) -> dict:
    """Pair features of every task (the search path's), cached beside the ground truth: {split: {task: {model: f}}}."""
    wanted = {split: [s for s in specs if s.split == split] for split in ("meta", "held_out", "new_domain")}
    ids = {split: sorted(s.task_id for s in group) for split, group in wanted.items()}
    ids["snapshot"] = zoo._current_snapshot.get().folder.name  # features of another index are not these
    if path.exists() and not fresh:
        cached = pickle.loads(path.read_bytes())
        if cached.get("ids") == ids:
            say(f"pair features read from {path}")
            return cached["features"]
    out = {}
    for split, group in wanted.items():
        say(f"pair features of the {len(group)} {split} tasks (zoo.search, the path users run)")
        out[split] = align.task_features(zoo, group, say)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps({"ids": ids, "features": out}))
    tmp.replace(path)
    return out


def paired(per_task: dict, base: dict) -> dict | None:
    """Mean weighted-tau difference to `base` over the tasks both scored, with its standard error (tasks taken as
    independent, which folds are not: a rough scale, not a test)."""
    shared = sorted(set(per_task) & set(base))
    if len(shared) < 2:
        return None
    d = np.asarray([per_task[t]["weighted_tau"] - base[t]["weighted_tau"] for t in shared])
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "tasks": len(d)}


def by_family(per_task: dict, specs, family_map) -> dict:
    family = {s.task_id: align.family_of(s.dataset, family_map) for s in specs}
    out: dict[str, list[float]] = {}
    for task_id, v in per_task.items():
        out.setdefault(family[task_id], []).append(v["weighted_tau"])
    return {f: float(np.mean(v)) for f, v in sorted(out.items())}


def means(per_task: dict) -> dict | None:
    return {k: float(np.mean([v[k] for v in per_task.values()])) for k in KEYS} if per_task else None


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def check_served(root: Path, path: Path, scorer: alignment.Alignment, spec) -> dict:
    """Search with the written checkpoint on one meta-training task: the served scores are the design's."""
    zoo = zoo2vec.open(root, alignment=str(path))
    query, _ = materialize(spec)
    found = zoo.search(query, k=len(zoo.models()))
    expected = scorer.score([r.features for r in found])
    served = np.asarray([r.score for r in found])
    return {"task": spec.task_id, "version": zoo.alignment.version, "models": len(found),
            "max_abs_diff": float(np.max(np.abs(served - expected))),
            "ordered": bool(np.all(np.diff(served) <= 1e-9))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="bench")
    parser.add_argument("--fresh-features", action="store_true", help="recompute the cached pair features")
    parser.add_argument("--no-kept", action="store_true", help="skip the diagnostic domain CV that keeps the models")
    args = parser.parse_args()
    started = time.time()
    root, config, specs, gt = align.cached(args.config)
    work = settings.home() / "bench" / config["name"]
    out_json = settings.home() / "bench" / ("protocol_study.json" if args.config == "bench" else f"protocol_study-{args.config}.json")
    say(f"zoo {root}; {len(specs)} tasks; ground truth {len(gt)} rows (cached, read only)")
    zoo = zoo2vec.open(root, alignment=alignment.UNTRAINED)
    feats = features(zoo, specs, work / "protocol_features.pkl", args.fresh_features)
    meta = [s for s in specs if s.meta]
    allowed = align.meta_training_models(root, config)
    family_map = align.families(config)
    folds = sorted({align.family_of(s.dataset, family_map) for s in meta})
    say(f"{len(meta)} meta-training tasks, {len(allowed)} meta-training models, {len(folds)} domain families: {folds}")

    kept = {}
    if not args.no_kept:  # diagnostic only, computed before anything is looked at; it chooses nothing
        say("diagnostic: leave one domain out with the family's models kept")
        pairs = align.Pairs(feats["meta"], gt, [s.task_id for s in meta])
        kept = align.cv_scores(pairs, meta, set(allowed), align.DESIGNS, by="domain", family_map=family_map,
                               progress=say)

    record: dict = {}
    evaluated = {"held_out": feats["held_out"], "new_domain": feats["new_domain"]}
    table = align.protocol(feats["meta"], evaluated, gt, meta, allowed, family_map=family_map, record=record,
                           progress=say)
    chosen = record["chosen"]
    final = chosen
    if "meta-training tasks" in table:
        final = next(o for o, v in table["meta-training tasks"].items() if v["chosen"])

    untrained, default = align.UNTRAINED_OPTION, align.DEFAULT_OPTION
    options = {}
    for choice, rows in table.items():
        for option, row in rows.items():
            options.setdefault(option, {"choice": choice, **row})
            cv_domain, cv = record["cv_domain"][option], record["cv"][option]
            options[option].update(
                cv_domain_metrics=means(cv_domain), cv_metrics=means(cv),
                cv_domain_kept=means(kept[option]) if option in kept else None,
                cv_domain_vs_untrained=paired(cv_domain, record["cv_domain"][untrained]),
                cv_domain_vs_default=paired(cv_domain, record["cv_domain"][default]),
                cv_domain_by_family=by_family(cv_domain, meta, family_map),
                splits=record["splits"].get(option),
                design=record["designs"].get(option))

    checkpoint = None
    scorer = record["scorers"].get(final)
    if scorer is not None and not scorer.untrained:
        path = work / "align-protocol.json"
        provenance = {"config": config["name"], "tasks": [s.task_id for s in meta], "models": len(allowed),
                      "design": options[final]["design"], "option": final, "scorer option": chosen,
                      "cv_domain": options[final]["cv_domain"], "cv": options[final]["cv"],
                      "families": folds}
        served = dataclasses.replace(scorer, version="align-protocol", trained_on=provenance)
        served.save(path)
        checkpoint = {"path": str(path), **check_served(root, path, served, meta[0])}
        say(f"checkpoint {path}: search serves it ({checkpoint})")

    result = {"config": config["name"], "families": {f: sorted(d for d, g in family_map.items() if g == f) for f in folds},
              "meta_tasks": len(meta), "meta_models": len(allowed), "chosen": chosen, "final": final,
              "protocol": table, "options": options, "checkpoint": checkpoint,
              "minutes": (time.time() - started) / 60}
    out_json.write_text(json.dumps(result, indent=1))
    say(f"wrote {out_json}")

    print("\n## Scorer designs: leave-one-domain-out CV (chooses) and leave-one-dataset-out CV\n")
    print("| option | CV by domain | Δ vs untrained (±se) | CV by domain, models kept | CV by dataset | top-3 (domain CV) "
          "| regret@1 (domain CV) | held-out | new domain |")
    print("|---|---|---|---|---|---|---|---|---|")
    for option, v in options.items():
        mark = " **(chosen)**" if v["chosen"] else (" (default)" if option == default else "")
        d, k, m = v["cv_domain_vs_untrained"], v["cv_domain_kept"], v["cv_domain_metrics"] or {}
        delta = "n/a" if d is None else f"{d['mean']:+.3f} ± {d['se']:.3f}"
        print(f"| {v['choice']}: {option}{mark} | {_f(v['cv_domain'])} | {delta} | {_f(k and k['weighted_tau'])} | "
              f"{_f(v['cv'])} | {_f(m.get('top3'), 2)} | {_f(m.get('regret1'))} | {_f(v.get('held_out'))} | "
              f"{_f(v.get('new_domain'))} |")
    print("\n## Looked at once: the chosen design and the packaged default's, on the held-out and new-domain tasks\n")
    print("| option | split | weighted tau | top-3 | regret@1 |")
    print("|---|---|---|---|---|")
    for option, v in options.items():
        for split, m in (v["splits"] or {}).items():
            if m:
                print(f"| {option} | {split} | {m['weighted_tau']:.3f} | {m['top3']:.2f} | {m['regret1']:.3f} |")
    print("\n## Leave-one-domain-out weighted tau by held-out family\n")
    show = [untrained, default, chosen] + ([final] if final != chosen else [])
    show = list(dict.fromkeys(o for o in show if o))
    print("| family | " + " | ".join(show) + " |")
    print("|---|" + "---|" * len(show))
    for family in folds:
        print(f"| {family} | " + " | ".join(_f(options[o]["cv_domain_by_family"].get(family)) for o in show) + " |")
    say(f"done in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
