import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from zoo2vec.encoders import alignment
from zoo2vec.errors import ConfigError
from zoo2vec.train.alignment import fit
from zoo2vec.zoo.layout import ZooLayout


def _row(**values):
    row = dict.fromkeys(alignment.FEATURES, 0.0)
    row.update(values)
    return row


def test_untrained_score_is_the_mean_of_kernel_alignment_and_concept_match():
    rows = [_row(kernel_alignment=0.2, concept_match=0.8), _row(kernel_alignment=0.6, concept_match=0.0, label_match=1)]
    assert np.allclose(alignment.untrained().score(rows), [0.5, 0.3])


def _synthetic_groups(n_tasks=12, n_models=20, seed=0):
    """Accuracy driven by label_match and calibration, with kernel alignment pure noise."""
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(n_tasks):
        x = rng.random((n_models, len(alignment.FEATURES)))
        f = dict(zip(alignment.FEATURES, x.T))
        y = 0.5 + 0.3 * f["label_match"] + 0.1 * f["confidence"] + 0.01 * rng.standard_normal(n_models)
        groups.append((x, y))
    return groups


def test_fit_learns_which_features_rank_models_and_scores_read_as_accuracies():
    train, test = _synthetic_groups(seed=0), _synthetic_groups(seed=1)
    scorer = fit(train, epochs=300)
    taus = [kendalltau(scorer.score_matrix(x), y)[0] for x, y in test]
    assert np.mean(taus) > 0.8
    untrained_taus = [kendalltau(alignment.untrained().score_matrix(x), y)[0] for x, y in test]
    assert np.mean(untrained_taus) < 0.3
    # placed on the accuracy scale: mean prediction error near zero on the training tasks
    errors = np.concatenate([scorer.score_matrix(x) - y for x, y in train])
    assert abs(errors.mean()) < 1e-6


