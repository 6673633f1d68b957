"""MiniLM's faster stand-ins: the int8 export and the static encoder distilled from it, each written once under the
data home, near MiniLM, served without torch; and the distillation's arithmetic on its own."""

import os
import subprocess
import sys

import numpy as np
import pytest

from zoo2vec.encoders import reference
from zoo2vec.zoo import sentence, fast_sentence


def test_distil_keeps_the_leading_components_and_weights_frequent_tokens_down():
    rng = np.random.default_rng(0)
    loud, quiet = rng.normal(size=(2000, 1)) * 10, rng.normal(size=(2000, 7))
    vectors = np.hstack([quiet[:, :3], loud, quiet[:, 3:]])
    out = fast_sentence.distil(vectors, dims=2, sif=1e-2)
    assert out.shape == (2000, 2) and out.dtype == np.float32
    # the loud column is the first component (up to its sign): SIF weights leave the correlation almost whole
    assert abs(np.corrcoef(out[:, 0], loud[:, 0])[0, 1]) > 0.95
    unweighted = fast_sentence.distil(vectors, dims=2, sif=1.0 - 1e-12)  # weights of 1 - 1e-12 / (sif + p): ~1
    ratio = np.abs(out[:, 0]) / np.maximum(np.abs(unweighted[:, 0]), 1e-9)
    assert ratio[0] < ratio[100] < ratio[-1] <= 1.0  # a token early in the vocabulary (frequent) counts least


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(sentence, "_models", {})
    monkeypatch.setattr(fast_sentence, "_encoders", {})


@pytest.mark.integration
def test_the_static_encoder_is_distilled_once_and_answers_in_minilms_neighbourhood(fresh, isolated_home):
    assert not fast_sentence.static_path().exists()
    encoder = fast_sentence.static_encoder()
    path = fast_sentence.static_path()
    assert path.exists() and path.parent == isolated_home / "encoders"
    assert not list(path.parent.glob(".*partial*"))  # written whole, then renamed
    assert encoder.dim == fast_sentence.DIMS

    texts = ["the film was wonderful and moving", "a wonderful, moving film", "what a great movie",
             "stock prices fell sharply on monday", "shares dropped at the opening bell", "markets slid as trading began"]
    static = reference.embed("minilm-static-v1", texts)
    np.testing.assert_allclose(np.linalg.norm(static, axis=1), 1, atol=1e-5)
    sims = static @ static.T
    same, other = sims[:3, :3][np.triu_indices(3, 1)], sims[:3, 3:]
    assert same.min() > other.max()  # reviews stay closer to reviews than to market news
    minilm = reference.embed("minilm-v1", texts)
    iu = np.triu_indices(len(texts), 1)
    assert np.corrcoef(sims[iu], (minilm @ minilm.T)[iu])[0, 1] > 0.8  # the two kernels agree on these
    assert reference.embed_words("minilm-static-v1", ["cats", "dogs"]).shape == (2, fast_sentence.DIMS)

    fast_sentence._encoders.clear()  # a later process reads the vectors, distils nothing
    mtime = path.stat().st_mtime_ns
    np.testing.assert_allclose(reference.embed("minilm-static-v1", texts), static, atol=1e-6)
    assert path.stat().st_mtime_ns == mtime

    script = ("import sys\nfrom zoo2vec.encoders.reference import embed\n"
              "v = embed('minilm-static-v1', ['digits', 'news'])\nprint(v.shape, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ZOO2VEC_HOME": str(isolated_home)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == f"(2, {fast_sentence.DIMS}) False", done.stdout


@pytest.mark.integration
def test_the_int8_encoder_is_written_once_and_stays_in_minilms_space(fresh, isolated_home):
    texts = ["the film was wonderful and moving", "stock prices fell sharply on monday", "", "news " * 200]
    encoder = fast_sentence.int8_encoder()
    path = fast_sentence.int8_path()
    assert path.exists() and path.parent == isolated_home / "encoders"
    assert not list(path.parent.glob(".*partial*"))
    assert fast_sentence.int8_encoder() is encoder  # one per process
    int8, minilm = reference.embed("minilm-int8-v1", texts), reference.embed("minilm-v1", texts)
    assert int8.shape == minilm.shape == (len(texts), 384)
    assert np.sum(int8 * minilm, axis=1).min() > 0.85  # the same space, up to the rounding of its weights


def test_the_faster_text_probe_sets_are_text_v2_in_another_space():
    from zoo2vec.encoders import probe_set

    base = probe_set.config("text-v2")
    for name, encoder in (("text-v2-int8", "minilm-int8-v1"), ("text-v2-static", "minilm-static-v1")):
        cfg = probe_set.config(name)
        assert cfg["reference_encoder"] == encoder and reference.ENCODERS[encoder] == "text"
        assert {k: v for k, v in cfg.items() if k not in ("name", "reference_encoder")} == \
            {k: v for k, v in base.items() if k not in ("name", "reference_encoder")}
