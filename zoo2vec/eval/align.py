"""`zoo2vec train-align`: learn the alignment from meta-training tasks and their measured ground truth; and the
bench's preparation every benchmark run and trainer starts from (build and index the bench zoo, measure ground truth).

The scorer is fitted by train.alignment.fit; this module gathers what it is fitted on. Only meta-training
tasks (never a held-out dataset's) are used, and in each only the models trained on a meta-training dataset:
no held-out dataset, task or model is touched by training. The pair features come from the same search path
users run (zoo.search), so what is trained is what is served.

Design choices are made by cross-validation over the meta-training tasks only: leave one dataset out (`cv`), and
leave one domain family out (`cv_domain`: the config's "families"; a fold's family loses its tasks and its models,
so its tasks are ranked among models of other domains, as a new domain's are). Datasets of one family share a
domain, so leaving one dataset out lets the scorer learn the domain from its siblings; leaving the family out is the
estimate that chooses (protocol).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import zoo2vec
from zoo2vec import settings
from zoo2vec.encoders import alignment
from zoo2vec.errors import ConfigError
from zoo2vec.eval.bench_zoo import build_bench_zoo
from zoo2vec.eval.ground_truth import GROUND_TRUTH_VERSION, measure, versions
from zoo2vec.eval.tasks import (
    TaskSpec,
    generate,
    held_out_datasets,
    load_config,
    materialize,
)
from zoo2vec.jobs.indexing import run_index
from zoo2vec.train.alignment import blended, fit
from zoo2vec.zoo.layout import ZooLayout


def task_features(zoo, specs: list[TaskSpec], progress: Callable[[str], None] | None = None, *,
                  cap: int | None = None) -> dict[str, dict[str, dict]]:
    """Pair features of every model of the task's modality, per task: {task_id: {model: features}}; with `cap`, each
    query is searched with at most that many of its samples (Task.capped)."""
    out = {}
    n = len(zoo.models())
    for i, spec in enumerate(specs):
        query, _ = materialize(spec)
        query = query.capped(cap) if cap else query
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


def meta_training_models(zoo_root: Path, config: dict) -> dict[str, str]:
    """Models trained on a meta-training dataset (the zoo's truth says which dataset each was trained on), each with
    that dataset: {model: dataset}. Leave-one-domain-out CV reads the datasets to hold a family's models out too."""
    truth = ZooLayout(zoo_root).manifest()["models"]
    held = held_out_datasets(config)
    return {name: t["dataset"] for name, t in truth.items() if t["dataset"] not in held}


def families(config: dict | None = None) -> dict[str, str]:
    """{dataset: domain family} from the config's "families" ({family: [datasets]}), else the bench config's (the
    family of a dataset does not depend on the config). A dataset no family names is a family of its own."""
    named = (config or {}).get("families") or load_config("bench").get("families", {})
    out: dict[str, str] = {}
    for family, datasets in named.items():
        for dataset in datasets:
            if out.setdefault(dataset, family) != family:
                raise ConfigError(f"dataset {dataset!r} is in two domain families: {out[dataset]!r} and {family!r}")
    return out


def family_of(dataset: str, family_map: Mapping[str, str]) -> str:
    return family_map.get(dataset, dataset)


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


def cached(config_name: str = "bench") -> tuple[Path, dict, list[TaskSpec], object]:
    """What prepare() returns, read only: the zoo as indexed and the ground truth it measured; nothing is built,
    indexed or measured (for studies beside a running benchmark). ConfigError when the ground truth does not yet
    hold every task, or was made by other versions."""
    import json

    import pandas as pd

    config = load_config(config_name)
    root = settings.home() / "zoos" / config["zoo"]
    path = settings.home() / "bench" / config["name"] / "ground_truth.parquet"
    if not (path.exists() and path.with_suffix(".json").exists()):
        raise ConfigError(f"no ground truth at {path}: run `zoo2vec eval` (or align.prepare) first")
    truth = ZooLayout(root).manifest()["models"]
    indexed = zoo2vec.open(root, alignment=alignment.UNTRAINED, words=alignment.UNTRAINED).models()["name"]
    specs = generate(config, {truth[n]["dataset"] for n in indexed if n in truth})
    sidecar = json.loads(path.with_suffix(".json").read_text())
    made_by = dict(sidecar.get("versions", {}))
    made_by.pop("models", None)
    if made_by != json.loads(json.dumps(versions())):
        raise ConfigError(f"the ground truth at {path} was made by other versions ({made_by})")
    stale = [s.task_id for s in specs if sidecar.get("tasks", {}).get(s.task_id) != s.sample_key()]
    if stale:
        raise ConfigError(f"the ground truth at {path} lacks {len(stale)} tasks (e.g. {stale[0]}): not measured yet")
    gt = pd.read_parquet(path)
    gt = gt[gt["error"].isna()] if "error" in gt else gt
    return root, config, specs, gt


def evaluate(scorer: alignment.Alignment, features: dict, gt, task_ids, keys=("weighted_tau", "top1", "top3", "regret1")):
    """Mean ranking metrics of a scorer over the given tasks (None when no task has two scored models)."""
    from zoo2vec.eval.metrics import all_metrics

    names = alignment.FEATURES if scorer.untrained else scorer.features
    values = [all_metrics(y, scorer.score_matrix(x)) for x, y, _ in groups(features, gt, task_ids, names)]
    return {k: float(np.mean([v[k] for v in values])) for k in keys} if values else None


class Pairs:
    """Every task's pair features (all of alignment.FEATURES) and measured accuracies, gathered once: the folds of
    a cross-validation take their groups from it (the same rows groups() builds)."""

    def __init__(self, features: dict[str, dict[str, dict]], gt, task_ids):
        self.tasks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        wanted = set(task_ids)
        for task_id, rows in gt[gt.task_id.isin(wanted)].groupby("task_id", sort=False):
            accuracy = rows.set_index("model")["accuracy"]
            found = features.get(task_id, {})
            keep = [m for m in accuracy.index if m in found]
            x = np.asarray([[found[m][f] for f in alignment.FEATURES] for m in keep], dtype=np.float64)
            self.tasks[task_id] = (np.asarray(keep, dtype=object), x.reshape(len(keep), len(alignment.FEATURES)),
                                   accuracy[keep].to_numpy(dtype=np.float64))

    def groups(self, task_ids, names: tuple[str, ...], models=None) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(task id, X in `names` order, accuracies) per task, over the models in `models` (all when None); tasks
        with fewer than two such models are left out."""
        columns = [alignment.FEATURES.index(f) for f in names]
        return [(task_id, x[:, columns], y) for task_id, _, x, y in self._kept(task_ids, models)]

    def models_of(self, task_id: str, models=None) -> np.ndarray:
        """The model names of `task_id`'s group (groups()' rows, in order)."""
        return next((names for _, names, _, _ in self._kept([task_id], models)), np.zeros(0, dtype=object))

    def _kept(self, task_ids, models):
        for task_id in task_ids:
            if task_id not in self.tasks:
                continue
            keep, x, y = self.tasks[task_id]
            mask = np.ones(len(keep), dtype=bool) if models is None else np.asarray([m in models for m in keep], dtype=bool)
            if mask.sum() >= 2:
                yield task_id, keep[mask], x[mask], y[mask]


@dataclass(frozen=True)
class Design:
    """A way to score tasks that the protocol compares: what a fold fits on its training tasks and how it scores."""

    features: tuple[str, ...] | None = None  # None: the untrained score (nothing fitted)
    l2: float = 1e-3  # train.alignment.fit's weight decay
    blend: float = 0.0  # weight of the untrained score mixed in (Alignment.blend)
    plain_only: bool = False  # fit on the plain meta-training tasks only (every task is still scored)

    @property
    def trained(self) -> bool:
        return self.features is not None

    def fitted(self, pairs: Pairs, specs: list[TaskSpec], models=None, *, hidden: int = 0, seed: int = 0,
               cache: dict | None = None, key=None) -> alignment.Alignment | None:
        """The scorer of this design fitted on `specs`' tasks over `models` (None when there is nothing to fit on);
        fits are shared through `cache` by designs that differ only in their blend (`key` names the fold)."""
        if not self.trained:
            return alignment.untrained()
        cache = {} if cache is None else cache
        slot = (key, self.features, self.l2, self.plain_only, hidden, seed)
        if slot not in cache:
            ids = [s.task_id for s in specs if not (self.plain_only and s.transform)]
            data = [(x, y) for _, x, y in pairs.groups(ids, self.features, models)]
            cache[slot] = fit(data, features=self.features, hidden=hidden, seed=seed, l2=self.l2) if data else None
        scorer = cache[slot]
        return blended(scorer, self.blend) if scorer is not None and self.blend else scorer

    def describe(self) -> dict:
        return {"features": list(self.features) if self.trained else "untrained", "l2": self.l2, "blend": self.blend,
                "plain_only": self.plain_only}


BLENDS = (0.25, 0.5, 0.75)
_BASE = tuple(f for f in alignment.FEATURES if f not in alignment.GROUPS["surrogate transferability"])
_PRIOR = alignment.GROUPS["calibration"]  # query-blind: how the model behaves on the probe set
UNTRAINED_OPTION = "untrained (mean of kernel alignment and concept match)"
ALIGN2_OPTION = "learned, with surrogate transferability"  # align-2's design (the packaged default until 2026-12)
# the packaged default, align-3: chosen by leave-one-domain-out CV (bench/protocol_study.py, 2026-12-01), then fitted
# on the plain meta-training tasks (the study's second choice)
DEFAULT_OPTION = "learned, with surrogate transferability, blended with untrained w=0.75"
DESIGNS: dict[str, Design] = {
    UNTRAINED_OPTION: Design(),
    "learned, know2vec features (align-1's)": Design(_BASE),
    ALIGN2_OPTION: Design(alignment.FEATURES),
    **{f"learned, know2vec features, blended with untrained w={w}": Design(_BASE, blend=w) for w in BLENDS},
    **{f"learned, with surrogate transferability, blended with untrained w={w}": Design(alignment.FEATURES, blend=w)
       for w in BLENDS},
    **{f"learned, with surrogate transferability, l2={l2:g}": Design(alignment.FEATURES, l2=l2) for l2 in (0.1, 1.0)},
    **{f"untrained blended with a learned quality prior (probe-set calibration) of weight {1 - w:g}":
       Design(_PRIOR, blend=w) for w in (0.75, 0.5)},
}


def cv_scores(pairs: Pairs, specs: list[TaskSpec], models, designs: Mapping[str, Design], *, by: str = "dataset",
              family_map: Mapping[str, str] | None = None, hidden: int = 0, seed: int = 0, cache: dict | None = None,
              progress: Callable[[str], None] | None = None,
              scored: dict | None = None) -> dict[str, dict[str, dict]]:
    """{design: {task id: ranking metrics}}: each task of `specs` scored by each design fitted on the other folds'
    tasks. by="dataset": a fold is a dataset, every model stays. by="domain": a fold is a domain family (family_map;
    a dataset it does not name is its own family), and when `models` maps each model to its dataset, the family's
    models leave the fold (its training and its tasks' rankings): its tasks are ranked as a new domain's are.
    A fold with nothing to fit on is left out for every design, so all designs are scored on the same tasks.
    `scored`, when given, gets the out-of-fold scores themselves: {design: {task id: {model: score}}}."""
    from zoo2vec.eval.metrics import all_metrics

    if by not in ("dataset", "domain"):
        raise ConfigError(f"unknown cross-validation {by!r}: dataset or domain")
    family_map = family_map or {}
    fold_of = (lambda s: s.dataset) if by == "dataset" else (lambda s: family_of(s.dataset, family_map))
    cache = {} if cache is None else cache
    out: dict[str, dict[str, dict]] = {name: {} for name in designs}
    folds = sorted({fold_of(s) for s in specs})
    for i, fold in enumerate(folds):
        train_specs = [s for s in specs if fold_of(s) != fold]
        test_ids = [s.task_id for s in specs if fold_of(s) == fold]
        fold_models = models
        if by == "domain" and isinstance(models, Mapping):
            fold_models = {m: d for m, d in models.items() if family_of(d, family_map) != fold}
        if not pairs.groups([s.task_id for s in train_specs], alignment.FEATURES, fold_models):
            continue  # a fold with nothing to learn from (tiny configs) says nothing
        for name, design in designs.items():
            scorer = design.fitted(pairs, train_specs, fold_models, hidden=hidden, seed=seed, cache=cache,
                                   key=(by, fold, fold_models is models))
            if scorer is None:
                continue
            names = alignment.FEATURES if scorer.untrained else scorer.features
            for task_id, x, y in pairs.groups(test_ids, names, fold_models):
                predicted = scorer.score_matrix(x)
                out[name][task_id] = all_metrics(y, predicted)
                if scored is not None:
                    names_of = pairs.models_of(task_id, fold_models)
                    scored.setdefault(name, {})[task_id] = dict(zip(names_of.tolist(), predicted.tolist()))
        if progress:
            progress(f"cv by {by}: fold {i + 1}/{len(folds)} ({fold}) done")
    return out


def mean_of(per_task: Mapping[str, dict], key: str = "weighted_tau") -> float | None:
    return float(np.mean([v[key] for v in per_task.values()])) if per_task else None


def cross_validate(features: dict, gt, specs: list[TaskSpec], models, *, names=alignment.FEATURES,
                   hidden: int = 0, seed: int = 0, by: str = "dataset",
                   family_map: Mapping[str, str] | None = None) -> dict[str, float]:
    """Leave one meta-training dataset (by="dataset") or domain family (by="domain", see cv_scores) out at a time:
    mean weighted tau of the learned (on `names`) and the untrained score."""
    pairs = Pairs(features, gt, [s.task_id for s in specs])
    found = cv_scores(pairs, specs, models, {"learned": Design(tuple(names)), "untrained": Design()}, by=by,
                      family_map=family_map if family_map is not None else families(), hidden=hidden, seed=seed)
    return {"learned": mean_of(found["learned"]), "untrained": mean_of(found["untrained"]), "tasks": len(found["learned"])}


def protocol(meta_features: dict, evaluated: dict[str, dict], gt, meta: list[TaskSpec], models, *,
             hidden: int = 0, family_map: Mapping[str, str] | None = None, designs: Mapping[str, Design] | None = None,
             record: dict | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """The scorer's design choices: {choice: {option: {"cv_domain", "cv", "held_out", "new_domain", "chosen"}}}.

    Every option gets its leave-one-domain-out CV weighted tau over the meta-training tasks (`cv_domain`, what
    chooses) and its leave-one-dataset-out one (`cv`, reported). Then, once, the chosen option and the packaged
    default's design (DEFAULT_OPTION), each fitted on every meta-training task, are scored on each split of
    `evaluated` ({split: {task_id: {model: features}}}); the other options' split numbers stay None: they were not
    looked at. Choices: "scorer" (DESIGNS), then "meta-training tasks" (the chosen scorer fitted on the plain tasks
    only, or on the plain and the transformed ones; absent when the untrained score is chosen). `record`, when
    given, receives every option's per-task CV metrics and the evaluated designs' full metrics and scorers."""
    say = progress or (lambda text: None)
    family_map = families() if family_map is None else family_map
    designs = dict(DESIGNS if designs is None else designs)
    pairs = Pairs(meta_features, gt, [s.task_id for s in meta])
    cache: dict = {}
    record = {} if record is None else record
    record.setdefault("cv_domain", {})
    record.setdefault("cv", {})
    record.setdefault("splits", {})
    record.setdefault("scorers", {})
    record["designs"] = {o: d.describe() for o, d in designs.items()}

    def run_cv(rows: Mapping[str, Design]):
        for by, key in (("domain", "cv_domain"), ("dataset", "cv")):
            record[key].update(cv_scores(pairs, meta, models, rows, by=by, family_map=family_map, hidden=hidden,
                                         cache=cache, progress=say))

    def looked_at(option: str, design: Design):
        """The design fitted on every meta-training task, scored once on every evaluated split."""
        scorer = design.fitted(pairs, meta, models, hidden=hidden, cache=cache, key="all")
        if scorer is None:
            return {split: None for split in evaluated}
        record["scorers"][option] = scorer
        found = {split: evaluate(scorer, features, gt, list(features)) for split, features in evaluated.items()}
        record["splits"][option] = found
        return {split: v["weighted_tau"] if v else None for split, v in found.items()}

    def choose(rows: Mapping[str, Design], also: tuple[str, ...] = ()) -> tuple[dict, str | None]:
        table = {o: {"cv_domain": mean_of(record["cv_domain"][o]), "cv": mean_of(record["cv"][o])} for o in rows}
        scored = [o for o in table if table[o]["cv_domain"] is not None]
        chosen = max(scored, key=lambda o: table[o]["cv_domain"]) if scored else None
        say(f"chosen by leave-one-domain-out CV: {chosen}; scoring it{' and ' + ', '.join(also) if also else ''} "
            f"on {', '.join(evaluated) or 'no split'}, once")
        for option in table:
            look = option == chosen or option in also
            table[option].update(looked_at(option, rows[option]) if look else {split: None for split in evaluated})
            table[option]["chosen"] = option == chosen
        return table, chosen

    say(f"protocol: {len(designs)} scorer designs, leave one domain out and leave one dataset out")
    run_cv(designs)
    scorer_table, chosen = choose(designs, also=(DEFAULT_OPTION,) if DEFAULT_OPTION in designs else ())
    out = {"scorer": scorer_table}
    if chosen is not None and designs[chosen].trained:
        plain = [s for s in meta if not s.transform]
        tasks = {f"plain and transformed ({len(meta)})": designs[chosen],  # first: a tie keeps what was chosen
                 f"plain only ({len(plain)})": dataclasses.replace(designs[chosen], plain_only=True)}
        run_cv(tasks)
        out["meta-training tasks"], _ = choose(tasks)
        record["designs"].update({o: d.describe() for o, d in tasks.items()})
    record["chosen"] = chosen
    return out


def train(config_name: str = "bench", *, out: Path | None = None, hidden: int = 0, seed: int = 0,
          l2: float = 1e-3, blend: float = 0.75, plain_only: bool = True,
          progress: Callable[[str], None] | None = None) -> tuple[alignment.Alignment, Path]:
    """Train the alignment on the config's meta-training tasks; writes the checkpoint and returns it with its path.
    l2: fit's weight decay; blend: the weight of the untrained score mixed in (Alignment.blend); plain_only: fit on
    the plain meta-training tasks, not their transformed copies. The defaults are the packaged default's recipe."""
    root, config, specs, gt = prepare(config_name, progress=progress)
    meta = [s for s in specs if s.meta]
    zoo = zoo2vec.open(root, alignment=alignment.UNTRAINED)
    feats = task_features(zoo, meta, progress)
    allowed = meta_training_models(root, config)
    fit_on = [s.task_id for s in meta if not (plain_only and s.transform)]
    data = groups(feats, gt, fit_on, alignment.FEATURES, allowed)
    provenance = {"config": config["name"], "tasks": fit_on, "models": len(allowed), "plain_only": plain_only,
                  "ground_truth": GROUND_TRUTH_VERSION, "hidden": hidden, "seed": seed,
                  "probe_sets": sorted(zoo.models()["probe_set"].unique().tolist()),
                  "l2": l2, "blend": blend,
                  "cross_validation": cross_validate(feats, gt, meta, allowed, hidden=hidden, seed=seed),
                  "cross_validation_by_domain": cross_validate(feats, gt, meta, allowed, hidden=hidden, seed=seed,
                                                               by="domain", family_map=families(config))}
    scorer = fit([(x, y) for x, y, _ in data], hidden=hidden, seed=seed, l2=l2, trained_on=provenance)
    if blend:
        scorer = blended(scorer, blend)
    out = Path(out) if out else settings.home() / "alignments" / f"{scorer.version}.json"
    scorer.save(out)
    return scorer, out
