import warnings

import numpy as np
import pytest
import torch

from zoo2vec import ModelCard, UntrustedCheckpointError, ZooError
from zoo2vec.zoo import architectures
from zoo2vec.zoo.blackbox import checked_predict
from zoo2vec.zoo.checkpoint import fingerprint, load_model, save_model

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
    ("onnx", "model.onnx", "unknown adapter kind 'onnx'"),
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
