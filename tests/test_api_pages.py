"""What the app's pages read through the public API: Zoo.knowledge(), Zoo.task_vector() and Zoo.model()."""

import json

import numpy as np
import pytest

import zoo2vec
from zoo2vec.api import ModelDetails


@pytest.fixture
def zoo(tiny_zoo_master):
    return zoo2vec.open(tiny_zoo_master)


def test_knowledge_is_one_unit_vector_per_indexed_model(zoo):
    names, vectors = zoo.knowledge()
    assert sorted(names) == sorted(zoo.models()["name"]) and vectors.shape[0] == len(names)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_a_task_vector_is_nearest_the_models_that_decide_like_it(zoo, make_task):
    task = make_task("sklearn-digits", [str(d) for d in range(10)])
    vector = zoo.task_vector(task)
    names, vectors = zoo.knowledge()
    assert vector.shape == (vectors.shape[1],)
    image = [n for n, name in enumerate(names) if name.startswith("digits8")]
    similarity = dict(zip((names[n] for n in image), vectors[image] @ vector))
    # a ten-digit task decides like the ten-digit models, not like the odd/even one
    assert similarity["digits8-linear"] > similarity["digits8-linear-parity"]


def test_model_details(zoo):
    details = zoo.model("digits8-linear-parity")
    assert isinstance(details, ModelDetails) and details.card["name"] == "digits8-linear-parity"
    assert details.origin["license"] == "card.json"  # where the field was read
    assert list(details.concepts["label"]) == ["even", "odd"] and details.concepts["labelled"].all()
    assert details.concepts["mass"].sum() == pytest.approx(1.0, abs=1e-3)
    assert 0.5 <= details.confidence <= 1.0 and details.entropy >= 0.0
    assert details.top_probability.min() >= 0.5 - 1e-6  # two classes: the top one has at least half
    assert set(details.nearest["name"]) == {"digits8-linear", "digits8-mlp-0to4"}  # the other image models only
    assert details.nearest["similarity"].is_monotonic_decreasing
    assert list(details.runs["status"]) == ["ok"] and details.failure is None


def test_an_unknown_model_names_the_indexed_ones(zoo):
    with pytest.raises(zoo2vec.ZooError, match="no model 'nope' is indexed.*bbc-bow"):
        zoo.model("nope")


def test_a_model_shows_its_last_failure_once_fixed(tiny_zoo):
    card = tiny_zoo / "models" / "bbc-bow" / "card.json"
    good = card.read_text()
    card.write_text(json.dumps({**json.loads(good), "adapter": {"kind": "onnx", "file": "model.onnx"}}))  # not there
    zoo = zoo2vec.open(tiny_zoo)
    zoo.index()
    assert list(zoo.failures()["name"]) == ["bbc-bow"]  # failing now: not indexed, so no page
    with pytest.raises(zoo2vec.ZooError):
        zoo.model("bbc-bow")
    card.write_text(good)
    zoo.index()
    details = zoo.model("bbc-bow")
    assert list(details.runs["status"]) == ["ok", "failed", "ok"]
    assert details.failure["status"] == "failed" and "model.onnx" in details.failure["reason"]
