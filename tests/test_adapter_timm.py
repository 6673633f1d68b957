import json

import numpy as np
import pytest
import torch

from zoo2vec import ZooError
from zoo2vec.zoo.adapters import load_model, read_card
from zoo2vec.zoo.adapters.timm import detect_torchvision
from zoo2vec.zoo.blackbox import checked_predict

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

README = """---
license: mit
library_name: timm
tags:
- image-classification
datasets:
- mnist
---
# resnet10t-digits

A tiny ResNet that tells three kinds of scribbles apart.
"""


def _x(shape, n=5):
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


def _softmax(module, x, mean, std):
    normalised = (x - np.asarray(mean, np.float32).reshape(1, -1, 1, 1)) / np.asarray(std, np.float32).reshape(
        1, -1, 1, 1)
    with torch.no_grad():
        return torch.softmax(module.eval()(torch.from_numpy(normalised)), dim=1).numpy()


@pytest.fixture
def timm_folder(tmp_path):
    """A grey 32x32 three-class resnet10t saved with timm's own helper, and a Hub README."""
    torch.manual_seed(0)
    module = timm.create_model("resnet10t", pretrained=False, num_classes=3, in_chans=1).eval()
    folder = tmp_path / "resnet10t-digits"
    timm.models.save_for_hf(module, folder, safe_serialization=True,
                            model_config={"label_names": ["circle", "cross", "line"]},
                            data_config={"input_size": (1, 32, 32)})
    (folder / "README.md").write_text(README)
    return folder, module


def test_a_timm_folder_needs_no_card(timm_folder):
    folder, module = timm_folder
    resolved = read_card(folder)
    card, origin = resolved.card, resolved.origin
    assert card.modality == "image" and card.input_shape == (1, 32, 32)
    assert card.label_names == ("circle", "cross", "line")
    assert card.params == sum(t.numel() for t in module.state_dict().values())
    assert card.license == "mit" and card.training_data == "mnist"
    assert {"resnet10t", "image-classification", "timm"} <= set(card.tags)
    assert card.description.startswith("A tiny ResNet")
    assert card.adapter == {"kind": "timm", "file": "model.safetensors"}
    assert origin["label_names"] == "config.json label_names"
    assert origin["input_shape"].startswith("config.json pretrained_cfg.input_size")
    assert origin["params"] == "model.safetensors tensors"
    assert origin["license"].startswith("README.md front matter")
    assert "config.json architecture" in origin["tags"] and "README.md" in origin["tags"]
    assert origin["name"] == "the folder's name"


def test_a_timm_model_answers_as_the_module_does(timm_folder):
    folder, module = timm_folder
    config = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    x = _x((1, 32, 32))
    assert np.allclose(checked_predict(load_model(folder), x), _softmax(module, x, config["mean"], config["std"]),
                       atol=1e-5)


def test_pytorch_model_bin_built_size_and_imagenet_labels(tmp_path):
    """A ViT built for 32x32 (its config's pretrained_cfg still says 160): the size it was built with wins; 1000
    classes and no label names: ImageNet's, as timm guesses them."""
    torch.manual_seed(0)
    module = timm.create_model("test_vit", pretrained=False, num_classes=1000, img_size=32).eval()
    timm.models.save_for_hf(module, tmp_path, safe_serialization=False)
    card = read_card(tmp_path, "tiny-vit").card
    assert card.input_shape == (3, 32, 32)
    assert card.adapter["file"] == "pytorch_model.bin"
    assert card.label_names[0] == "tench, Tinca tinca" and len(card.label_names) == 1000
    assert card.params == sum(t.numel() for t in module.state_dict().values())
    x = _x((3, 32, 32), n=3)
    assert np.allclose(checked_predict(load_model(tmp_path), x), _softmax(module, x, [0.5] * 3, [0.5] * 3), atol=1e-5)


def test_a_timm_config_without_weights_is_not_a_timm_folder(timm_folder):
    folder, _ = timm_folder
    (folder / "model.safetensors").unlink()
    with pytest.raises(ZooError, match="none of the formats"):
        read_card(folder)


def _torchvision_folder(folder, adapter, *, module=None, **card):
    folder.mkdir(exist_ok=True)
    if module is not None:
        torch.save(module.state_dict(), folder / "model.pth")
    (folder / "card.json").write_text(json.dumps({"adapter": adapter, **card}))
    return folder


@pytest.fixture
def mobilenet():
    torch.manual_seed(0)
    return torchvision.models.get_model("mobilenet_v3_small", weights=None, num_classes=4).eval()


def test_torchvision_state_dict_with_a_minimal_card(tmp_path, mobilenet):
    folder = _torchvision_folder(tmp_path / "mnv3", {"kind": "torchvision", "arch": "mobilenet_v3_small",
                                                     "num_classes": 4, "file": "model.pth"}, module=mobilenet)
    resolved = read_card(folder)
    card = resolved.card
    assert card.modality == "image" and card.input_shape == (3, 224, 224)
    assert resolved.origin["input_shape"] == "torchvision default (3, 224, 224)"
    assert card.params == sum(t.numel() for t in mobilenet.state_dict().values())
    assert "mobilenet_v3_small" in card.tags
    x = _x((3, 224, 224), n=2)
    expected = _softmax(mobilenet, x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert np.allclose(checked_predict(load_model(folder), x), expected, atol=1e-5)


def test_torchvision_card_settings_win(tmp_path):
    torch.manual_seed(0)
    module = torchvision.models.get_model("resnet18", weights=None, num_classes=4).eval()
    folder = _torchvision_folder(tmp_path / "r18", {"kind": "torchvision", "arch": "resnet18", "file": "model.pth",
                                                    "mean": [0.5], "std": [0.25]},
                                 module=module, input_shape=[3, 32, 32], label_names=["a", "b", "c", "d"])
    card = read_card(folder).card
    assert card.input_shape == (3, 32, 32)
    x = _x((3, 32, 32), n=3)  # num_classes from the four label names
    assert np.allclose(checked_predict(load_model(folder), x), _softmax(module, x, [0.5] * 3, [0.25] * 3), atol=1e-5)


def test_a_pickled_module_is_not_a_state_dict(tmp_path, mobilenet):
    folder = _torchvision_folder(tmp_path / "pickled", {"kind": "torchvision", "arch": "mobilenet_v3_small",
                                                        "num_classes": 4, "file": "model.pth"})
    torch.save(mobilenet, folder / "model.pth")
    card = read_card(folder).card  # the card reads; its params cannot be counted without unpickling
    assert card.params is None
    with pytest.raises(ZooError, match=r"kind 'pickle'.*trust_pickle=True"):
        load_model(folder, trust_pickle=True)


@pytest.mark.parametrize("adapter, message", [
    ({"arch": "resnet_999"}, "Available: .*resnet18"),
    ({"arch": "resnet18"}, "do not fit torchvision 'resnet18' with 4 classes"),
])
def test_torchvision_errors_name_the_fix(tmp_path, mobilenet, adapter, message):
    folder = _torchvision_folder(tmp_path / "m", {"kind": "torchvision", "file": "model.pth", "num_classes": 4,
                                                  **adapter}, module=mobilenet)
    with pytest.raises(ZooError, match=message):
        load_model(folder)


def test_a_bare_state_dict_is_no_torchvision_folder(tmp_path, mobilenet):
    torch.save(mobilenet.state_dict(), tmp_path / "model.pth")
    assert detect_torchvision(tmp_path) is None
