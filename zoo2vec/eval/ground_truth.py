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


def versions(zoo_root: Path) -> dict:
    import sklearn

    import zoo2vec

    models = {name: fingerprint(folder) for name, folder in discover(zoo_root).items()}
    return {"ground_truth": GROUND_TRUTH_VERSION, "adapter": ADAPTER_VERSION, "zoo2vec": zoo2vec.__version__,
            "sklearn": sklearn.__version__, "features": "log-probabilities", "head": "StandardScaler + LogisticRegression(max_iter=1000)",
            "models": models}


def cached_tasks(out: Path, made_by: dict, specs: list[TaskSpec]):
    """The rows of `out` (Parquet, JSON sidecar beside it) still valid for `specs`: those of tasks measured with the
    same versions (`made_by`) and samples; returns them and the sidecar to extend (empty when a version changed)."""
    import pandas as pd

    meta = {"versions": json.loads(json.dumps(made_by)), "tasks": {}}  # as it reads back: tuples become lists
    meta_path = out.with_suffix(".json")
    if not (out.exists() and meta_path.exists()):
        return pd.DataFrame(), meta
    before = json.loads(meta_path.read_text())
    if before.get("versions") != meta["versions"]:
        return pd.DataFrame(), meta
    same = {s.task_id for s in specs if before.get("tasks", {}).get(s.task_id) == s.sample_key()}
    done = pd.read_parquet(out)
    meta["tasks"] = {t: before["tasks"][t] for t in same}
    return done[done["task_id"].isin(same)], meta


def save_tasks(table, out: Path, meta: dict) -> None:
    """Write the table, then its sidecar, each through a temporary file: a crash leaves the previous pair readable."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.parquet")
    table.to_parquet(tmp)
    tmp.replace(out)
    tmp_meta = out.with_suffix(".tmp.json")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    tmp_meta.replace(out.with_suffix(".json"))


def measure(zoo_root: Path, specs: list[TaskSpec], out: Path, *, progress: Callable[[str, int, int], None] | None = None):
    """Ground truth and exhaustive scores for every (task, model of its modality); returns a DataFrame."""
    import pandas as pd

    out = Path(out)
    done, meta = cached_tasks(out, versions(zoo_root), specs)
    finished = set(done["task_id"]) if len(done) else set()
    folders = discover(zoo_root)
    cards = zoo_cards(zoo_root)
    loaded: dict[str, object] = {}
    frames = [done] if len(done) else []
    for i, spec in enumerate(specs):
        if progress:
            progress(spec.task_id, i, len(specs))
        if spec.task_id in finished:
            continue
        query, test = materialize(spec)
        rows = []
        for name, card in cards.items():
            if card.modality != spec.modality:
                continue
            row = {"task_id": spec.task_id, "model": name}
            try:
                model = loaded.get(name) or loaded.setdefault(name, load_model(folders[name]))
                t0 = time.perf_counter()
                q = checked_predict(model, _inputs(card, query))
                row["forward_s"] = time.perf_counter() - t0
                row["forward_passes"] = len(query)
                t_out = checked_predict(model, _inputs(card, test))
                row["accuracy"] = head_accuracy(log_features(q), query.labels, log_features(t_out), test.labels)
                for score, fn in SCORES.items():
                    t0 = time.perf_counter()
                    row[score] = fn(q, query.labels) if score in ("leep", "nce") else fn(log_features(q), query.labels)
                    row[f"{score}_s"] = time.perf_counter() - t0
            except Exception as exc:  # a failing model is recorded, not fatal  # noqa: BLE001
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
        frames.append(pd.DataFrame(rows))
        meta["tasks"][spec.task_id] = spec.sample_key()
        save_tasks(pd.concat(frames, ignore_index=True), out, meta)
    if progress:
        progress("", len(specs), len(specs))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
