"""The ground truth's noise ceiling: summarise() on tables whose answer follows by hand, the test-split redraw on a
tiny synthetic dataset (disjoint from the query, the task's classes and sizes, materialize's query), and measure()
on the tiny zoo with the packaged datasets (cache, resume, a failing model)."""

import numpy as np
import pandas as pd
import pytest

from zoo2vec.data.datasets import LabelledData
from zoo2vec.eval import noise_ceiling as nc
from zoo2vec.eval import tasks
from zoo2vec.eval.tasks import TaskSpec


def _tables(original: dict, redraws: list[dict], task_id="t/0"):
    gt = pd.DataFrame([{"task_id": task_id, "model": m, "accuracy": a} for m, a in original.items()])
    table = pd.DataFrame([{"task_id": task_id, "model": m, "redraw": r, "accuracy": a}
                          for r, draw in enumerate(redraws, start=1) for m, a in draw.items()])
    return table, gt


def test_summarise_by_hand():
    # original: a best. redraw 1: a still best; redraw 2: b best -> top1 = 1/2
    original = {"a": 0.9, "b": 0.8, "c": 0.5, "d": 0.1}
    redraws = [{"a": 0.8, "b": 0.7, "c": 0.6, "d": 0.2}, {"a": 0.7, "b": 0.8, "c": 0.4, "d": 0.0}]
    table, gt = _tables(original, redraws)
    out = nc.summarise(table, gt)
    assert out["top1"] == pytest.approx(0.5)
    # expected accuracy: a 0.8, b 0.7667, c 0.5, d 0.1 -> oracle's top 3 {a, b, c} holds every draw's best
    assert out["top3"] == 1.0
    expected = np.array([0.8, 2.3 / 3, 0.5, 0.1])
    draws = [np.array(list(d.values())) for d in [original, *redraws]]
    assert out["weighted_tau"] == pytest.approx(np.mean([nc.metrics.weighted_tau(d, expected) for d in draws]))
    assert out["tasks"] == 1 and out["redraws"] == 2


