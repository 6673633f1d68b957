"""The ground truth's own noise: how far a ranking can agree with measured accuracy when the test split changes.

Each task's ground truth is one test split (eval.tasks.materialize). Here the test split is redrawn R times from
the dataset's "tasks" half, without the task's query samples (same classes, same size per class, other seeds),
and every model is scored on each redraw with the same head as the ground truth's (fitted once on its query
outputs). summarise() turns that into ceilings a ranker can be held against:

- top1: how often the model best on the original test split is still (one of) the best on a redraw;
- top3: how often an oracle that knows each model's expected accuracy (the mean over the original split and the
  redraws) has a draw's best model among its first three;
- weighted_tau: the weighted tau between a draw's accuracies and that expected accuracy, an upper bound for any
  ranker (the expected accuracy includes the draw itself, so it is slightly optimistic).

Accuracies go to a Parquet file (task_id, model, redraw, accuracy, n_test, forward_s, error) with a JSON sidecar of
the versions that made them, what each task's samples were drawn from and each model's fingerprint; a run keeps the
(task, model) rows measured with the same versions, samples and model files, measures only what is missing, and
recomputes everything when a version changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoo2vec.data.task import Task
from zoo2vec.eval import metrics
from zoo2vec.eval.ground_truth import _inputs, measure_tasks, versions
from zoo2vec.eval.tasks import TaskSpec, bench_data, materialize
from zoo2vec.zoo.blackbox import checked_predict
from zoo2vec.zoo.measure import linear_head, log_features

NOISE_VERSION = "noise-1"


def query_indices(spec: TaskSpec, data) -> np.ndarray:
    """The dataset indices of spec's query samples: materialize's own draw (same seed, same order)."""
    rng = np.random.default_rng(spec.seed + 1)
    out = []
    for name in spec.classes:
        idx = rng.permutation(np.flatnonzero(data.y == data.label_names.index(name)))
        out.extend(idx[: spec.shots])
    return np.asarray(out, dtype=np.int64)


def redraw_indices(spec: TaskSpec, data, r: int) -> np.ndarray:
    """Redraw r (>= 1) of spec's test split: spec.test_per_class samples of each class, none of them a query sample,
    drawn with a seed of its own. A class with fewer samples left gives all it has (none: it is left out)."""
    if r < 1:
        raise ValueError(f"redraw numbers start at 1 (0 is the original test split), got {r}")
    query = set(query_indices(spec, data).tolist())
    rng = np.random.default_rng((spec.seed, r))
    out = []
    for name in spec.classes:
        pool = np.asarray([i for i in np.flatnonzero(data.y == data.label_names.index(name)) if i not in query])
        if len(pool):
            out.extend(rng.permutation(pool)[: spec.test_per_class])
    return np.asarray(out, dtype=np.int64)


def _samples(spec: TaskSpec, data, idx) -> list:
    """The samples at idx, changed by spec's transform as materialize changes its test split's (a random transform,
    such as noise, draws afresh per call: redraws measured together share one draw)."""
    samples = list(data.x[idx]) if isinstance(data.x, np.ndarray) else [data.x[i] for i in idx]
    if getattr(spec, "transform", ""):
        from zoo2vec.eval.tasks import transformed

        samples = transformed(samples, spec.transform, np.random.default_rng([spec.seed, 1]))
    return samples


def redraw(spec: TaskSpec, r: int) -> Task:
    """Redraw r of spec's test split as a Task (its label_names are the classes it holds, sorted, as materialize's)."""
    data = bench_data(spec.dataset, "tasks")
    idx = redraw_indices(spec, data, r)
    return Task.from_arrays(_samples(spec, data, idx), [data.label_names[i] for i in data.y[idx]])


def _redraws(spec: TaskSpec, query: Task, redraws: int):
    """The union of all redraws' samples as one Task (each sample run once per model), and per redraw its rows in
    that union with labels indexed into the query's label_names (what the head predicts)."""
    data = bench_data(spec.dataset, "tasks")
    draws = [redraw_indices(spec, data, r) for r in range(1, redraws + 1)]
    union = np.unique(np.concatenate(draws))
    names = [data.label_names[i] for i in data.y[union]]
    pooled = Task.from_arrays(_samples(spec, data, union), names)
    labels = np.asarray([query.label_names.index(n) for n in names], dtype=np.int64)
    rows = [np.searchsorted(union, d) for d in draws]
    return pooled, [(row, labels[row]) for row in rows]


