"""`zoo2vec train-align`: learn the alignment from meta-training tasks and their measured ground truth; and the
bench's preparation every benchmark run and trainer starts from (build and index the bench zoo, measure ground truth).

The scorer is fitted by train.alignment.fit; this module gathers what it is fitted on. Only meta-training
tasks (never a held-out dataset's) are used, and in each only the models trained on a meta-training dataset:
no held-out dataset, task or model is touched by training. The pair features come from the same search path
users run (zoo.search), so what is trained is what is served.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

import zoo2vec
from zoo2vec import settings
from zoo2vec.encoders import alignment
from zoo2vec.eval.bench_zoo import build_bench_zoo
from zoo2vec.eval.ground_truth import GROUND_TRUTH_VERSION, measure
from zoo2vec.eval.tasks import (
    TaskSpec,
    generate,
    held_out_datasets,
    load_config,
    materialize,
)
from zoo2vec.jobs.indexing import run_index
from zoo2vec.train.alignment import fit
from zoo2vec.zoo.layout import ZooLayout


def task_features(zoo, specs: list[TaskSpec], progress: Callable[[str], None] | None = None) -> dict[str, dict[str, dict]]:
    """Pair features of every model of the task's modality, per task: {task_id: {model: features}}."""
    out = {}
    n = len(zoo.models())
    for i, spec in enumerate(specs):
        query, _ = materialize(spec)
        out[spec.task_id] = {r.name: r.features for r in zoo.search(query, k=n)}
        if progress and (i + 1) % 10 == 0:
            progress(f"features {i + 1}/{len(specs)}")
    return out


def groups(features: dict[str, dict[str, dict]], gt, task_ids, names: tuple[str, ...], models=None):
    """(X, y, model names) per task, for the models in `models` (all when None) that have both features and truth."""
    out = []
    for task_id in task_ids:
        rows = gt[gt.task_id == task_id].set_index("model")["accuracy"]
        found = features[task_id]
        keep = [m for m in rows.index if m in found and (models is None or m in models)]
        if len(keep) < 2:
            continue
        x = np.asarray([[found[m][f] for f in names] for m in keep], dtype=np.float64)
        out.append((x, rows[keep].to_numpy(dtype=np.float64), keep))
    return out


def meta_training_models(zoo_root: Path, config: dict) -> set[str]:
    """Models trained on a meta-training dataset (the zoo's truth says which dataset each was trained on)."""
    truth = ZooLayout(zoo_root).manifest()["models"]
    held = held_out_datasets(config)
    return {name for name, t in truth.items() if t["dataset"] not in held}


def prepare(config_name: str = "bench", *, fresh: bool = False, progress: Callable[[str], None] | None = None):
    """Build and index the bench zoo, then measure (or reuse) the ground truth of the config's tasks.

    Returns (zoo root, config, task specs, ground truth without failed rows). fresh=True drops the cache first."""
    say = progress or (lambda text: None)
    config = load_config(config_name)
    root = settings.home() / "zoos" / config["zoo"]
    work = settings.home() / "bench" / config["name"]
    if fresh:
        for cached in work.glob("ground_truth.*"):
            cached.unlink()
    say(f"building the {config['zoo']} zoo in {root}")
    build_bench_zoo(root, names=config.get("models"), progress=lambda name: say(f"  model {name} ready"))
    say(run_index(root).summary())
    truth = ZooLayout(root).manifest()["models"]
    indexed = zoo2vec.open(root, alignment=alignment.UNTRAINED, words=alignment.UNTRAINED).models()["name"]
    specs = generate(config, {truth[n]["dataset"] for n in indexed if n in truth})
    say(f"{len(specs)} tasks ({sum(s.held_out for s in specs)} held out); measuring ground truth")
    gt = measure(root, specs, work / "ground_truth.parquet",
                 progress=lambda t, i, n: say(f"ground truth {i}/{n} {t}") if t and i % 10 == 0 else None)
    gt = gt[gt["error"].isna()] if "error" in gt else gt
    return root, config, specs, gt


def evaluate(scorer: alignment.Alignment, features: dict, gt, task_ids, keys=("weighted_tau", "top1", "top3", "regret1")):
    """Mean ranking metrics of a scorer over the given tasks (None when no task has two scored models)."""
    from zoo2vec.eval.metrics import all_metrics

    names = alignment.FEATURES if scorer.untrained else scorer.features
    values = [all_metrics(y, scorer.score_matrix(x)) for x, y, _ in groups(features, gt, task_ids, names)]
    return {k: float(np.mean([v[k] for v in values])) for k in keys} if values else None


