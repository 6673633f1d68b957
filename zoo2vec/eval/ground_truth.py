"""Measured ground truth: how well each zoo model actually does on each benchmark task.

suitability(m, t) = accuracy on t's test split of a logistic-regression head trained on m's black-box
outputs (log-probabilities) for t's query samples. The same outputs feed the exhaustive baselines
(LogME, LEEP, NCE, k-NN), whose cost (forward passes and scoring time) is recorded per model.
Results go to a Parquet file with a JSON sidecar naming the versions that made them and what each task's
samples were drawn from; a run keeps the tasks it has measured with the same versions and samples (so adding tasks
measures only those), and recomputes everything when a version changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from zoo2vec.data.images import resize
from zoo2vec.encoders.transferability import SCORES
from zoo2vec.eval.tasks import TaskSpec, materialize
from zoo2vec.zoo.adapters import ADAPTER_VERSION, fingerprint, load_model
from zoo2vec.zoo.blackbox import checked_predict
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.discovery import cards as zoo_cards
from zoo2vec.zoo.discovery import discover
from zoo2vec.zoo.measure import linear_head, log_features

GROUND_TRUTH_VERSION = "gt-2"


def head_accuracy(train_x, train_y, test_x, test_y) -> float:
    clf = linear_head()
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def _inputs(card: ModelCard, task):
    return resize(list(task.samples), card.input_shape) if card.modality == "image" else list(task.samples)


def versions() -> dict:
    import sklearn

    import zoo2vec

    return {"ground_truth": GROUND_TRUTH_VERSION, "adapter": ADAPTER_VERSION, "zoo2vec": zoo2vec.__version__,
            "sklearn": sklearn.__version__, "features": "log-probabilities", "head": "StandardScaler + LogisticRegression(max_iter=1000)"}


def fingerprints(folders: dict[str, Path]) -> dict[str, str]:
    return {name: fingerprint(folder) for name, folder in folders.items()}


def cached_tasks(out: Path, made_by: dict, specs: list[TaskSpec], models: dict[str, str]):
    """The rows of `out` (Parquet, JSON sidecar beside it) still valid for `specs` and the zoo's `models` (name ->
    fingerprint): those of tasks measured with the same versions (`made_by`) and samples, and of models with the same
    fingerprint (a row with no model, a task-level error, stays with its task); returns them and the sidecar to
    extend (empty when a version changed). So a model added to the zoo is measured alone, not the whole zoo again."""
    import pandas as pd

    meta = {"versions": json.loads(json.dumps(made_by)), "tasks": {}, "models": models}  # as JSON reads it back
    meta_path = out.with_suffix(".json")
    if not (out.exists() and meta_path.exists()):
        return pd.DataFrame(), meta
    before = json.loads(meta_path.read_text())
    before_versions = dict(before.get("versions", {}))
    before_models = before.get("models") or before_versions.pop("models", {})  # sidecars before 2026-12 kept them there
    if before_versions != meta["versions"]:
        return pd.DataFrame(), meta
    same = {s.task_id for s in specs if before.get("tasks", {}).get(s.task_id) == s.sample_key()}
    kept = {name for name, fp in models.items() if before_models.get(name) == fp} | {""}
    done = pd.read_parquet(out)
    meta["tasks"] = {t: before["tasks"][t] for t in same}
    return done[done["task_id"].isin(same) & done["model"].fillna("").isin(kept)], meta


def missing(done, spec: TaskSpec, cards: dict[str, ModelCard]) -> list[str]:
    """The models of the task's modality that `done` holds no row for on this task (none when it holds the task's
    own error row: a task that could not be made is not tried again until its samples or a version change)."""
    have = set(done.loc[done["task_id"] == spec.task_id, "model"].fillna("")) if len(done) else set()
    if "" in have:
        return []
    return [name for name, card in cards.items() if card.modality == spec.modality and name not in have]


def save_tasks(table, out: Path, meta: dict) -> None:
    """Write the table, then its sidecar, each through a temporary file: a crash leaves the previous pair readable."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.parquet")
    table.to_parquet(tmp)
    tmp.replace(out)
    tmp_meta = out.with_suffix(".tmp.json")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    tmp_meta.replace(out.with_suffix(".json"))


def measure_tasks(zoo_root: Path, specs: list[TaskSpec], out: Path, made_by: dict, measure_task: Callable,
                  progress: Callable[[str, int, int], None] | None = None):
    """The loop ground truth and the noise ceiling share: for each task, the models of its modality not yet in `out`
    (cached_tasks, for the versions `made_by`), measured by measure_task(spec, names, cards, model) -> rows, where
    model(name) loads a model once per run; `out` is rewritten whole after each task, so a crash loses one task's
    work. Returns every row, the cached ones included, as a DataFrame."""
    import pandas as pd

    out = Path(out)
    folders = discover(zoo_root)
    done, meta = cached_tasks(out, made_by, specs, fingerprints(folders))
    cards = zoo_cards(zoo_root)
    loaded: dict[str, object] = {}

    def model(name: str):
        return loaded.get(name) or loaded.setdefault(name, load_model(folders[name]))

    frames = [done] if len(done) else []
    for i, spec in enumerate(specs):
        if progress:
            progress(spec.task_id, i, len(specs))
        todo = missing(done, spec, cards)
        meta["tasks"][spec.task_id] = spec.sample_key()
        if todo:
            frames.append(pd.DataFrame(measure_task(spec, todo, cards, model)))
            save_tasks(pd.concat(frames, ignore_index=True), out, meta)
    if progress:
        progress("", len(specs), len(specs))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def measure(zoo_root: Path, specs: list[TaskSpec], out: Path, *, progress: Callable[[str, int, int], None] | None = None):
    """Ground truth and exhaustive scores for every (task, model of its modality); returns a DataFrame."""
    return measure_tasks(zoo_root, specs, out, versions(), _measure_task, progress)


def _measure_task(spec: TaskSpec, todo: list[str], cards: dict[str, ModelCard], model: Callable) -> list[dict]:
    query, test = materialize(spec)
    rows = []
    for name in todo:
        card = cards[name]
        row = {"task_id": spec.task_id, "model": name}
        try:
            loaded = model(name)
            t0 = time.perf_counter()
            q = checked_predict(loaded, _inputs(card, query))
            row["forward_s"] = time.perf_counter() - t0
            row["forward_passes"] = len(query)
            t_out = checked_predict(loaded, _inputs(card, test))
            row["accuracy"] = head_accuracy(log_features(q), query.labels, log_features(t_out), test.labels)
            for score, fn in SCORES.items():
                t0 = time.perf_counter()
                row[score] = fn(q, query.labels) if score in ("leep", "nce") else fn(log_features(q), query.labels)
                row[f"{score}_s"] = time.perf_counter() - t0
        except Exception as exc:  # a failing model is recorded, not fatal  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows
