"""`zoo2vec eval --quick`: the whole benchmark pipeline on 12 real models (checks it works, not how well)."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from zoo2vec.cli import main
from zoo2vec.eval.tasks import (
    generate,
    held_out_datasets,
    load_config,
    meta_training_datasets,
    new_domain_datasets,
)

pytestmark = pytest.mark.integration


@pytest.mark.shared_data
def test_meta_training_tasks_never_come_from_held_out_datasets():
    for name in ("bench", "quick"):
        config = load_config(name)
        held = held_out_datasets(config)
        assert len(config["held_out"]["image"]) >= (3 if name == "bench" else 1)
        new = new_domain_datasets(config)
        assert not (held | new) & set(meta_training_datasets(config)) and not held & new
        specs = generate(config, {"mpqa", "breastmnist", "sms-spam", "fashion-mnist", "uci-yelp"})
        for spec in specs:
            assert spec.held_out == (spec.dataset in held)
            assert (spec.split == "new_domain") == (spec.dataset in new)
            assert not spec.transform or spec.meta  # only meta-training tasks are transformed
        assert {s.split for s in specs} == {"meta", "held_out", "new_domain"}
        assert any(s.transform for s in specs)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """`zoo2vec eval --quick`, run once; every test that takes it needs the shared datasets (marked so)."""
    out = tmp_path_factory.mktemp("bench-out")
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZOO2VEC_HOME", str(home))
    try:
        result = CliRunner().invoke(main, ["eval", "--quick", "--out", str(out)])
        assert result.exit_code == 0, result.output
        yield out, json.loads((out / "results.json").read_text()), result.output, home
    finally:
        mp.undo()


@pytest.mark.shared_data
def test_results_have_the_agreed_shape(quick):
    out, results, output, _ = quick
    assert "zoo2vec weighted tau" in output
    assert set(results) >= {"meta", "held_out", "new_domain", "scale"}
    assert results["held_out"]["zoo2vec"]["text_latency_ms_p50"] > 0
    assert {"zoo2vec", "zoo2vec_verify5", "logme", "leep", "knn", "static"} <= set(results["new_domain"])
    assert all(v["tasks"] == results["meta"]["tasks_new_domain"] > 0 for v in results["new_domain"].values())
    assert results["new_domain"]["zoo2vec_verify5"]["forward_passes"] > 0
    assert set(results["held_out"]) == {"zoo2vec", "zoo2vec_untrained", "random", "largest", "static", "card_text",
                                        "logme", "leep", "nce", "knn"}
    for v in results["held_out"].values():
        assert v["tasks"] == results["meta"]["tasks_held_out"] > 0
        assert -1 <= v["weighted_tau"] <= 1 and -1 <= v["weighted_tau_rank_none"] <= 1
        assert 0 <= v["top1"] <= v["top3"] <= 1 and 0 <= v["ndcg5"] <= 1 and v["regret1"] >= 0
        assert v["latency_ms_p50"] <= v["latency_ms_p95"]
    assert results["held_out"]["logme"]["forward_passes"] > 0 == results["held_out"]["zoo2vec"]["forward_passes"]
    for name in ("RESULTS.md", "tau_per_method.png", "latency_vs_zoo_size.png"):
        assert (out / name).stat().st_size > 0
    assert "| zoo2vec |" in (out / "RESULTS.md").read_text()
    assert set(results["scale"]["zoo_size"]) == {"12", "50"} and results["scale"]["index"]["2000"]["recall_at_10"] == 1.0
    assert results["scale"]["index"]["2000"]["filtered_1pct_recall_at_10"] == 1.0


@pytest.mark.shared_data
def test_method_issue_sections(quick):
    """Ablation, indexing cost, verification and filtered search are measured and reported."""
    out, results, _, _ = quick
    ablation = results["ablation"]
    assert any(name.startswith("untrained") for name in ablation) and any("without" in name for name in ablation)
    assert all(-1 <= v["weighted_tau"] <= 1 for v in ablation.values())
    cost = results["indexing_cost"]
    assert cost["models"] == results["meta"]["models"] and cost["forward_ms_p50"] > 0 and cost["other_ms_p50"] > 0
    verify = results["verify"]
    assert verify["n"] == 5 and verify["gap_closed"] <= 1 and verify["regret1_verified"] >= 0
    assert verify["forward_passes"] > 0
    filtered = results["filtered"]
    assert filtered["pairs"] == 1000 and filtered["exact_match_rate"] == 1.0 and filtered["latency_ratio_1pct"] > 0
    words = results["text_queries"]
    assert set(words) == {"bm25", "card_minilm", "moe", "zoo2vec", "zoo2vec_with_samples", "moe_routing", "ablation",
                          "new_domain"}
    assert set(words["new_domain"]) == {"bm25", "card_minilm", "moe", "zoo2vec", "zoo2vec_with_samples"}
    assert all(v["queries"] == results["meta"]["tasks_new_domain"] and 0 <= v["hit3"] <= 1
               for v in words["new_domain"].values())
    assert set(words["ablation"]) == {"all components", "without card", "without concepts", "without decisions",
                                      "without prior", "MoE card similarity"}
    for name, v in words.items():
        if name not in ("moe_routing", "ablation", "new_domain"):
            assert v["queries"] == results["meta"]["tasks_held_out"] and 0 <= v["hit3"] <= 1
            assert 0 < v["queries_bad_cards"] <= v["queries"] and 0 <= v["hit3_bad_cards"] <= 1
    assert 0 <= words["moe_routing"]["to_own_domain"] <= 1 and words["moe_routing"]["queries"] == words["bm25"]["queries"]
    text = (out / "RESULTS.md").read_text()
    for heading in ("## Against the method's targets", "## Ablation", "## Verification", "## Filtered search",
                    "## Text queries"):
        assert heading in text


@pytest.mark.shared_data
def test_metrics_follow_from_the_cached_ground_truth(quick):
    """Recompute one held-out task's LogME metrics from the ground-truth file: they must agree."""
    from zoo2vec.eval import metrics

    _, results, _, home = quick
    path = home / "bench" / "quick" / "ground_truth.parquet"
    gt = pd.read_parquet(path)
    task_id, values = next(iter(results["per_task"]["logme"].items()))
    rows = gt[gt.task_id == task_id]
    assert values["weighted_tau"] == pytest.approx(metrics.weighted_tau(rows.accuracy.to_numpy(), rows.logme.to_numpy()))
    assert values["regret1"] == pytest.approx(rows.accuracy.max() - rows.accuracy.to_numpy()[np.argmax(rows.logme.to_numpy())])
    assert set(rows.model) <= set(json.loads(path.with_suffix(".json").read_text())["models"])