def cross_validate(features: dict, gt, specs: list[TaskSpec], models: set[str], *, names=alignment.FEATURES,
                   hidden: int = 0, seed: int = 0) -> dict[str, float]:
    """Leave one meta-training dataset out at a time: mean weighted tau of the learned and the untrained score."""
    from zoo2vec.eval.metrics import all_metrics

    learned, plain = [], []
    for dataset in sorted({s.dataset for s in specs}):
        train_ids = [s.task_id for s in specs if s.dataset != dataset]
        test_ids = [s.task_id for s in specs if s.dataset == dataset]
        train = [(x, y) for x, y, _ in groups(features, gt, train_ids, names, models)]
        if not train:  # a fold with nothing to learn from (tiny configs) says nothing
            continue
        scorer = fit(train, features=names, hidden=hidden, seed=seed)
        for x, y, _ in groups(features, gt, test_ids, names, models):
            learned.append(all_metrics(y, scorer.score_matrix(x))["weighted_tau"])
        for x, y, _ in groups(features, gt, test_ids, alignment.FEATURES, models):
            plain.append(all_metrics(y, alignment.untrained().score_matrix(x))["weighted_tau"])
    return {"learned": float(np.mean(learned)) if learned else None, "untrained": float(np.mean(plain)) if plain else None,
            "tasks": len(learned)}


def protocol(meta_features: dict, evaluated: dict[str, dict], gt, meta: list[TaskSpec], models: set[str], *,
             hidden: int = 0) -> dict:
    """The scorer's design choices, each option with its leave-one-dataset-out CV weighted tau over the meta-training
    tasks (what chose it) and, beside it, the weighted tau of the option trained on every meta-training task on each
    split in `evaluated` ({split: {task_id: {model: features}}}, not used to choose)."""
    base = tuple(f for f in alignment.FEATURES if f not in alignment.GROUPS["surrogate transferability"])
    plain = [s for s in meta if not s.transform]
    options = {
        "scorer": {"untrained (mean of kernel alignment and concept match)": (None, meta),
                   "learned, know2vec features (align-1's)": (base, meta),
                   "learned, with surrogate transferability": (alignment.FEATURES, meta)},
        "meta-training tasks": {f"plain only ({len(plain)})": (alignment.FEATURES, plain),
                                f"plain and transformed ({len(meta)})": (alignment.FEATURES, meta)},
    }
    out: dict[str, dict] = {}
    for choice, rows in options.items():
        out[choice] = {}
        for option, (names, specs) in rows.items():
            if names is None:
                scorer = alignment.untrained()
                cv = cross_validate(meta_features, gt, specs, models)["untrained"]
            else:
                cv = cross_validate(meta_features, gt, specs, models, names=names, hidden=hidden)["learned"]
                data = groups(meta_features, gt, [s.task_id for s in specs], names, models)
                if not data:
                    continue
                scorer = fit([(x, y) for x, y, _ in data], features=names, hidden=hidden)
            row = {"cv": cv}
            for split, features in evaluated.items():
                found = evaluate(scorer, features, gt, list(features))
                row[split] = found["weighted_tau"] if found else None
            out[choice][option] = row
        scored = [o for o in out[choice] if out[choice][o]["cv"] is not None]
        if scored:
            out[choice][max(scored, key=lambda o: out[choice][o]["cv"])]["chosen"] = True
    return out


def train(config_name: str = "bench", *, out: Path | None = None, hidden: int = 0, seed: int = 0,
          progress: Callable[[str], None] | None = None) -> tuple[alignment.Alignment, Path]:
    """Train the alignment on the config's meta-training tasks; writes the checkpoint and returns it with its path."""
    root, config, specs, gt = prepare(config_name, progress=progress)
    meta = [s for s in specs if s.meta]
    zoo = zoo2vec.open(root, alignment=alignment.UNTRAINED)
    feats = task_features(zoo, meta, progress)
    allowed = meta_training_models(root, config)
    data = groups(feats, gt, [s.task_id for s in meta], alignment.FEATURES, allowed)
    provenance = {"config": config["name"], "tasks": [s.task_id for s in meta], "models": len(allowed),
                  "ground_truth": GROUND_TRUTH_VERSION, "hidden": hidden, "seed": seed,
                  "probe_sets": sorted(zoo.models()["probe_set"].unique().tolist()),
                  "cross_validation": cross_validate(feats, gt, meta, allowed, hidden=hidden, seed=seed)}
    scorer = fit([(x, y) for x, y, _ in data], hidden=hidden, seed=seed, trained_on=provenance)
    out = Path(out) if out else settings.home() / "alignments" / f"{scorer.version}.json"
    scorer.save(out)
    return scorer, out
