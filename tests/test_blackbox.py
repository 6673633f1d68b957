import time

import numpy as np
import pytest

from zoo2vec import ModelCard, ModelFailure
from zoo2vec.zoo.blackbox import as_probabilities, checked_predict

CARD = ModelCard("m", "text", label_names=["a", "b", "c"])


class Answer:
    """A black box that answers with a fixed function of the batch."""

    card = CARD

    def __init__(self, fn):
        self.fn = fn

    def predict(self, batch):
        return self.fn(batch)


def test_logits_become_probabilities():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    p = as_probabilities(logits, 2, CARD)
    assert np.allclose(p.sum(axis=1), 1)
    assert np.allclose(p[1], 1 / 3)
    assert p[0].argmax() == 0
    probs = np.array([[0.2, 0.3, 0.5]])
    assert np.allclose(as_probabilities(probs, 1, CARD), probs)


@pytest.mark.parametrize("output, reason", [
    (np.full((2, 3), np.nan), "NaN"),
    (np.zeros((2, 4)), "card names 3 labels"),
    (np.zeros((3, 3)), "shape"),
    (np.zeros(2), "shape"),
    ([["x", "y", "z"], ["x", "y", "z"]], "not numeric"),
])
def test_malformed_outputs_fail_with_reason(output, reason):
    with pytest.raises(ModelFailure, match=reason):
        checked_predict(Answer(lambda b: output), ["a", "b"])


def test_exception_in_model_is_a_failure():
    def boom(batch):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(ModelFailure, match="RuntimeError: CUDA out of memory") as info:
        checked_predict(Answer(boom), ["a"], timeout_s=5)
    assert info.value.model == "m"


def test_hanging_model_times_out_quickly():
    def hang(batch):
        time.sleep(5)
        return np.ones((len(batch), 3)) / 3

    t0 = time.perf_counter()
    with pytest.raises(ModelFailure, match="timed out after 0.2 s"):
        checked_predict(Answer(hang), ["a"], timeout_s=0.2)
    assert time.perf_counter() - t0 < 2


def test_torch_model_applies_normalisation_and_softmax():
    import torch

    from zoo2vec.zoo.blackbox import TorchModel

    card = ModelCard("img", "image", input_shape=(1, 2, 2))
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        module[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
        module[1].bias.zero_()
    model = TorchModel(module, card, mean=[0.5], std=[0.5])
    x = np.zeros((1, 1, 2, 2), dtype=np.float32)
    x[0, 0, 0, 0] = 1.0  # normalised to 1.0 -> logits (1, 0)
    p = checked_predict(model, x)
    assert np.allclose(p[0], np.exp([1, 0]) / np.exp([1, 0]).sum(), atol=1e-5)
