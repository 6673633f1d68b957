"""The onnx adapter: tiny torch models exported here (NCHW, NHWC, flat, fixed batch), graphs written by hand in the
forms skl2onnx and text models take, and the third-party ONNX files of the shared data on real images."""

import io
import json
import shutil
import sys
import tarfile
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from zoo2vec import settings
from zoo2vec.errors import ZooError
from zoo2vec.zoo.adapters import load_model, read_card
from zoo2vec.zoo.blackbox import checked_predict

THIRD_PARTY = settings.shared_data() / "models" / "third_party"


def _folder(tmp_path, name="model"):
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _write_card(folder, **fields):
    (folder / "card.json").write_text(json.dumps(fields))


def _export(module, path, example, *, dynamic=True, metadata=None):
    """torch's TorchScript-based exporter (the default one needs onnxscript), then metadata_props added."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(module.eval(), (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None,
                          dynamo=False)
    if metadata:
        model = onnx.load(str(path))
        helper.set_model_props(model, metadata)
        onnx.save(model, str(path))


def _softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _torch_probabilities(module, x):
    with torch.no_grad():
        return torch.softmax(module(torch.from_numpy(np.ascontiguousarray(x))), dim=1).numpy()


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


class Cnn(torch.nn.Module):
    def __init__(self, channels=1, classes=3, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.conv = torch.nn.Conv2d(channels, 4, 3)
        self.head = torch.nn.Linear(4, classes)

    def forward(self, x):
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _seeded(make):
    torch.manual_seed(0)
    return make()


def test_a_torch_export_is_described_by_its_graph_and_predicts_as_onnxruntime(tmp_path):
    module = _seeded(Cnn)
    folder = _folder(tmp_path, "tiny-cnn")
    _export(module, folder / "model.onnx", torch.zeros(2, 1, 8, 8), metadata={"labels": '["cat", "dog", "bird"]'})

    resolved = read_card(folder)
    card, origin = resolved.card, resolved.origin
    assert card.modality == "image" and card.input_shape == (1, 8, 8)
    assert origin["input_shape"] == "model.onnx graph input 'input' tensor(float) [N,1,8,8] (NCHW)"
    assert card.label_names == ("cat", "dog", "bird") and origin["label_names"] == "model.onnx metadata_props 'labels'"
    assert card.params == sum(p.numel() for p in module.parameters()) and "initializers" in origin["params"]
    assert card.adapter == {"kind": "onnx", "file": "model.onnx", "layout": "NCHW"}
    assert "onnx" in card.tags and "pytorch" in card.tags

    x = _images(7, (1, 8, 8))
    probabilities = checked_predict(load_model(folder), x)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(probabilities, _softmax(session.run(None, {"input": x})[0]), atol=1e-5)
    assert np.allclose(probabilities, _torch_probabilities(module, x), atol=1e-5)


def test_a_channels_last_input_gets_nhwc_images(tmp_path):
    module = _seeded(lambda: Cnn(channels=3, classes=2, channels_last=True))
    folder = _folder(tmp_path, "nhwc")
    _export(module, folder / "model.onnx", torch.zeros(2, 6, 6, 3), metadata={"classes": "road, sky"})

    card = read_card(folder).card
    assert card.input_shape == (3, 6, 6) and card.adapter["layout"] == "NHWC"
    assert card.label_names == ("road", "sky")
    x = _images(5, (3, 6, 6))
    expected = _torch_probabilities(module, x.transpose(0, 2, 3, 1))
    assert np.allclose(checked_predict(load_model(folder), x), expected, atol=1e-5)


def test_a_flat_input_is_read_as_a_square_image(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    folder = _folder(tmp_path, "flat")
    _export(module, folder / "mlp.onnx", torch.zeros(2, 64), metadata={"id2label": '{"1": "odd", "0": "even"}'})

    resolved = read_card(folder)
    assert resolved.card.input_shape == (1, 8, 8) and resolved.card.adapter["layout"] == "flat"
    assert "64 features read as a 1x8x8 image" in resolved.origin["input_shape"]
    assert resolved.card.label_names == ("even", "odd")
    x = _images(6, (1, 8, 8))
    expected = _torch_probabilities(module, x.reshape(6, 64))
    assert np.allclose(checked_predict(load_model(folder), x), expected, atol=1e-5)


def test_a_graph_of_fixed_batch_size_gets_its_batch_in_pieces(tmp_path):
    module = _seeded(Cnn)
    folder = _folder(tmp_path, "batch-one")
    _export(module, folder / "model.onnx", torch.zeros(1, 1, 8, 8), dynamic=False)
    x = _images(5, (1, 8, 8))
    assert np.allclose(checked_predict(load_model(folder), x), _torch_probabilities(module, x), atol=1e-5)


def _save(graph, path, ml_opset=1):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("ai.onnx.ml", ml_opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return model


def _logistic_regression(path, weights, bias, *, zipmap=True):
    """The graph skl2onnx writes for a LogisticRegression: a LinearClassifier, and a ZipMap over its probabilities
    unless zipmap=False."""
    labels = [3, 5, 7]
    x = helper.make_tensor_value_info("float_input", TensorProto.FLOAT, [None, weights.shape[1]])
    label = helper.make_tensor_value_info("output_label", TensorProto.INT64, [None])
    linear = helper.make_node("LinearClassifier", ["float_input"], ["output_label", "probabilities"],
                              domain="ai.onnx.ml", coefficients=weights.ravel().tolist(), intercepts=bias.tolist(),
                              classlabels_ints=labels, multi_class=1, post_transform="SOFTMAX")
    if zipmap:
        maps = helper.make_sequence_type_proto(helper.make_map_type_proto(
            TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
        outputs = [label, helper.make_value_info("output_probability", maps)]
        nodes = [linear, helper.make_node("ZipMap", ["probabilities"], ["output_probability"], domain="ai.onnx.ml",
                                          classlabels_int64s=labels)]
    else:
        outputs = [label, helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])]
        nodes = [linear]
    _save(helper.make_graph(nodes, "lr", [x], outputs), path)


@pytest.mark.parametrize("zipmap", [True, False])
def test_a_scikit_learn_export_with_or_without_zipmap(tmp_path, zipmap):
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(3, 16)).astype(np.float32), np.array([0.1, -0.2, 0.3], np.float32)
    folder = _folder(tmp_path, "skl")
    _logistic_regression(folder / "lr.onnx", weights, bias, zipmap=zipmap)

    resolved = read_card(folder)
    assert resolved.card.label_names == ("3", "5", "7")
    assert resolved.origin["label_names"] == "lr.onnx LinearClassifier classlabels_ints"
    assert resolved.card.input_shape == (1, 4, 4) and resolved.card.params == 3 * 16 + 3
    x = _images(6, (1, 4, 4))
    probabilities = checked_predict(load_model(folder), x)
    assert np.allclose(probabilities, _softmax(x.reshape(6, 16) @ weights.T + bias), atol=1e-5)
    if zipmap:
        session = ort.InferenceSession(str(folder / "lr.onnx"), providers=["CPUExecutionProvider"])
        rows = session.run(["output_probability"], {"float_input": x.reshape(6, 16)})[0]
        assert np.allclose(probabilities, [[row[k] for k in (3, 5, 7)] for row in rows], atol=1e-5)


def _linear(path, weights, element=TensorProto.FLOAT, input_shape=(None, 4)):
    """input -> (Cast to float) -> MatMul: a graph whose raw answer shows exactly what it was fed."""
    x = helper.make_tensor_value_info("x", element, list(input_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, weights.shape[1]])
    nodes, source = [], "x"
    if element != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        source = "xf"
    if len(input_shape) > 2:
        nodes.append(helper.make_node("Flatten", [source], ["flat"]))
        source = "flat"
    nodes.append(helper.make_node("MatMul", [source, "w"], ["y"]))
    graph = helper.make_graph(nodes, "linear", [x], [y], initializer=[onnx.numpy_helper.from_array(weights, "w")])
    _save(graph, path)


def test_scale_mean_std_and_reversed_features_are_applied_in_that_order(tmp_path):
    weights = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    folder = _folder(tmp_path, "tribuo-like")
    _linear(folder / "model.onnx", weights)
    _write_card(folder, adapter={"scale": 255, "mean": [0.5], "std": [2.0], "reverse_features": True})
    x = _images(3, (1, 2, 2))
    expected = ((x * 255 - 0.5) / 2.0).reshape(3, 4)[:, ::-1] @ weights
    assert np.allclose(load_model(folder).predict(x), expected, rtol=1e-5, atol=1e-4)


def test_a_uint8_input_gets_raw_pixel_values(tmp_path):
    weights = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    folder = _folder(tmp_path, "bytes")
    _linear(folder / "model.onnx", weights, TensorProto.UINT8, (None, 1, 2, 2))
    assert read_card(folder).card.input_shape == (1, 2, 2)
    x = _images(3, (1, 2, 2))
    expected = np.rint(x * 255).reshape(3, 4) @ weights
    assert np.allclose(load_model(folder).predict(x), expected, rtol=1e-5, atol=1e-4)


def test_a_text_model_takes_strings(tmp_path):
    text = helper.make_tensor_value_info("text", TensorProto.STRING, [None, 1])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 2])
    nodes = [helper.make_node("LabelEncoder", ["text"], [name], domain="ai.onnx.ml", keys_strings=words,
                              values_floats=[3.0, 1.0], default_float=0.0)
             for name, words in (("negative", ["awful", "poor"]), ("positive", ["great", "fine"]))]
    nodes.append(helper.make_node("Concat", ["negative", "positive"], ["scores"], axis=1))
    folder = _folder(tmp_path, "words")
    _save(helper.make_graph(nodes, "words", [text], [scores]), folder / "words.onnx", ml_opset=2)
    model = onnx.load(str(folder / "words.onnx"))
    helper.set_model_props(model, {"labels": "negative,positive"})
    onnx.save(model, str(folder / "words.onnx"))

    card = read_card(folder).card
    assert card.modality == "text" and card.input_shape is None and card.label_names == ("negative", "positive")
    assert np.allclose(load_model(folder).predict(["great", "poor", "unknown"]), [[0, 3], [1, 0], [0, 0]])


def test_a_card_whose_input_shape_the_graph_does_not_take(tmp_path):
    folder = _folder(tmp_path)
    _export(_seeded(Cnn), folder / "model.onnx", torch.zeros(2, 1, 8, 8))
    _write_card(folder, input_shape=[1, 28, 28])
    with pytest.raises(ZooError, match=r"input_shape \[1, 28, 28\] as NCHW.*\[N,1,8,8\]"):
        load_model(folder)
    _write_card(folder, adapter={"layout": "NCWH?"})
    with pytest.raises(ZooError, match="layout 'NCWH\\?' is not one of NCHW, NHWC, NHW, flat"):
        load_model(folder)


def test_a_graph_of_two_inputs_is_refused_by_name(tmp_path):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 4])
    out = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 4])
    folder = _folder(tmp_path)
    _save(helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "two", [a, b], [out]),
          folder / "two.onnx")
    with pytest.raises(ZooError, match="feeds one input, the graph takes 2: 'a'.*'b'"):
        read_card(folder)


def test_several_onnx_files_need_a_card_that_names_one(tmp_path):
    folder = _folder(tmp_path)
    for name in ("a.onnx", "b.onnx"):
        _export(_seeded(Cnn), folder / name, torch.zeros(2, 1, 8, 8))
    with pytest.raises(ZooError, match="one \\*.onnx file"):
        read_card(folder)
    _write_card(folder, adapter={"kind": "onnx", "file": "b.onnx"})
    assert read_card(folder).card.adapter == {"kind": "onnx", "file": "b.onnx", "layout": "NCHW"}


# --- third-party files from the shared data


def _third_party(tmp_path, name, file, **card):
    """A model folder holding a copy of a third-party ONNX file (a symlink would point outside the folder)."""
    folder = _folder(tmp_path, name)
    shutil.copy(THIRD_PARTY / name / file, folder / file)
    if card:
        _write_card(folder, **card)
    return folder


def _mnist(n=60):
    from zoo2vec.data.shared import mnist

    data = mnist()
    idx = np.random.default_rng(0).choice(len(data.y), n, replace=False)
    return data.x[idx], data.y[idx]


DIGITS = [str(i) for i in range(10)]


@pytest.mark.shared_data
@pytest.mark.parametrize("name, file, card, scale", [
    # CNTK's model zoo MNIST: fixed batch 1; WinML metadata says it takes 0..255
    ("winml-mnist-onnx", "mnist.onnx", {}, 255.0),
    # Tribuo's PyTorch CNN: trained on raw pixel values, which its graph cannot say
    ("tribuo-cnn-mnist-onnx", "pytorch_cnn_mnist.onnx", {"label_names": DIGITS, "adapter": {"scale": 255}}, 255),
    # Tribuo's skl2onnx LogisticRegression (ZipMap output): raw pixel values, in reverse order
    ("tribuo-lr-mnist-onnx", "skl_lr_mnist.onnx", {"adapter": {"scale": 255, "reverse_features": True}}, 255),
])
def test_third_party_mnist_models_read_real_digits(tmp_path, name, file, card, scale):
    folder = _third_party(tmp_path, name, file, **card)
    resolved = read_card(folder)
    assert resolved.card.input_shape == (1, 28, 28) and resolved.card.modality == "image"
    assert resolved.card.adapter["scale"] == scale
    assert resolved.card.label_names in (None, tuple(DIGITS))
    x, y = _mnist()
    probabilities = checked_predict(load_model(folder), x)
    assert (probabilities.argmax(axis=1) == y).mean() > 0.85


@pytest.mark.shared_data
def test_the_skl2onnx_mnist_model_says_its_labels_and_weights(tmp_path):
    resolved = read_card(_third_party(tmp_path, "tribuo-lr-mnist-onnx", "skl_lr_mnist.onnx"))
    assert resolved.card.label_names == tuple(DIGITS) and resolved.card.params == 784 * 10 + 10
    assert resolved.card.adapter["layout"] == "flat" and "skl2onnx" in resolved.card.tags


def _cifar10(per_class=10):
    """The first JPEGs of each class of the shared CIFAR-10 test set, (N, 3, 32, 32) in [0, 1]."""
    from PIL import Image

    images, labels, classes = [], [], {}
    with tarfile.open(settings.shared_data() / "images" / "cifar10" / "test_jpg.tar.gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".jpg")):
                continue
            cls = member.name.split("/")[-2]
            if classes.setdefault(cls, 0) < per_class:
                classes[cls] += 1
                with Image.open(io.BytesIO(tar.extractfile(member).read())) as im:
                    images.append(np.asarray(im.convert("RGB")))
                labels.append(cls)
    names = sorted(classes)
    x = (np.stack(images).transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
    return x, np.asarray([names.index(c) for c in labels]), names


@pytest.mark.shared_data
def test_the_winml_cifar10_model_reads_real_photos(tmp_path):
    x, y, names = _cifar10()
    # trained on Normalize(0.5, 0.5): x * 2 - 1
    folder = _third_party(tmp_path, "winml-cifar10-onnx", "ImageClassifier.onnx", label_names=names,
                          adapter={"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    assert read_card(folder).card.input_shape == (3, 32, 32)
    probabilities = checked_predict(load_model(folder), x)
    assert (probabilities.argmax(axis=1) == y).mean() > 0.4  # measured 0.67 on 500; chance is 0.1


def test_without_onnxruntime_the_error_names_the_extra(tmp_path, monkeypatch):
    from zoo2vec.errors import MissingExtraError

    folder = _folder(tmp_path)
    _export(_seeded(Cnn), folder / "model.onnx", torch.zeros(2, 1, 8, 8))
    card = read_card(folder).card
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(MissingExtraError, match=r"pip install 'zoo2vec\[onnx\]'"):
        load_model(folder, card=card)
