import json
import os
import shutil
import sys
import warnings

import numpy as np
import pytest

from zoo2vec import settings
from zoo2vec.errors import MissingExtraError, SkippedModel, UntrustedCheckpointError, ZooError
from zoo2vec.zoo.adapters import keras as keras_adapter
from zoo2vec.zoo.adapters import load_model, read_card
from zoo2vec.zoo.blackbox import checked_predict

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 defaults to TensorFlow, which is not installed
keras = pytest.importorskip("keras")
# Keras' torch backend calls np.array(x, copy=False) on its tensors (numpy 2 deprecation), in Keras, not here
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def _x(shape, n=5, seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def _softmax(z):
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _save(model, folder, file):
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras calls .h5 legacy
        model.save(str(folder / file))
    return folder


@pytest.fixture(scope="module")
def cnn():
    """A tiny channels-last CNN with a softmax head, trained one step so its batch-norm statistics are not 0/1."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(_x((12, 12, 3), n=8), np.arange(8) % 3, verbose=0)
    return model


@pytest.mark.parametrize("file", ["model.keras", "model.h5"])
def test_a_keras_file_needs_no_card_and_answers_as_keras_does(tmp_path, cnn, file):
    folder = _save(cnn, tmp_path / "tiny-cnn", file)
    resolved = read_card(folder)
    card = resolved.card
    assert card.modality == "image" and card.input_shape == (3, 12, 12)
    assert card.params == cnn.count_params()
    assert card.adapter == {"kind": "keras", "file": file, "layout": "NHWC"}
    assert card.label_names is None and "keras" in card.tags
    assert resolved.origin["input_shape"] == f"{file} model config input [None, 12, 12, 3] (NHWC)"
    assert resolved.origin["params"] == f"{file} weights"
    x = _x((3, 12, 12))
    expected = cnn.predict(x.transpose(0, 2, 3, 1), verbose=0)
    assert np.allclose(checked_predict(load_model(folder), x), expected, atol=1e-5)


def test_channels_first_sigmoid_and_raw_pixels(tmp_path):
    """A grey channels-first binary model that rescales raw 0..255 pixels itself: layout NCHW, scale 255, and its
    one sigmoid unit becomes two columns [1 - p, p]."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((1, 16, 16))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(2, 3, data_format="channels_first", activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    folder = _save(model, tmp_path / "binary", "model.keras")
    card = read_card(folder).card
    assert card.input_shape == (1, 16, 16)
    assert card.adapter == {"kind": "keras", "file": "model.keras", "layout": "NCHW", "scale": 255.0}
    x = _x((1, 16, 16))
    p = model.predict(x * 255, verbose=0)[:, 0]
    assert np.allclose(checked_predict(load_model(folder), x), np.stack([1 - p, p], axis=1), atol=1e-5)


@pytest.mark.parametrize("input_shape, layout, feed", [
    ((8, 8), "NHW", lambda x: x[:, 0]),
    ((64,), "flat", lambda x: x.reshape(len(x), -1)),
])
def test_grey_inputs_without_a_channel_axis_and_logits(tmp_path, input_shape, layout, feed):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(4)])
    folder = _save(model, tmp_path / "grey", "model.h5")
    card = read_card(folder).card
    assert card.input_shape == (1, 8, 8) and card.adapter["layout"] == layout
    x = _x((1, 8, 8))
    expected = _softmax(model.predict(feed(x), verbose=0).astype(np.float64))
    assert np.allclose(checked_predict(load_model(folder), x), expected, atol=1e-5)


