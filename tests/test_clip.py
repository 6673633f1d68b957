import json

import numpy as np
import pytest

from zoo2vec.encoders import clip, reference
from zoo2vec.errors import ConfigError
from zoo2vec.train import clip as trainer

MICRO = {
    "model": {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
    "datasets": ["sklearn-digits", "breastmnist"], "per_dataset": 64, "epochs": 1, "batch_size": 32, "lr": 1e-3, "seed": 0,
}


@pytest.fixture
def micro(monkeypatch):
    monkeypatch.setitem(clip.CONFIGS, "micro", MICRO)
    monkeypatch.setattr(clip, "DEFAULT", "micro")
    clip._load.cache_clear()
    yield "micro"
    clip._load.cache_clear()


def _images(n=6, seed=0):
    return list(np.random.default_rng(seed).random((n, 1, 28, 28)).astype(np.float32))


def test_trainer_takes_pairs_writes_the_checkpoint_serving_loads(micro):
    """Synthetic image-caption pairs, no dataset: the trainer knows nothing of where its data comes from."""
    rng = np.random.default_rng(0)
    images = clip.pixels(list(rng.random((40, 1, 28, 28)).astype(np.float32)))
    captions = [f"a picture of {c}" for c in rng.choice(["circles", "stripes"], 40)]
    sidecar = trainer.train(micro, images, captions, trained_on={"datasets": ["synthetic"]},
                            zero_shot=lambda config: {"checked": config})
    assert sidecar["pairs"] == 40 and sidecar["datasets"] == ["synthetic"] and sidecar["zero_shot"] == {"checked": micro}
    assert json.loads((clip.checkpoint_dir(micro) / "model.json").read_text()) == sidecar
    assert clip.embed_images(_images(2)).shape == (2, 16)
    with pytest.raises(ConfigError, match="one caption per image"):
        trainer.train(micro, images, captions[:3])
    with pytest.raises(ConfigError, match="unknown CLIP config"):
        trainer.train("no-such-clip", images, captions)


@pytest.mark.shared_data
def test_self_trained_clip_trains_reports_zero_shot_and_embeds(micro):
    from zoo2vec.eval import captions

    sidecar = captions.train(micro, held_out={"cifar10"})
    assert set(sidecar["zero_shot"]) == {"fashion-mnist", "pneumoniamnist", "cifar10"}
    assert all(0.0 <= z["accuracy"] <= 1.0 for z in sidecar["zero_shot"].values())
    assert json.loads((clip.checkpoint_dir(micro) / "model.json").read_text())["pairs"] == sidecar["pairs"]
    emb = reference.embed("clip-v1", _images())
    assert emb.shape == (6, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    words = reference.embed_words("clip-v1", ["a handwritten digit 3", "a breast ultrasound image, benign"])
    assert words.shape == (2, 16) and np.allclose(words, clip.embed_texts(["a handwritten digit 3",
                                                                           "a breast ultrasound image, benign"]))
    before = reference.identity("clip-v1")
    assert before.startswith("clip-v1:self:micro@")
    clip.CONFIGS[micro] = {**MICRO, "seed": 1}
    captions.train(micro)  # new weights: a new identity, so indexed models are encoded again
    after = reference.identity("clip-v1")
    assert after.split("@")[0] == before.split("@")[0] and after != before


def test_clip_config_that_touches_a_held_out_dataset_is_refused(micro):
    from zoo2vec.eval import captions

    with pytest.raises(ConfigError, match="held-out"):
        captions.train(micro, held_out={"breastmnist"})


def test_missing_weights_say_what_to_do(micro, monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="zoo2vec train-clip"):
        reference.identity("clip-v1")
    monkeypatch.setenv("ZOO2VEC_CLIP", f"ViT-B-32:{tmp_path / 'nothing.bin'}")
    with pytest.raises(ConfigError, match="not a file"):
        clip.embed_images(_images())


def test_pretrained_weights_load_through_open_clip_from_a_local_file(micro, monkeypatch, tmp_path):
    import open_clip
    import torch

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "micro-local.json").write_text(json.dumps(MICRO["model"]))
    open_clip.add_model_config(tmp_path / "configs")
    model = clip.build(micro)
    torch.save(model.state_dict(), tmp_path / "weights.bin")
    monkeypatch.setenv("ZOO2VEC_CLIP", f"micro-local:{tmp_path / 'weights.bin'}")
    emb = clip.embed_images(_images(3))
    assert emb.shape == (3, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert clip.embed_texts(["a photo of a cat"]).shape == (1, 16)
    assert reference.identity("clip-v1").startswith(f"clip-v1:micro-local:{tmp_path / 'weights.bin'}@")
