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
    assert meta_training_models(tmp_path, load_config("bench")) == {"a", "d"}
