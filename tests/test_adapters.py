import warnings

import numpy as np
import pytest
import torch
from conftest import installed_distribution

from zoo2vec import ModelCard, UntrustedCheckpointError, ZooError
from zoo2vec.zoo import adapters, architectures
from zoo2vec.zoo.adapters import fingerprint, load_model
from zoo2vec.zoo.adapters.safetensors import save_model
from zoo2vec.zoo.blackbox import checked_predict

CARD = ModelCard("tiny-mlp", "image", label_names=["a", "b", "c"], input_shape=(1, 4, 4))


@pytest.fixture
def module():
    torch.manual_seed(0)
    return architectures.build("mlp", {"input_shape": [1, 4, 4], "n_classes": 3, "hidden": [5]}).eval()


def _x(n=6):
    return np.random.default_rng(0).random((n, 1, 4, 4), dtype=np.float32)


def _reference(module, x):
    with torch.no_grad():
        return torch.softmax(module(torch.from_numpy(x)), dim=1).numpy()


def test_safetensors_round_trip_predicts_the_same(tmp_path, module):
    save_model(tmp_path, module, CARD, arch="mlp", config={"input_shape": [1, 4, 4], "n_classes": 3, "hidden": [5]})
    model = load_model(tmp_path)
    assert model.card.adapter["kind"] == "safetensors"
    assert np.allclose(checked_predict(model, _x()), _reference(module, _x()), atol=1e-6)


def test_weights_that_do_not_fit_the_architecture(tmp_path, module):
    save_model(tmp_path, module, CARD, arch="mlp", config={"input_shape": [1, 4, 4], "n_classes": 3, "hidden": [5]})
    card = ModelCard.load(tmp_path)
    card.adapter["config"]["hidden"] = [7]
    card.save(tmp_path)
    with pytest.raises(ZooError, match="do not fit"):
        load_model(tmp_path)


def _write_card(folder, kind, file):
    ModelCard("tiny-mlp", "image", label_names=["a", "b", "c"], input_shape=(1, 4, 4),
              adapter={"kind": kind, "file": file}).save(folder)


def test_pickled_checkpoint_is_refused_unless_trusted(tmp_path, module):
    torch.save(module, tmp_path / "model.pt")
    _write_card(tmp_path, "pickle", "model.pt")
    with pytest.raises(UntrustedCheckpointError, match="trust_pickle=True"):
        load_model(tmp_path)
    model = load_model(tmp_path, trust_pickle=True)
    assert np.allclose(checked_predict(model, _x()), _reference(module, _x()), atol=1e-6)


def test_torchscript_loads_without_trust(tmp_path, module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module, torch.zeros(1, 1, 4, 4)), str(tmp_path / "model.pt"))
    _write_card(tmp_path, "torchscript", "model.pt")
    assert np.allclose(checked_predict(load_model(tmp_path), _x()), _reference(module, _x()), atol=1e-6)


def test_a_pickle_named_torchscript_is_not_loaded(tmp_path, module):
    torch.save(module, tmp_path / "model.pt")
    _write_card(tmp_path, "torchscript", "model.pt")
    with pytest.raises(ZooError, match="not a TorchScript archive"):
        load_model(tmp_path, trust_pickle=True)


@pytest.mark.parametrize("kind, file, message", [
    ("safetensors", "../outside.safetensors", "outside its folder"),
    ("safetensors", "missing.safetensors", "missing"),
    ("onnx", "model.onnx", "model.onnx is missing"),
])
def test_bad_adapter_entries(tmp_path, kind, file, message):
    _write_card(tmp_path, kind, file)
    with pytest.raises(ZooError, match=message):
        load_model(tmp_path)


def test_fingerprint_follows_content(tmp_path, module):
    save_model(tmp_path, module, CARD, arch="mlp", config={"input_shape": [1, 4, 4], "n_classes": 3, "hidden": [5]})
    first = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == first
    card = ModelCard.load(tmp_path)
    ModelCard.from_dict({**card.to_dict(), "license": "mit"}).save(tmp_path)
    assert fingerprint(tmp_path) != first


def test_every_format_of_zoo2vec_is_registered_by_its_module():
    assert {"safetensors", "torchscript", "pickle", "sentence-transformers", "tflite", "http", "transformers", "hf-cache",
            "onnx", "skops", "sklearn-pickle", "timm", "torchvision", "keras"} <= set(adapters.available())


def test_an_unknown_kind_names_the_available_ones(tmp_path):
    _write_card(tmp_path, "caffe", "model.caffemodel")
    with pytest.raises(ZooError, match=r"unknown adapter kind 'caffe'.*Available: .*safetensors.*torchscript"):
        load_model(tmp_path)


PLUGIN = """
import numpy as np


class NumpyLinear:
    def __init__(self, weights, card):
        self.weights, self.card = weights, card

    def predict(self, batch):
        return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1) @ self.weights


def load(source):
    return NumpyLinear(np.load(source.file()), source.card)


def impostor(source):
    raise AssertionError("a plug-in must not replace one of zoo2vec's own formats")
"""


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) that adds the 'numpy-linear' format by entry point, tries
    to replace zoo2vec's safetensors format, and names a 'broken-format' whose module does not exist."""
    return installed_distribution(
        tmp_path / "site", "z2v_numpy_format", PLUGIN,
        "[zoo2vec.adapters]\nnumpy-linear = z2v_numpy_format:load\nsafetensors = z2v_numpy_format:impostor\n"
        "broken-format = z2v_numpy_format_missing:load\n", monkeypatch)


def test_another_package_adds_a_format_through_the_entry_point_group(tmp_path, plugin_package, module):
    weights = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    folder = tmp_path / "plugged"
    folder.mkdir()
    np.save(folder / "weights.npy", weights)
    _write_card(folder, "numpy-linear", "weights.npy")
    assert "numpy-linear" in adapters.available()
    out = checked_predict(load_model(folder), _x())
    assert out.shape == (6, 3) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    # zoo2vec's own safetensors format is still zoo2vec's
    save_model(tmp_path / "own", module, CARD, arch="mlp", config={"input_shape": [1, 4, 4], "n_classes": 3, "hidden": [5]})
    assert np.allclose(checked_predict(load_model(tmp_path / "own"), _x()), _reference(module, _x()), atol=1e-6)


def test_a_broken_plug_in_fails_only_its_own_format(tmp_path, plugin_package, module):
    assert "broken-format" in adapters.available()
    (tmp_path / "broken").mkdir()
    _write_card(tmp_path / "broken", "broken-format", "weights.npy")
    with pytest.raises(ZooError, match=r"plug-in for 'broken-format' \(z2v_numpy_format_missing:load\) does not load"):
        load_model(tmp_path / "broken")
    save_model(tmp_path / "own", module, CARD, arch="mlp", config={"input_shape": [1, 4, 4], "n_classes": 3, "hidden": [5]})
    assert load_model(tmp_path / "own").card.adapter["kind"] == "safetensors"
