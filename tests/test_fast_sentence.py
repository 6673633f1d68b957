"""MiniLM's faster stand-ins: the int8 export, the static encoder distilled from it and the static student fitted
to its sentence vectors, each written once under the data home, near MiniLM, served without torch; and their arithmetic."""

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
    for name, encoder in (("text-v2-int8", "minilm-int8-v1"), ("text-v2-static", "minilm-static-v1"),
                          ("text-v2-student", "minilm-student-v1")):
        cfg = probe_set.config(name)
        assert cfg["reference_encoder"] == encoder and reference.ENCODERS[encoder] == "text"
        assert {k: v for k, v in cfg.items() if k not in ("name", "reference_encoder")} == \
            {k: v for k, v in base.items() if k not in ("name", "reference_encoder")}


def test_ridge_towards_solves_the_ridge_problem_column_by_column():
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    B = sp.random(80, 30, density=0.2, random_state=1, format="lil", dtype=np.float32)
    B[:, 29] = 0  # a token no text has: it keeps its prior
    targets, prior = rng.normal(size=(80, 5)), rng.normal(size=(30, 5))
    got = fast_sentence.ridge_towards(sp.csr_matrix(B), targets, prior, 0.1, tol=1e-10)
    dense = B.toarray().astype(np.float64)
    exact = np.linalg.solve(dense.T @ dense + 0.1 * np.eye(30), dense.T @ targets + 0.1 * prior)
    np.testing.assert_allclose(got, exact, atol=1e-4)
    np.testing.assert_allclose(got[29], prior[29], atol=1e-5)


def test_the_pooling_matrix_is_the_mean_the_static_model_takes():
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    vectors = np.random.default_rng(2).normal(size=(30522, 8)).astype(np.float32)
    tokenizer = Tokenizer.from_file(str(sentence.encoder_path(sentence.MINILM) / "tokenizer.json"))
    model = StaticModel(vectors, tokenizer, normalize=True, max_length=fast_sentence.STUDENT_MAX_LENGTH)
    texts = ["the film was wonderful", "Stock prices FELL sharply on Monday!", "word " * 300, "a"]
    pooled = fast_sentence.mean_pooling_matrix(model, texts) @ vectors
    assert pooled.shape == (4, 8)
    expected = model.encode(texts, show_progress_bar=False, use_multiprocessing=False)
    np.testing.assert_allclose(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), expected, atol=1e-5)


def test_the_students_corpus_is_the_benchs_meta_training_text_and_nothing_held_out():
    from zoo2vec.eval import tasks

    config = tasks.load_config("bench")
    meta_text = {d for d in tasks.meta_training_datasets(config) if tasks.modality_of(d) == "text"}
    assert set(fast_sentence.STUDENT_CORPUS) == meta_text
    assert not set(fast_sentence.STUDENT_CORPUS) & (tasks.held_out_datasets(config) | tasks.new_domain_datasets(config))


@pytest.mark.integration
def test_the_student_is_fitted_once_and_keeps_minilms_geometry_better_than_static(fresh, isolated_home, monkeypatch):
    from zoo2vec.data.datasets import packaged

    monkeypatch.setattr(fast_sentence, "STUDENT_CORPUS", ("bbc-news",))  # packaged: a minute, and no shared data
    encoder = fast_sentence.student_encoder()
    path = fast_sentence.student_path()
    assert path.exists() and path.parent == isolated_home / "encoders" and "student" in path.name
    assert not list(path.parent.glob(".*partial*"))
    assert encoder.dim == 384 and fast_sentence.student_encoder() is encoder

    texts = [" ".join(str(x).split()) for x in packaged("bbc-news", "holdout").x[:60]]  # articles it was not fitted on
    student, minilm = reference.embed("minilm-student-v1", texts), reference.embed("minilm-v1", texts)
    assert np.sum(student * minilm, axis=1).mean() > 0.7  # in MiniLM's own space, near its vectors
    iu = np.triu_indices(len(texts), 1)
    kernel = {name: np.corrcoef((v @ v.T)[iu], (minilm @ minilm.T)[iu])[0, 1]
              for name, v in (("student", student), ("static", reference.embed("minilm-static-v1", texts)))}
    assert kernel["student"] > kernel["static"] + 0.05, kernel  # 0.74 vs 0.65, fitted on 1,558 articles

    fast_sentence._encoders.clear()  # a later process reads the vectors, fits nothing
    mtime = path.stat().st_mtime_ns
    np.testing.assert_allclose(reference.embed("minilm-student-v1", texts), student, atol=1e-6)
    assert path.stat().st_mtime_ns == mtime


def test_the_student_needs_the_shared_data_and_says_so(fresh, isolated_home, monkeypatch, tmp_path):
    from zoo2vec.errors import ConfigError

    from zoo2vec.data import shared

    shared.shared.cache_clear()  # datasets (and halves) another test loaded answer from the cache, not the folder
    shared.shared_half.cache_clear()
    monkeypatch.setenv("ZOO2VEC_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="fitted once on the texts of .*ZOO2VEC_DATA"):
        fast_sentence.corpus_texts(("bbc-news", "sst2"))
