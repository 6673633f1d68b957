"""The mixture-of-experts text encoder: starts as MiniLM, routes by domain, trains and reloads."""

import numpy as np
import pytest

from zoo2vec.encoders import moe, reference
from zoo2vec.errors import ConfigError
from zoo2vec.train import moe as trainer

TEXTS = ["filter junk text messages: ham, spam", "spot pneumonia on chest x-rays", "read handwritten digits"]


@pytest.fixture(scope="module")
def encoder():
    return moe.MoEEncoder()


def test_untrained_experts_are_minilm_whatever_the_route(encoder):
    plain = reference.embed_text(TEXTS)
    for domain in moe.DOMAINS:
        assert np.abs(encoder.encode(TEXTS, [domain] * 3) - plain).max() < 1e-5


def test_enforced_routing_sends_each_text_to_its_expert(encoder):
    import torch

    before = encoder.encode(TEXTS, ["language", "medical", "vision"])
    medical = moe.DOMAINS.index("medical")
    layer = encoder.layers[-1].moe_experts[medical][1].dense
    saved = layer.weight.detach().clone()
    try:
        with torch.no_grad():
            layer.weight.mul_(3.0)  # change only the medical expert
        after = encoder.encode(TEXTS, ["language", "medical", "vision"])
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved)
    changed = np.abs(after - before).max(axis=1) > 1e-4
    assert changed.tolist() == [False, True, False]
    with pytest.raises(ConfigError, match="unknown domains"):
        encoder.encode(TEXTS, ["language", "legal", "vision"])


def test_training_moves_the_experts_and_the_checkpoint_reloads(tmp_path):
    pairs = [("junk text messages", "sms spam detector. classes: ham, spam", "language", "sms"),
             ("movie reviews: good or bad", "film review sentiment. classes: negative, positive", "language", "imdb"),
             ("chest x-ray pneumonia", "pneumonia detection in chest X-rays", "medical", "pneumonia"),
             ("handwritten numbers", "digit recognition, 28x28 images", "vision", "mnist")]
    sidecar = trainer.train(pairs, out=tmp_path / "moe", steps=3, trained_on={"datasets": ["test"]})
    assert sidecar["pairs"] == 4 and sidecar["settings"]["steps"] == 3 and sidecar["groups"] == sorted(p[3] for p in pairs)
    trained = moe.load(str(tmp_path / "moe"))
    routed, went = trained.encode_routed(TEXTS)
    assert routed.shape == (3, 384) and np.allclose(np.linalg.norm(routed, axis=1), 1, atol=1e-5)
    assert set(went) <= set(moe.DOMAINS)
    enforced = trained.encode(TEXTS, ["language"] * 3)
    assert np.abs(enforced - reference.embed_text(TEXTS)).max() > 1e-4  # the language expert learned something
    again = moe.load.__wrapped__(str(tmp_path / "moe")).encode(TEXTS, ["language"] * 3)
    assert np.allclose(again, enforced, atol=1e-6)


def test_bad_training_input(tmp_path):
    with pytest.raises(ConfigError, match="at least two groups"):
        trainer.train([("a", "b", "language", "one")], out=tmp_path)
    with pytest.raises(ConfigError, match="unknown domains"):
        trainer.train([("a", "b", "legal", "one"), ("c", "d", "language", "two")], out=tmp_path)
    with pytest.raises(ConfigError, match="train-text"):
        moe.load(str(tmp_path / "nothing"))