def test_checkpoint_round_trip_and_errors(tmp_path, monkeypatch):
    scorer = fit(_synthetic_groups(n_tasks=3), epochs=20, trained_on={"tasks": ["a/0"]})
    path = tmp_path / "a.json"
    scorer.save(path)
    again = alignment.load(str(path))
    x = _synthetic_groups(n_tasks=1, seed=5)[0][0]
    assert np.allclose(again.score_matrix(x), scorer.score_matrix(x)) and again.trained_on == {"tasks": ["a/0"]}
    monkeypatch.setenv("ZOO2VEC_ALIGN", str(path))
    assert alignment.load().version == scorer.version
    assert alignment.load("untrained").untrained
    with pytest.raises(ConfigError, match="train-align"):
        alignment.load(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not readable"):
        alignment.load(str(tmp_path / "bad.json"))
    data = json.loads(path.read_text())
    data["features"] = ["kernel_alignment", "telepathy"]
    (tmp_path / "odd.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="telepathy"):
        alignment.load(str(tmp_path / "odd.json"))


def test_label_and_input_match():
    eye = np.eye(3, dtype=np.float32)
    assert alignment.label_match(eye[:2], eye) == pytest.approx(1.0)
    assert alignment.label_match(eye, eye[:1]) == pytest.approx(1 / 3)  # two task labels left without a model label
    assert alignment.label_match(eye, None) == 0.0
    assert alignment.input_match((3, 32, 32), (3, 32, 32)) == 1.0
    assert alignment.input_match((1, 28, 28), (3, 28, 28)) == 0.5
    assert alignment.input_match((1, 8, 8), (3, 32, 32)) == 0.0
    assert alignment.input_match(None, None) == 1.0  # text


def test_packaged_alignment_was_trained_on_meta_training_tasks_only():
    from zoo2vec.eval.tasks import held_out_datasets, load_config

    served = alignment.load(alignment.DEFAULT)
    assert set(served.features) <= set(alignment.FEATURES)
    trained_datasets = {t.rsplit("/", 1)[0] for t in served.trained_on["tasks"]}
    assert trained_datasets and not trained_datasets & held_out_datasets(load_config("bench"))


def test_meta_training_models_leave_out_models_of_held_out_datasets(tmp_path):
    from zoo2vec.eval.align import meta_training_models
    from zoo2vec.eval.tasks import load_config

    truth = {"models": {"a": {"dataset": "mnist"}, "b": {"dataset": "cifar10"}, "c": {"dataset": "sms-spam"},
                        "d": {"dataset": "sst2"}}}
    ZooLayout(tmp_path).write_manifest(truth)
    assert meta_training_models(tmp_path, load_config("bench")) == {"a": "mnist", "d": "sst2"}  # each with its dataset


def _z(v):
    v = np.asarray(v, dtype=np.float64)
    return (v - v.mean()) / v.std()


def test_a_blend_mixes_z_normalised_learned_and_untrained_scores_on_the_learned_scale():
    from zoo2vec.train.alignment import blended

    scorer = fit(_synthetic_groups(n_tasks=4), epochs=30)
    x = _synthetic_groups(n_tasks=1, seed=7)[0][0]
    learned, plain = scorer.score_matrix(x), alignment.untrained().score_matrix(x)
    mixed = blended(scorer, 0.25).score_matrix(x)
    expected = learned.mean() + learned.std() * (0.75 * _z(learned) + 0.25 * _z(plain))
    assert np.allclose(mixed, expected)
    assert np.allclose(blended(scorer, 0.0).score_matrix(x), learned)
    assert (np.argsort(blended(scorer, 1.0).score_matrix(x)) == np.argsort(plain)).all()
    assert np.allclose(blended(scorer, 0.5).score_matrix(x[:1]), learned[:1])  # a list of one: its learned score
    with pytest.raises(ConfigError, match="weight"):
        blended(scorer, 1.5)
    with pytest.raises(ConfigError, match="trained scorer"):
        blended(alignment.untrained(), 0.5)


def test_a_blend_of_a_scorer_without_the_untrained_features_gets_them_with_no_weight(tmp_path):
    """A quality prior fitted on the calibration features alone, blended with the untrained score: the checkpoint
    takes kernel alignment and concept match as inputs only the untrained part reads."""
    from zoo2vec.train.alignment import blended

    prior_features = alignment.GROUPS["calibration"]
    columns = [alignment.FEATURES.index(f) for f in prior_features]
    prior = fit([(x[:, columns], y) for x, y in _synthetic_groups(n_tasks=4)], features=prior_features, epochs=30)
    mixed = blended(prior, 0.5)
    assert mixed.features == prior_features + alignment.UNTRAINED_FEATURES
    rows = [dict(zip(alignment.FEATURES, r)) for r in _synthetic_groups(n_tasks=1, seed=3)[0][0]]
    learned, plain = prior.score(rows), alignment.untrained().score(rows)
    assert np.allclose(mixed.score(rows), learned.mean() + learned.std() * (0.5 * _z(learned) + 0.5 * _z(plain)))
    mixed.save(tmp_path / "prior.json")
    assert np.allclose(alignment.load(str(tmp_path / "prior.json")).score(rows), mixed.score(rows))
    data = json.loads((tmp_path / "prior.json").read_text())
    data["features"] = list(prior_features)  # a blend that cannot compute the untrained score is refused
    data["mean"], data["scale"] = data["mean"][:3], data["scale"][:3]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="kernel_alignment"):
        alignment.load(str(tmp_path / "bad.json"))


def test_search_serves_a_blended_checkpoint(tiny_zoo_master, make_task, tmp_path):
    """zoo2vec.open(root, alignment=<blended checkpoint>) ranks the candidates by the blend computed over them; a
    checkpoint without "blend" (every older one) scores as before."""
    import zoo2vec
    from zoo2vec.train.alignment import blended

    served = alignment.load("align-2")  # packaged before blends existed
    assert served.blend == 0.0 and "blend" not in json.loads(served.to_json())
    assert alignment.load(alignment.DEFAULT).blend == 0.75  # align-4, the default, is a blend
    task = make_task("sklearn-digits", ["0", "1", "2"], shots=5)
    for weight in (0.5, 1.0):
        path = tmp_path / f"blend-{weight}.json"
        blended(served, weight, version=f"align-test-{weight}").save(path)
        assert json.loads(path.read_text())["blend"] == weight
        zoo = zoo2vec.open(tiny_zoo_master, alignment=str(path))
        found = zoo.search(task, k=10)
        assert zoo.alignment.version == f"align-test-{weight}" and len(found) >= 2
        expected = blended(served, weight).score([r.features for r in found])
        assert np.allclose([r.score for r in found], expected, atol=1e-4)  # results round scores to 4 places
        assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)
    plain = zoo2vec.open(tiny_zoo_master, alignment="untrained").search(task, k=10)
    assert [r.name for r in found] == [r.name for r in plain]  # weight 1: the untrained order


