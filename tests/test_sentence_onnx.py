"""The reference space's sentence encoder answers from an ONNX export in a fresh process: same vectors, no torch."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from zoo2vec.zoo import sentence

TEXTS = ["handwritten digit recognition", "news topic classification " * 80, "", "Ünïcödé 漢字 ✓", "a"]


@pytest.fixture
def fresh(monkeypatch):
    """No encoder loaded yet in this process, as in a new one."""
    monkeypatch.setattr(sentence, "_models", {})


def test_the_first_load_writes_an_export_that_gives_the_same_vectors(fresh, isolated_home):
    assert not list(isolated_home.glob("encoders/*.onnx"))
    torch_side = sentence.sentence_encoder()
    torch_side.model  # loading the network writes the export
    export = sentence.onnx_export_path(sentence.MINILM)
    assert export.exists() and export.parent == isolated_home / "encoders"
    assert not list(export.parent.glob(".*partial"))  # written whole, then renamed

    sentence._models.clear()  # a later process: the export is there
    fast = sentence.reference_encoder()
    assert isinstance(fast, sentence.OnnxSentenceEncoder) and fast.dim == torch_side.dim == 384
    ours, theirs = fast.encode(TEXTS, memo=False), torch_side.encode(TEXTS, memo=False)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # truncation at 128 tokens and padding included
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(fast.encode(TEXTS[:2]), fast.encode(TEXTS[:2]))  # the memo returns what it stored
    # more texts than a batch, lengths mixed: batched by length, yet each row is its own text's vector, in order
    many = [" ".join(["word"] * n) + f" {i}" for i, n in enumerate(np.random.default_rng(0).integers(1, 60, 37))]
    np.testing.assert_allclose(fast.encode(many, memo=False), torch_side.encode(many, memo=False), atol=1e-5)
    assert fast.encode([]).shape == (0, 384)


def test_a_process_that_loaded_sentence_transformers_keeps_using_it(fresh):
    loaded = sentence.sentence_encoder()
    assert sentence.reference_encoder() is loaded  # one encoder, one memo per process


def test_a_fresh_process_answers_a_text_query_without_importing_torch(fresh, isolated_home):
    sentence.sentence_encoder().model  # loading it writes the export, as the indexing job's first text does
    script = ("import sys\nfrom zoo2vec.encoders.reference import embed_text\n"
              "v = embed_text(['digits'])\nprint(v.shape, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ZOO2VEC_HOME": str(isolated_home)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "(1, 384) False", done.stdout


def test_a_damaged_export_is_said_and_sentence_transformers_answers(fresh, caplog):
    export = sentence.onnx_export_path(sentence.MINILM)
    export.parent.mkdir(parents=True)
    export.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger="zoo2vec.zoo.sentence"):
        encoder = sentence.reference_encoder()
    assert isinstance(encoder, sentence.SentenceEncoder)
    assert "cannot be loaded" in caplog.text and str(export) in caplog.text


def test_an_encoder_with_other_pooling_gets_no_export(tmp_path):
    folder = tmp_path / "cls-pooled"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "modules.json").write_text(json.dumps([{"type": t} for t in sentence._EXPORTABLE]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                                  "pooling_mode_mean_tokens": False}))
    assert sentence.onnx_export_path(str(folder)) is None
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    (folder / "model.safetensors").write_bytes(b"x")
    first = sentence.onnx_export_path(str(folder))
    (folder / "model.safetensors").write_bytes(b"xy")  # new weights: a new export
    assert first is not None and sentence.onnx_export_path(str(folder)) != first


def test_batches_seen_before_come_from_disk_without_loading_the_network(fresh, isolated_home, monkeypatch):
    first = sentence.sentence_encoder()
    vectors = first.encode(TEXTS)
    assert not (isolated_home / "encoders" / "memo").exists()  # only where asked: a user's samples stay in memory
    monkeypatch.setitem(sentence._ON_DISK, "keep", True)  # as in the indexing job's workers
    sentence._models.clear()
    np.testing.assert_allclose(sentence.sentence_encoder().encode(TEXTS), vectors, atol=1e-6)
    kept = list((isolated_home / "encoders" / "memo").rglob("*.npy"))
    assert len(kept) == 1 and not list(kept[0].parent.glob(".*"))  # one batch, written whole
    sentence._models.clear()  # a later worker, or the next night's run
    later = sentence.sentence_encoder()
    np.testing.assert_array_equal(later.encode(TEXTS), vectors)
    assert later._model is None  # answered from disk: the network was never loaded
    np.testing.assert_allclose(later.encode(TEXTS[:2]), vectors[:2], atol=1e-6)  # another batch: computed
    assert later._model is not None and len(list(kept[0].parent.glob("*.npy"))) == 2
    kept[0].write_bytes(b"damaged")  # a damaged file is computed again and replaced
    np.testing.assert_allclose(sentence.SentenceEncoder(sentence.MINILM).encode(TEXTS), vectors, atol=1e-6)
    np.testing.assert_array_equal(np.load(kept[0]), later.encode(TEXTS))
