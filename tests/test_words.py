"""Words search: the words scorer's features, its fusion with samples, and finding a model by what it does."""

import json

import numpy as np
import pytest

import zoo2vec
from zoo2vec.encoders import alignment
from zoo2vec.errors import ConfigError
from zoo2vec.eval import text_queries
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.layout import ZooLayout, card_path


@pytest.mark.parametrize("text, classes", [
    ("filter junk text messages: ham, spam", ["ham", "spam"]),
    ("tell apart: cats or dogs and birds", ["cats", "dogs", "birds"]),
    ("recognise sneakers", []),
    ("sort these: just one thing", []),
    (": a, b", []),
])
def test_classes_named_after_the_last_colon(text, classes):
    assert alignment.classes_named(text) == classes


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_word_features_reach_text_concepts_and_leave_other_models_at_zero():
    classes = _unit([[1, 0, 0], [0, 1, 0]])
    protos = _unit([[0.9, 0.1, 0], [0.1, 0.9, 0]])
    args = dict(card=0.3, class_vectors=classes, query_vector=_unit([1, 1, 0]), n_model_classes=2, confidence=0.9,
                entropy=0.2, mass=np.array([0.5, 0.5]))
    text = alignment.word_features(**args, label_vectors=None, text_prototypes=protos)
    image = alignment.word_features(**args, label_vectors=classes, text_prototypes=None)
    assert text["is_text"] == 1 and text["concept_words"] == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-6)
    assert text["has_labels"] == 0 and text["label_match"] == 0
    assert image["is_text"] == 0 and image["concept_words"] == 0 and image["concept_query"] == 0
    assert image["label_match"] == pytest.approx(1.0) and image["balance"] == pytest.approx(1.0)
    assert set(text) == set(alignment.WORD_FEATURES)


def test_words_reach_the_sentence_space_but_not_pixels():
    from zoo2vec.encoders import reference

    words = ["spam", "ham"]
    assert np.allclose(reference.embed_words("minilm-v1", words), reference.embed_text(words))
    assert reference.embed_words("pixels-v1", words) is None


def test_words_scorer_checkpoints():
    words = alignment.load(words=True)
    assert words.version == alignment.WORDS and words.features == text_queries.WORDS_DESIGN["features"]  # the design CV chose
    assert words.trained_on["fusion_weight"] == text_queries.WORDS_DESIGN["fusion_weight"]
    # trained only on meta-training tasks' sentences
    held = {"fashion-mnist", "pneumoniamnist", "cifar10", "sms-spam", "trec", "cr", "uci-amazon", "uci-imdb", "uci-yelp"}
    assert not {t.rsplit("/", 1)[0] for t in words.trained_on["tasks"]} & held
    untrained = alignment.load("untrained", words=True)
    x = np.array([[0.2] + [0.0] * 10, [0.7] + [1.0] * 10])
    assert untrained.score_matrix(x).tolist() == [0.2, 0.7]  # the card's similarity alone
    with pytest.raises(ConfigError, match="train-words"):
        alignment.load("no-such-words", words=True)


def test_shares_add_up_and_follow_the_weights():
    scorer = alignment.load(words=True)
    row = dict(zip(alignment.WORD_FEATURES, np.linspace(0.1, 0.9, len(alignment.WORD_FEATURES))))
    shares = alignment.shares(scorer, row, alignment.WORD_COMPONENTS)
    assert set(shares) == {"card", "concepts", "decisions"} and sum(shares.values()) == pytest.approx(1.0)  # no prior: CV left it out
    only_card = alignment.Alignment(version="t", features=("card", "label_match"), mean=np.zeros(2), scale=np.ones(2),
                                    layers=((np.array([[1.0], [0.0]]), np.zeros(1)),))
    assert alignment.shares(only_card, {"card": 0.5, "label_match": 3.0}, {"card": ("card",), "concepts": ("label_match",)}) \
        == {"card": 1.0, "concepts": 0.0}