@pytest.mark.shared_data
def test_a_second_run_reuses_the_ground_truth(quick, monkeypatch):
    """Nothing is measured again when no version changed: the cache is read back as it was written."""
    from zoo2vec.eval import ground_truth
    from zoo2vec.eval.tasks import generate, load_config

    _, _, _, home = quick
    monkeypatch.setenv("ZOO2VEC_HOME", str(home))
    path = home / "bench" / "quick" / "ground_truth.parquet"
    before = path.stat().st_mtime_ns
    specs = generate(load_config("quick"), {"mpqa", "breastmnist", "sms-spam", "fashion-mnist", "uci-yelp"})
    table = ground_truth.measure(home / "zoos" / "quick", specs, path)
    assert path.stat().st_mtime_ns == before  # not rewritten: no task was measured again
    assert set(table.task_id) == {s.task_id for s in specs}


def test_probe_sets_never_draw_from_held_out_datasets():
    from zoo2vec.encoders import probe_set
    from zoo2vec.eval.bench_zoo import PROBE_SETS

    held = held_out_datasets(load_config("bench"))
    for name in probe_set.available():
        assert not probe_set.datasets_of(name) & held, name
    assert set(PROBE_SETS.values()) <= set(probe_set.available())


@pytest.mark.shared_data
def test_train_align_reaches_training_on_the_quick_benchmark(quick, tmp_path, monkeypatch):
    """`zoo2vec train-align` on the quick run's cached zoo and ground truth gets through the preparation (it once
    crashed there: its progress callback reached prepare() as the wrong argument) and writes a checkpoint that
    scores with every pair feature; by default it is the packaged default's recipe: fitted on the plain meta-training
    tasks only (its record names them) and blended with the untrained score."""
    from zoo2vec.encoders import alignment

    _, _, _, home = quick
    monkeypatch.setenv("ZOO2VEC_HOME", str(home))
    result = CliRunner().invoke(main, ["train-align", "--config", "quick", "--out", str(tmp_path / "align.json")])
    assert "measuring ground truth" in result.output
    assert result.exit_code == 0, result.output
    scorer = alignment.load(str(tmp_path / "align.json"))
    assert scorer.features == alignment.FEATURES and not scorer.untrained and scorer.blend == 0.75
    assert scorer.trained_on["plain_only"] and scorer.trained_on["tasks"]
    assert not any("-" in t.rsplit("/", 1)[1] for t in scorer.trained_on["tasks"])  # no "mpqa/lower-0"