def test_summarise_top3_miss_and_ties_and_failures():
    # five models; e is best only on redraw 1 and 5th in expectation -> the oracle's top 3 misses on 1 of 3 draws
    original = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.1}
    redraws = [{"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5, "e": 0.95},
               {"a": 0.9, "b": 0.9, "c": 0.7, "d": 0.6, "e": 0.1}]  # a tied best with b: still a hit
    table, gt = _tables(original, redraws)
    failed = pd.DataFrame([{"task_id": "t/0", "model": "f", "redraw": 0, "error": "RuntimeError: boom"}])
    gt = pd.concat([gt, pd.DataFrame([{"task_id": "t/0", "model": "f", "accuracy": 1.0}])], ignore_index=True)
    out = nc.summarise(pd.concat([table, failed], ignore_index=True), gt)
    assert out["top1"] == pytest.approx(0.5)  # f (failed on the redraws) is left out, so a is the original best
    assert out["top3"] == pytest.approx(2 / 3)
    # a second task where nothing changes: top1 = top3 = tau = 1; the means are over tasks
    same = {"a": 0.9, "b": 0.5, "c": 0.2}
    t2, g2 = _tables(same, [same, same], task_id="t/1")
    both = nc.summarise(pd.concat([table, failed, t2], ignore_index=True), pd.concat([gt, g2], ignore_index=True))
    assert both["tasks"] == 2 and both["top1"] == pytest.approx(0.75) and both["top3"] == pytest.approx(5 / 6)
    assert nc.summarise(t2, g2)["weighted_tau"] == pytest.approx(1.0)


@pytest.fixture
def synthetic(monkeypatch):
    """A text dataset of 4 classes (sizes 40, 30, 12, 25) standing in for bench_data everywhere."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(4), [40, 30, 12, 25]))
    data = LabelledData("synthetic", [f"sample {i}" for i in range(len(y))], y, ("w", "x", "y", "z"), "test", "mit")
    monkeypatch.setattr(nc, "bench_data", lambda name, part: data)
    monkeypatch.setattr(tasks, "bench_data", lambda name, part: data)
    return data


def test_redraw_is_disjoint_from_the_query_with_the_task_classes_and_sizes(synthetic):
    spec = TaskSpec("synthetic/0", "synthetic", "text", ("w", "y", "z"), 5, 10, 123)
    data = synthetic
    query_idx = nc.query_indices(spec, data)
    query, test = tasks.materialize(spec)
    assert list(query.samples) == [data.x[i] for i in query_idx]  # the same query as materialize's
    draws = [nc.redraw_indices(spec, data, r) for r in (1, 2, 3)]
    for idx in draws:
        assert not set(idx.tolist()) & set(query_idx.tolist())
        names = [data.label_names[i] for i in data.y[idx]]
        assert {n: names.count(n) for n in set(names)} == {"w": 10, "y": 7, "z": 10}  # y: 12 - 5 shots left
        assert len(set(idx.tolist())) == len(idx)
    assert not all(np.array_equal(np.sort(draws[0]), np.sort(d)) for d in draws[1:])  # other seeds, other draws
    assert np.array_equal(draws[0], nc.redraw_indices(spec, data, 1))  # deterministic
    task = nc.redraw(spec, 2)
    assert task.label_names == test.label_names == ("w", "y", "z") and len(task) == 27
    with pytest.raises(ValueError):
        nc.redraw_indices(spec, data, 0)


def test_pooled_redraws_keep_the_query_label_order(synthetic):
    spec = TaskSpec("synthetic/1", "synthetic", "text", ("x", "z"), 3, 8, 7)
    query, _ = tasks.materialize(spec)
    pooled, draws = nc._redraws(spec, query, 3)
    for r, (rows, labels) in enumerate(draws, start=1):
        idx = nc.redraw_indices(spec, synthetic, r)
        assert [pooled.samples[i] for i in rows] == [synthetic.x[i] for i in idx]
        assert [query.label_names[k] for k in labels] == [synthetic.label_names[i] for i in synthetic.y[idx]]


def test_measure_on_the_tiny_zoo_caches_resumes_and_records_failures(tiny_zoo_master, tmp_path, monkeypatch):
    from zoo2vec.eval import ground_truth

    specs = [TaskSpec("sklearn-digits/0", "sklearn-digits", "image", ("1", "7", "8"), 5, 12, 11),
             TaskSpec("bbc-news/0", "bbc-news", "text", ("business", "sport"), 5, 20, 12)]
    out = tmp_path / "noise.parquet"
    table = nc.measure(tiny_zoo_master, specs, out, redraws=2)
    assert "error" not in table or table["error"].isna().all()
    per_task = table.groupby("task_id")["model"].nunique().to_dict()
    assert per_task == {"sklearn-digits/0": 3, "bbc-news/0": 2}  # the tiny zoo's models of each modality
    assert sorted(set(table["redraw"])) == [1, 2] and table["accuracy"].between(0, 1).all()
    assert set(table.loc[table.task_id == "bbc-news/0", "n_test"]) == {40}
    assert out.is_file() and out.with_suffix(".json").is_file()

    def boom(folder):
        raise RuntimeError("boom")

    monkeypatch.setattr(ground_truth, "load_model", boom)  # the loop both measures share
    again = nc.measure(tiny_zoo_master, specs, out, redraws=2)  # resumed: nothing loaded, nothing recomputed
    pd.testing.assert_frame_equal(again.reset_index(drop=True), table.reset_index(drop=True))
    more = nc.measure(tiny_zoo_master, [*specs, TaskSpec("bbc-news/1", "bbc-news", "text", ("tech", "politics"),
                                                         3, 10, 13)], out, redraws=2)
    failed = more[more.task_id == "bbc-news/1"]
    assert len(failed) == 2 and failed["error"].str.contains("boom").all()  # recorded, not fatal
    monkeypatch.undo()

    truth = ground_truth.measure(tiny_zoo_master, specs, tmp_path / "gt.parquet")
    summary = nc.summarise(more, truth)
    assert summary["tasks"] == 2 and summary["redraws"] == 2  # the failed task is left out
    assert 0 <= summary["top1"] <= 1 and 0 <= summary["top3"] <= 1 and -1 <= summary["weighted_tau"] <= 1


def test_ground_truth_measures_only_the_models_whose_files_changed(tiny_zoo, tmp_path, monkeypatch):
    import json

    from zoo2vec.eval import ground_truth
    from zoo2vec.zoo.layout import ZooLayout

    specs = [TaskSpec("sklearn-digits/0", "sklearn-digits", "image", ("1", "7", "8"), 5, 12, 11)]
    out = tmp_path / "gt.parquet"
    first = ground_truth.measure(tiny_zoo, specs, out)
    assert sorted(first["model"]) == ["digits8-linear", "digits8-linear-parity", "digits8-mlp-0to4"]
    card = ZooLayout(tiny_zoo).model_folder("digits8-linear") / "card.json"
    card.write_text(card.read_text().replace('"license": "mit"', '"license": "apache-2.0"'))
    loaded = []
    real = ground_truth.load_model
    monkeypatch.setattr(ground_truth, "load_model", lambda folder: loaded.append(folder.name) or real(folder))
    again = ground_truth.measure(tiny_zoo, specs, out)
    assert loaded == ["digits8-linear"]  # the other two come from the cache
    assert sorted(again["model"]) == sorted(first["model"])
    kept = again[again.model != "digits8-linear"].sort_values("model").reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, first[first.model != "digits8-linear"].sort_values("model").reset_index(drop=True))

    # a sidecar written before fingerprints moved out of "versions" is still read: nothing is measured again
    meta = json.loads(out.with_suffix(".json").read_text())
    meta["versions"]["models"] = meta.pop("models")
    out.with_suffix(".json").write_text(json.dumps(meta))
    loaded.clear()
    ground_truth.measure(tiny_zoo, specs, out)
    assert loaded == []


def test_a_task_that_could_not_be_made_is_not_tried_again():
    from zoo2vec.eval.ground_truth import missing
    from zoo2vec.zoo.card import ModelCard

    spec = TaskSpec("bbc-news/0", "bbc-news", "text", ("business", "sport"), 5, 20, 12)
    cards = {"a": ModelCard("a", "text"), "b": ModelCard("b", "text"), "img": ModelCard("img", "image", input_shape=(1, 8, 8))}
    measured = pd.DataFrame({"task_id": ["bbc-news/0"], "model": ["a"]})
    assert missing(measured, spec, cards) == ["b"] and missing(pd.DataFrame(), spec, cards) == ["a", "b"]
    failed = pd.DataFrame({"task_id": ["bbc-news/0"], "model": [""], "error": ["ValueError: too few samples"]})
    assert missing(failed, spec, cards) == []
