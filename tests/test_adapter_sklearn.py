"""The scikit-learn adapters: skops files (trusted types only, unless the caller trusts more) and joblib pickles
(only when trusted), on real estimators fitted here and on third-party pickles from the shared data."""

import json
import shutil
import sys
import warnings

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import load_digits
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from zoo2vec import settings
from zoo2vec.data.datasets import packaged
from zoo2vec.errors import UntrustedCheckpointError, ZooError
from zoo2vec.zoo.adapters import load_model, read_card
from zoo2vec.zoo.adapters.sklearn import detect_pickle
from zoo2vec.zoo.blackbox import checked_predict

THIRD_PARTY = settings.shared_data() / "models" / "third_party"


def doubled(x):
    """A custom function: skops does not trust it by default."""
    return x * 2.0


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digits as zoo2vec feeds them, (N, 1, 8, 8) in [0, 1], and as the estimators saw them (0..16)."""
    data = load_digits()
    return (data.images / 16.0).astype(np.float32)[:, None], data.data.astype(np.float32), data.target


@pytest.fixture(scope="module")
def bbc():
    """A few real BBC news articles (their first 300 characters), 8 of each of the 5 topics."""
    data = packaged("bbc-news")
    idx = np.concatenate([np.flatnonzero(data.y == c)[:8] for c in range(len(data.label_names))])
    return [data.x[i][:300] for i in idx], [data.label_names[data.y[i]] for i in idx]


def _folder(tmp_path, name="model"):
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _write_card(folder, **fields):
    (folder / "card.json").write_text(json.dumps(fields))


def test_a_skops_text_pipeline_is_described_and_predicts_as_itself(tmp_path, bbc):
    texts, labels = bbc
    pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500)).fit(texts, labels)
    folder = _folder(tmp_path, "bbc-tfidf")
    sio.dump(pipeline, folder / "model.skops")

    resolved = read_card(folder)
    card, origin = resolved.card, resolved.origin
    assert card.modality == "text" and "TfidfVectorizer" in origin["modality"]
    assert card.label_names == ("business", "entertainment", "politics", "sport", "tech")
    assert "classes_" in origin["label_names"]
    assert {"Pipeline", "TfidfVectorizer", "LogisticRegression"} <= set(card.tags)
    vocabulary = len(pipeline[0].vocabulary_)
    assert card.params == vocabulary + 5 * vocabulary + 5  # idf_, coef_, intercept_
    assert card.adapter == {"kind": "skops", "file": "model.skops"}

    model = load_model(folder)
    probe = ["Shares rose as the bank reported record profits", "The striker scored twice in the final", *texts[:5]]
    assert np.allclose(checked_predict(model, probe), pipeline.predict_proba(probe), atol=1e-5)


def test_a_skops_image_classifier_on_8x8_digits(tmp_path, digits):
    images, features, target = digits
    estimator = LogisticRegression(max_iter=1000).fit(features[:1000], target[:1000])
    folder = _folder(tmp_path, "digits-lr")
    sio.dump(estimator, folder / "digits.skops")
    _write_card(folder, adapter={"scale": 16})  # load_digits counts ink 0..16; zoo2vec feeds [0, 1]

    resolved = read_card(folder)
    card = resolved.card
    assert card.modality == "image" and card.input_shape == (1, 8, 8)
    assert "n_features_in_=64" in resolved.origin["input_shape"]
    assert card.label_names == tuple(str(i) for i in range(10))
    assert card.params == 64 * 10 + 10
    assert card.adapter == {"kind": "skops", "file": "digits.skops", "scale": 16}

    x = images[1000:1060]
    probabilities = checked_predict(load_model(folder), x)
    assert np.allclose(probabilities, estimator.predict_proba(features[1000:1060]), atol=1e-5)
    assert (probabilities.argmax(axis=1) == target[1000:1060]).mean() > 0.8


def test_a_skops_file_with_untrusted_types_is_refused_until_trusted(tmp_path, digits):
    images, features, target = digits
    pipeline = make_pipeline(StandardScaler(), FunctionTransformer(doubled), LogisticRegression(max_iter=1000))
    pipeline.fit(features[:500], target[:500])
    folder = _folder(tmp_path, "custom")
    sio.dump(pipeline, folder / "model.skops")
    _write_card(folder, adapter={"scale": 16})
    untrusted = sio.get_untrusted_types(file=folder / "model.skops")
    assert len(untrusted) == 1 and untrusted[0].endswith(".doubled")

    resolved = read_card(folder)  # described from the schema: nothing is loaded
    assert resolved.card.input_shape == (1, 8, 8) and resolved.card.modality == "image"
    assert resolved.card.label_names == tuple(str(i) for i in range(10))
    assert "schema.json" in resolved.origin["input_shape"]
    assert {"Pipeline", "StandardScaler", "FunctionTransformer", "LogisticRegression"} <= set(resolved.card.tags)

    with pytest.raises(UntrustedCheckpointError, match=r"doubled.*trust_pickle=True \(CLI: --trust-pickle\)"):
        load_model(folder)
    model = load_model(folder, trust_pickle=True)
    assert np.allclose(checked_predict(model, images[:20]), pipeline.predict_proba(features[:20]), atol=1e-5)


def test_an_sklearn_pickle_is_recognised_but_loaded_only_when_trusted(tmp_path, digits):
    images, features, target = digits
    estimator = LogisticRegression(max_iter=1000).fit(features[:500], target[:500])
    folder = _folder(tmp_path, "pickled")
    joblib.dump(estimator, folder / "model.joblib", compress=3)
    _write_card(folder, adapter={"scale": 16})

    resolved = read_card(folder)  # from the pickle's opcodes: classes and n_features_in_, nothing unpickled
    assert resolved.card.adapter["kind"] == "sklearn-pickle"
    assert resolved.card.input_shape == (1, 8, 8) and resolved.card.tags == ("LogisticRegression",)
    assert "not unpickled" in resolved.origin["input_shape"]

    with pytest.raises(UntrustedCheckpointError, match="trust_pickle=True"):
        load_model(folder)
    model = load_model(folder, trust_pickle=True)
    assert np.allclose(checked_predict(model, images[:20]), estimator.predict_proba(features[:20]), atol=1e-5)


def test_a_pickle_of_something_else_is_not_claimed(tmp_path):
    folder = _folder(tmp_path)
    joblib.dump({"weights": np.zeros(3)}, folder / "weights.pkl")
    assert detect_pickle(folder) is None


def test_an_estimator_without_predict_proba_is_refused_by_name(tmp_path, digits):
    _, features, target = digits
    pipeline = make_pipeline(StandardScaler(), LinearSVC()).fit(features[:300], target[:300])
    folder = _folder(tmp_path, "svc")
    sio.dump(pipeline, folder / "model.skops")
    with pytest.raises(ZooError, match="Pipeline ending in LinearSVC has no predict_proba"):
        load_model(folder)


def test_the_card_input_shape_must_match_the_estimator(tmp_path, digits):
    _, features, target = digits
    folder = _folder(tmp_path, "digits-lr")
    sio.dump(LogisticRegression(max_iter=200).fit(features[:300], target[:300]), folder / "model.skops")
    _write_card(folder, input_shape=[1, 28, 28])
    with pytest.raises(ZooError, match="takes 64 features"):
        load_model(folder)


def _third_party(tmp_path, name, files, **card):
    """A model folder holding copies of a third-party model's files (a symlink would point outside the folder)."""
    folder = _folder(tmp_path, name)
    for file in files:
        shutil.copy(THIRD_PARTY / name / file, folder / file)
    _write_card(folder, **card)
    return folder