def test_lambda_layers_need_trust(tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Lambda(lambda t: t * 2.0),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    folder = _save(model, tmp_path / "lambda", "model.keras")
    with pytest.raises(UntrustedCheckpointError, match=r"Lambda layers.*trust_pickle=True"):
        load_model(folder)
    x = _x((1, 4, 4))
    expected = model.predict(x.transpose(0, 2, 3, 1), verbose=0)
    assert np.allclose(checked_predict(load_model(folder, trust_pickle=True), x), expected, atol=1e-5)


def test_a_keras_text_model_is_out_of_scope(tmp_path):
    model = keras.Sequential([keras.Input((10,), dtype="int32"), keras.layers.Embedding(50, 4),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
    folder = _save(model, tmp_path / "spam", "model.keras")
    with pytest.raises(SkippedModel, match="Keras text model .* tokenizer saved outside the file"):
        read_card(folder)  # skipped, not failed: indexing lists it with the reason


def test_weights_alone_are_not_a_keras_model(tmp_path, cnn):
    cnn.save_weights(str(tmp_path / "model.weights.h5"))
    assert keras_adapter.detect(tmp_path) is None


def test_a_missing_keras_names_the_extra(tmp_path, cnn, monkeypatch):
    folder = _save(cnn, tmp_path / "tiny-cnn", "model.keras")
    card = read_card(folder).card  # read with h5py alone
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(MissingExtraError, match=r"zoo2vec\[keras\]"):
        load_model(folder, card=card)


MLCOMMONS = "models/mlcommons_tiny"
NNOM = "models/third_party/nnom-densenet-mnist-a-keras"


@pytest.fixture
def resnet8(tmp_path):
    """MLCommons Tiny's ResNet-8 (Keras 2.4 h5) with the card a zoo would give it: CIFAR-10, raw 0..255 pixels."""
    from zoo2vec.data.shared import shared

    folder = tmp_path / "mlcommons-resnet8-h5"
    folder.mkdir()
    shutil.copy2(settings.shared_data() / MLCOMMONS / "pretrainedResnet.h5", folder)
    (folder / "card.json").write_text(json.dumps({
        "label_names": list(shared("cifar10").label_names),
        "adapter": {"kind": "keras", "file": "pretrainedResnet.h5", "scale": 255.0}}))
    return folder


@pytest.mark.shared_data
def test_mlcommons_resnet8_h5_reads_raw_pixels(resnet8):
    from zoo2vec.data.shared import shared

    resolved = read_card(resnet8)
    card = resolved.card
    assert card.input_shape == (3, 32, 32) and card.params == 78_666
    assert card.adapter == {"kind": "keras", "file": "pretrainedResnet.h5", "layout": "NHWC", "scale": 255.0}
    assert resolved.origin["label_names"] == "card.json"
    data = shared("cifar10")
    pick = np.random.default_rng(0).choice(len(data.y), 300, replace=False)
    x, y = data.x[pick], data.y[pick]
    model = load_model(resnet8)
    raw_pixels = (checked_predict(model, x).argmax(1) == y).mean()
    model.scale = 1.0  # the [0, 1] images as they come
    unit_range = (checked_predict(model, x).argmax(1) == y).mean()
    assert raw_pixels > 0.65 and unit_range < 0.3, (raw_pixels, unit_range)


@pytest.mark.shared_data
def test_mlcommons_resnet8_h5_agrees_with_its_tflite_sibling(resnet8, tmp_path):
    pytest.importorskip("ai_edge_litert")
    tflite = tmp_path / "mlcommons-resnet8-tflite"
    tflite.mkdir()
    shutil.copy2(settings.shared_data() / MLCOMMONS / "pretrainedResnet.tflite", tflite / "model.tflite")
    (tflite / "card.json").write_text(json.dumps({
        "modality": "image", "input_shape": [3, 32, 32],
        "adapter": {"kind": "tflite", "file": "model.tflite", "scale": 255.0}}))
    x = _x((3, 32, 32), n=6)
    assert np.allclose(checked_predict(load_model(resnet8), x), checked_predict(load_model(tflite), x), atol=1e-4)


@pytest.mark.shared_data
def test_nnom_lambda_layers_fail_with_a_reason():
    """Keras 2.2.4 DenseNet whose fake-quantisation Lambda layers are Python 3.6 bytecode (PROVENANCE.txt): the card
    reads without Keras, and loading fails with a reason, trusted or not."""
    folder = settings.shared_data() / NNOM
    provenance = (folder / "PROVENANCE.txt").read_text()
    assert "[N,28,28,1]" in provenance and "Keras 3 refuses the Lambda layers" in provenance
    card = read_card(folder).card
    assert card.modality == "image" and card.input_shape == (1, 28, 28)
    assert card.adapter == {"kind": "keras", "file": "keras_mnist_model.h5", "layout": "NHWC"}
    with pytest.raises(UntrustedCheckpointError, match="Lambda layers"):
        load_model(folder)
    with pytest.raises(ZooError, match="bytecode marshalled by the Python that saved it"):
        load_model(folder, trust_pickle=True)