def test_families_group_every_meta_training_dataset_of_the_bench():
    from zoo2vec.eval.align import families, family_of
    from zoo2vec.eval.tasks import held_out_datasets, load_config, meta_training_datasets, new_domain_datasets

    config = load_config("bench")
    family_map = families(config)
    every = set(meta_training_datasets(config)) | held_out_datasets(config) | new_domain_datasets(config)
    assert every <= set(family_map)
    assert family_map["mnist"] == family_map["sklearn-digits"] != family_map["omniglot"]
    assert family_map["sst2"] == family_map["mr"] == family_map["uci-yelp"]
    assert families(load_config("quick")) == family_map  # the quick config names none: the bench's map
    assert family_of("some-new-set", family_map) == "some-new-set"


def _cv_fixture():
    """Six synthetic datasets in three families, two models trained on each. Within a family the same feature
    decides accuracy (label match in A, confidence in B, balance in C): a dataset's sibling teaches it, the other
    families do not (what leaving one dataset out, unlike leaving the family out, lets a scorer learn)."""
    import pandas as pd

    from zoo2vec.eval.tasks import TaskSpec

    datasets = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C", "c2": "C"}
    signal = {"A": "label_match", "B": "confidence", "C": "balance"}
    models = {f"{d}-m{i}": d for d in datasets for i in range(3)}
    rng = np.random.default_rng(0)
    specs, features, rows = [], {}, []
    for d in datasets:
        for i in range(4):
            task_id = f"{d}/{i}"
            specs.append(TaskSpec(task_id, d, "text", ("x", "y"), 5, 10, i))
            features[task_id] = {m: _row(**dict(zip(alignment.FEATURES, rng.random(len(alignment.FEATURES)))))
                                 for m in models}
            rows += [{"task_id": task_id, "model": m, "accuracy": 0.5 + 0.4 * f[signal[datasets[d]]]}
                     for m, f in features[task_id].items()]
    return specs, features, pd.DataFrame(rows), models, datasets


