import pytest

from zoo2vec import ModelCard, ZooError
from zoo2vec.zoo.layout import card_path


def test_round_trip(tmp_path):
    card = ModelCard("m-1", "image", label_names=["a", "b"], params=10, tags=["x"], input_shape=(1, 8, 8),
                     adapter={"kind": "safetensors"})
    card.save(tmp_path)
    assert ModelCard.load(tmp_path) == card
    assert "classes: a, b" in card.text()


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bad name!", "modality": "text"}, "bad model name"),
    ({"name": "m", "modality": "audio"}, "modality 'audio'"),
    ({"name": "m", "modality": "image"}, "needs input_shape"),
    ({"name": "m", "modality": "image", "input_shape": (28, 28)}, "channels, height, width"),
])
def test_bad_cards_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(ZooError, match=message):
        ModelCard(**kwargs)


def test_unknown_card_field_and_broken_json(tmp_path):
    with pytest.raises(ZooError, match="unknown card field"):
        ModelCard.from_dict({"name": "m", "modality": "text", "colour": "red"})
    card_path(tmp_path).write_text("{not json")
    with pytest.raises(ZooError, match="not valid JSON"):
        ModelCard.load(tmp_path)
    with pytest.raises(ZooError, match="no card.json"):
        ModelCard.load(tmp_path / "nowhere")


def test_card_values_are_normalised_and_bad_shapes_named():
    card = ModelCard("m", "image", label_names=[0, "b"], params=1e6, tags=["x", 2], input_shape=["3", 32, 32.0])
    assert card.label_names == ("0", "b") and card.params == 1_000_000 and card.tags == ("x", "2")
    assert card.input_shape == (3, 32, 32)
    with pytest.raises(ZooError, match=r"input_shape must be \(channels, height, width\), got \(0, 8, 8\)"):
        ModelCard("m", "image", input_shape=(0, 8, 8))
    with pytest.raises(ZooError, match="bad model name 3"):
        ModelCard(3, "text")
