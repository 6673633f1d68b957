"""Benchmark task transforms and the ground truth cache's per-task reuse (no shared data needed)."""

import numpy as np
import pytest

from zoo2vec.errors import ConfigError
from zoo2vec.eval.tasks import TRANSFORMS, TaskSpec, transformed


def _rng():
    return np.random.default_rng(0)


def test_every_image_transform_keeps_shape_and_range_and_changes_the_image():
    img = np.linspace(0, 1, 3 * 12 * 12, dtype=np.float32).reshape(3, 12, 12)
    for kind in TRANSFORMS["image"]:
        [out] = transformed([img], kind, _rng())
        assert out.shape == img.shape, kind
        assert 0.0 <= out.min() and out.max() <= 1.0, kind
        assert not np.allclose(out, img), kind
    [inverted] = transformed([img], "invert", _rng())
    np.testing.assert_allclose(inverted, 1.0 - img)


def test_text_transforms():
    text = "The Quick Brown Fox jumps over the lazy dog near the old river bank today"
    assert transformed([text], "lower", _rng()) == [text.lower()]
    assert transformed([text], "truncate", _rng()) == ["The Quick Brown Fox jumps over the lazy"]
    [dropped] = transformed([text], "drop-words", _rng())
    assert 0 < len(dropped.split()) < len(text.split()) and set(dropped.split()) <= set(text.split())
    assert transformed(["one"] * 50, "drop-words", _rng()) == ["one"] * 50  # never an empty sample
    with pytest.raises(ConfigError, match="unknown task transform"):
        transformed([text], "reverse", _rng())


def test_sample_key_names_what_the_samples_depend_on():
    a = TaskSpec("d/0", "d", "text", ("x", "y"), 5, 30, 7, "meta")
    assert a.meta and not a.held_out
    moved = TaskSpec("other-id", "d", "text", ("x", "y"), 5, 30, 7, "held_out")
    assert moved.held_out and moved.sample_key() == a.sample_key()  # id and split do not change the samples
    assert TaskSpec("d/0", "d", "text", ("x", "y"), 5, 30, 7, "meta", "lower").sample_key() != a.sample_key()
    assert TaskSpec("d/0", "d", "text", ("x", "y"), 5, 30, 8, "meta").sample_key() != a.sample_key()