def test_a_text_model_with_an_empty_card_is_found_by_what_it_does(tiny_zoo):
    """Blank a news model's card (no description, tags or labels): words still reach it through its probed concepts."""
    folder = ZooLayout(tiny_zoo).model_folder("bbc-bow")
    card = json.loads(card_path(folder).read_text())
    card.update(description="", tags=[], label_names=None, training_data="", name="bbc-bow")
    ModelCard.from_dict(card).save(folder)
    zoo = zoo2vec.open(tiny_zoo)
    zoo.index()
    results = zoo.search(text="sort news stories into sections: business, sport, politics, tech", k=5)
    by_name = {r.name: r for r in results}
    blank = by_name["bbc-bow"]
    assert blank.features["has_labels"] == 0 and blank.features["is_text"] == 1
    assert blank.features["concept_words"] > 0.2  # the class names meet the concepts probing found
    assert blank.features["kernel_classes"] > 0 and blank.features["kernel_phrases"] > 0  # and its decisions on the probes
    images = [r for r in results if r.card["modality"] == "image"]
    assert images and all(r.features["concept_words"] == 0 == r.features["kernel_classes"] for r in images)  # pixels: no words
    unnamed = {r.name: r for r in zoo.search(text="sort news stories into sections", k=5)}["bbc-bow"]
    assert unnamed.features["kernel_classes"] == 0  # no classes named, no pseudo-task
    assert results[0].card["modality"] == "text" and blank.rank < min(r.rank for r in images)
    for r in results:
        assert r.words_score == pytest.approx(r.score, abs=1e-4) and sum(r.shares.values()) == pytest.approx(1.0)
        assert "words: predicted accuracy" in r.why


def test_hit_at_counts_ties_and_keeps_to_the_pool():
    accuracy = {"a": 0.9, "b": 0.9, "c": 0.5, "d": 0.95}
    scores = {"a": 0.1, "b": 0.8, "c": 0.9, "d": 0.0}
    assert text_queries.hit_at(scores, accuracy, {"a", "b", "c"}, k=2) == 1.0  # b ties a for best among a, b, c
    assert text_queries.hit_at(scores, accuracy, {"a", "b", "c", "d"}, k=3) == 0.0  # d is best and ranked last
    assert text_queries.hit_at(scores, accuracy, {"e"}) is None


@pytest.mark.shared_data
def test_training_pairs_leave_out_held_out_datasets_and_misleading_cards(tmp_path):
    root = tmp_path / "zoo"
    made = {"a": ("mnist", "complete"), "b": ("fashion-mnist", "complete"), "c": ("ag-news", "misleading"),
            "d": ("ag-news", "terse")}
    for name, (dataset, _) in made.items():
        image = "mnist" in dataset
        (ZooLayout(root).model_folder(name)).mkdir(parents=True)
        ModelCard(name=name, modality="image" if image else "text", label_names=("x", "y", "z"),
                  input_shape=(1, 28, 28) if image else None, description=f"{dataset} model").save(ZooLayout(root).model_folder(name))
    ZooLayout(root).write_manifest({"models": {n: {"dataset": d, "card_style": s} for n, (d, s) in made.items()}})
    pairs = text_queries.training_pairs(root, {"fashion-mnist"}, per_model=3)
    assert {p[3] for p in pairs} == {"mnist", "ag-news"} and len(pairs) == 6
    assert {p[2] for p in pairs} == {"vision", "language"}
    assert not any(q.startswith(text_queries.ASK[d]) for q, _, _, d in pairs)  # the evaluation's wording stays unseen
    assert all("misleading" not in p[1] for p in pairs) and {p[1] for p in pairs if p[3] == "ag-news"} == {
        ModelCard.load(ZooLayout(root).model_folder("d")).text()}


def test_every_dataset_the_bench_zoo_trains_on_has_a_domain_and_training_wording():
    # a dataset added to the bench zoo without them made `zoo2vec eval` fail at its text-query stage (gtsrb, bench-2)
    from zoo2vec.eval.bench_zoo import DATASETS
    from zoo2vec.eval.tasks import held_out_datasets, load_config

    assert set(DATASETS) <= set(text_queries.DOMAIN)
    assert set(DATASETS) - held_out_datasets(load_config("bench")) <= set(text_queries.REPHRASE)  # trained on
    assert text_queries.DOMAIN["gtsrb"] == text_queries.DOMAIN["cifar10"] == "vision"