def test_leave_one_domain_out_holds_out_a_family_with_its_models():
    from zoo2vec.eval.align import Design, Pairs, cross_validate, cv_scores

    specs, features, gt, models, datasets = _cv_fixture()
    pairs = Pairs(features, gt, [s.task_id for s in specs])
    seen = {}

    class Spy(Design):
        def fitted(self, pairs, specs, models=None, **kwargs):
            seen.setdefault(kwargs["key"], (sorted({s.dataset for s in specs}), sorted(models)))
            return super().fitted(pairs, specs, models, **kwargs)

    by_domain = cv_scores(pairs, specs, models, {"learned": Spy(alignment.FEATURES)}, by="domain", family_map=datasets)
    by_dataset = cv_scores(pairs, specs, models, {"learned": Spy(alignment.FEATURES)}, by="dataset", family_map=datasets)
    assert set(by_domain["learned"]) == set(by_dataset["learned"]) == {s.task_id for s in specs}
    trained_on, fold_models = seen[("domain", "A", False)]
    assert trained_on == ["b1", "b2", "c1", "c2"] and not any(m.startswith("a") for m in fold_models)
    assert all(len(pairs.tasks[t][0]) == 18 for t in by_domain["learned"])
    trained_on, fold_models = seen[("dataset", "a1", True)]
    assert trained_on == ["a2", "b1", "b2", "c1", "c2"] and len(fold_models) == len(models)
    # leaving a dataset out, its sibling teaches what decides accuracy in the family; leaving the family out cannot
    dataset_cv = cross_validate(features, gt, specs, models, family_map=datasets)
    domain_cv = cross_validate(features, gt, specs, models, by="domain", family_map=datasets)
    assert dataset_cv["tasks"] == domain_cv["tasks"] == len(specs)
    assert dataset_cv["learned"] > domain_cv["learned"] + 0.15 and abs(domain_cv["learned"]) < 0.15
    with pytest.raises(ConfigError, match="domain"):
        cv_scores(pairs, specs, models, {}, by="family")


def test_cv_scores_can_keep_the_out_of_fold_scores_by_model():
    """The kept scores are the ones the metrics were computed from, and a held-out family's models are not among its
    tasks' scores (they left the fold)."""
    from zoo2vec.eval.align import Design, Pairs, cv_scores
    from zoo2vec.eval.metrics import all_metrics

    specs, features, gt, models, datasets = _cv_fixture()
    pairs = Pairs(features, gt, [s.task_id for s in specs])
    scored = {}
    found = cv_scores(pairs, specs, models, {"learned": Design(alignment.FEATURES)}, by="domain", family_map=datasets,
                      scored=scored)
    assert set(scored["learned"]) == set(found["learned"])
    for spec in specs:
        scores = scored["learned"][spec.task_id]
        assert not any(m.startswith(spec.dataset[0]) for m in scores) and len(scores) == 12  # 18 less 6 of the family
        truth = gt[gt.task_id == spec.task_id].set_index("model").loc[list(scores), "accuracy"].to_numpy()
        assert all_metrics(truth, np.array(list(scores.values()))) == found["learned"][spec.task_id]


def test_protocol_chooses_by_domain_cv_and_looks_at_the_splits_once():
    import pandas as pd

    from zoo2vec.eval import align

    specs, features, gt, models, datasets = _cv_fixture()
    held = {f"h/{i}": features[f"a1/{i}"] for i in range(4)}
    gt_held = gt[gt.task_id.str.startswith("a1/")].assign(task_id=lambda t: "h/" + t.task_id.str[3:])
    designs = {align.UNTRAINED_OPTION: align.Design(), align.DEFAULT_OPTION: align.Design(alignment.FEATURES),
               "blend": align.Design(alignment.FEATURES, blend=0.5), "prior": align.Design(("confidence",), blend=0.5)}
    record = {}
    out = align.protocol(features, {"held_out": held}, pd.concat([gt, gt_held]), specs, models, family_map=datasets,
                         designs=designs, record=record)
    rows = out["scorer"]
    chosen = [o for o, v in rows.items() if v["chosen"]]
    assert chosen == [max(rows, key=lambda o: rows[o]["cv_domain"])] == [record["chosen"]]
    assert all(set(v) == {"cv_domain", "cv", "held_out", "chosen"} for v in rows.values())
    shown = {o for o, v in rows.items() if v["held_out"] is not None}
    assert shown == {chosen[0], align.DEFAULT_OPTION}  # the other options' split numbers were never computed
    assert set(record["splits"]) <= shown | {"plain and transformed (24)"}
    if designs[chosen[0]].trained:
        tasks = out["meta-training tasks"]
        assert set(tasks) == {"plain only (24)", "plain and transformed (24)"}
        assert tasks["plain and transformed (24)"]["cv_domain"] == rows[chosen[0]]["cv_domain"]