@pytest.mark.shared_data
def test_azureml_mnist_logistic_regression_reads_real_digits(tmp_path):
    from zoo2vec.data.shared import mnist

    # scikit-learn 0.22.1's LogisticRegression: no n_features_in_ yet, so the card gives the shape
    folder = _third_party(tmp_path, "azureml-sklearn-mnist-lr", ["sklearn_mnist_model.pkl"], input_shape=[1, 28, 28],
                          adapter={"kind": "sklearn-pickle", "file": "sklearn_mnist_model.pkl"})
    assert read_card(folder).card.tags == ("LogisticRegression",)
    with pytest.raises(UntrustedCheckpointError):
        load_model(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # InconsistentVersionWarning: pickled by 0.22.1
        model = load_model(folder, trust_pickle=True)
    data = mnist()
    idx = np.random.default_rng(0).choice(len(data.y), 60, replace=False)
    probabilities = checked_predict(model, data.x[idx])
    assert (probabilities.argmax(axis=1) == data.y[idx]).mean() > 0.8


@pytest.mark.shared_data
def test_seldon_spam_pickles_of_old_scikit_learn_fail_with_a_reason(tmp_path):
    folder = _third_party(tmp_path, "seldon-spam-sklearn", ["model.pkl", "vectorizer.pkl"], modality="text",
                          label_names=["ham", "spam"], adapter={"kind": "sklearn-pickle", "file": "model.pkl"})
    assert "SVC" in read_card(folder).card.tags
    with pytest.raises(ZooError) as failure:
        load_model(folder, trust_pickle=True)
    message = str(failure.value)
    assert "model.pkl does not load in scikit-learn" in message and "sklearn.svm.classes" in message
    assert "pickled by another version" in message


def test_without_skops_the_error_names_the_extra(tmp_path, monkeypatch):
    from zoo2vec.errors import MissingExtraError

    folder = _folder(tmp_path)
    (folder / "model.skops").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "skops.io", None)  # import skops.io now fails
    with pytest.raises(MissingExtraError, match=r"pip install 'zoo2vec\[skops\]'"):
        read_card(folder)