def noise_versions(redraws: int) -> dict:
    """What every accuracy depends on besides its task's samples (a change recomputes them all)."""
    return {"noise_ceiling": NOISE_VERSION, "redraws": redraws, **versions()}


def measure(zoo_root: Path, specs: list[TaskSpec], out: Path, *, redraws: int = 5,
            progress: Callable[[str, int, int], None] | None = None):
    """Accuracy of every (task, model of its modality) on each of `redraws` redrawn test splits, the head fitted
    once on the query outputs as in ground_truth.measure; returns a DataFrame (task_id, model, redraw, accuracy,
    n_test, error). Pass the tasks to measure (the bench reports on the held-out ones)."""
    return measure_tasks(zoo_root, specs, out, noise_versions(redraws),
                         lambda spec, todo, cards, model: _measure_task(spec, todo, cards, model, redraws), progress)


def _measure_task(spec: TaskSpec, todo: list[str], cards: dict, model: Callable, redraws: int) -> list[dict]:
    query, _ = materialize(spec)
    try:
        pooled, draws = _redraws(spec, query, redraws)
    except Exception as exc:  # a task whose redraws cannot be made is recorded, not fatal  # noqa: BLE001
        return [{"task_id": spec.task_id, "model": "", "redraw": 0, "error": f"{type(exc).__name__}: {exc}"}]
    rows = []
    for name in todo:
        card = cards[name]
        try:
            loaded = model(name)
            head = linear_head().fit(log_features(checked_predict(loaded, _inputs(card, query))), query.labels)
            t0 = time.perf_counter()
            features = log_features(checked_predict(loaded, _inputs(card, pooled)))
            seconds = time.perf_counter() - t0
            for r, (row, labels) in enumerate(draws, start=1):
                rows.append({"task_id": spec.task_id, "model": name, "redraw": r, "n_test": len(row),
                             "accuracy": float(head.score(features[row], labels)), "forward_s": seconds})
        except Exception as exc:  # a failing model is recorded, not fatal  # noqa: BLE001
            rows.append({"task_id": spec.task_id, "model": name, "redraw": 0, "error": f"{type(exc).__name__}: {exc}"})
    return rows


def _draws(table, ground_truth, task_id):
    """(model names, accuracies (draws x models)): row 0 the original split, then the redraws; only models measured
    without error on every draw."""
    truth = ground_truth[ground_truth.task_id == task_id]
    if "error" in truth:
        truth = truth[truth["error"].isna()]
    rows = table[table.task_id == task_id]
    if "error" in rows:
        failed = set(rows.loc[rows["error"].notna(), "model"])
        rows = rows[rows["error"].isna() & ~rows["model"].isin(failed)]
    if rows.empty:
        return [], None
    wide = rows.pivot_table(index="model", columns="redraw", values="accuracy", aggfunc="first").dropna()
    original = truth.drop_duplicates("model").set_index("model")["accuracy"]
    models = sorted(set(wide.index) & set(original.index))
    if len(models) < 2 or wide.shape[1] == 0:
        return models, None
    acc = np.vstack([original[models].to_numpy(dtype=np.float64), wide.loc[models].to_numpy(dtype=np.float64).T])
    return models, acc


def summarise(table, ground_truth) -> dict:
    """Noise ceilings from the redraws (`table`, measure's) and the original test splits (`ground_truth`,
    ground_truth.measure's): {"top1", "top3", "weighted_tau", "tasks", "redraws"}. Tasks with fewer than two models
    measured on every draw are left out; a model failing anywhere in a task is left out of that task."""
    top1, top3, tau = [], [], []
    redraws = int(table["redraw"].max()) if len(table) and "redraw" in table else 0
    for task_id in sorted(set(table["task_id"])) if len(table) else []:
        _, acc = _draws(table, ground_truth, task_id)
        if acc is None:
            continue
        expected = acc.mean(axis=0)
        top1.append(np.mean([metrics.top_k_hit(draw, acc[0], 1) for draw in acc[1:]]))
        top3.append(np.mean([metrics.top_k_hit(draw, expected, 3) for draw in acc]))
        tau.append(np.mean([metrics.weighted_tau(draw, expected) for draw in acc]))

    def mean(values):
        return float(np.mean(values)) if values else float("nan")

    return {"top1": mean(top1), "top3": mean(top3), "weighted_tau": mean(tau), "tasks": len(top1), "redraws": redraws}
