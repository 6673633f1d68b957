import numpy as np
import pytest

from zoo2vec.encoders import know2vec


def test_kernel_sketch_estimates_exact_alignment():
    rng = np.random.default_rng(3)
    errors = []
    for _ in range(10):
        a = rng.dirichlet(np.full(10, 0.3), size=512)
        b = 0.5 * a[:, rng.permutation(10)[:4]] + rng.dirichlet(np.full(4, 0.3), size=512)
        sketch = float(know2vec.kernel_vector(a) @ know2vec.kernel_vector(b))
        errors.append(abs(sketch - know2vec.linear_cka(a, b)))
    assert max(errors) < 0.06
    a = rng.dirichlet(np.ones(5), size=512)
    assert abs(float(know2vec.kernel_vector(a) @ know2vec.kernel_vector(a)) - 1) < 1e-5
    # permuting or relabelling a model's classes does not change what it knows
    assert abs(float(know2vec.kernel_vector(a) @ know2vec.kernel_vector(a[:, ::-1])) - 1) < 1e-5


def test_concepts_are_output_weighted_means():
    emb = np.eye(4, dtype=np.float32)
    probs = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    k = know2vec.encode_model(probs, emb)
    assert np.allclose(k.concepts[0], [2 ** -0.5, 2 ** -0.5, 0, 0], atol=1e-6)
    assert np.allclose(k.concept_mass, [0.5, 0.5]) and k.confidence == 1.0 and k.entropy < 1e-6


def test_concept_match_penalises_missing_concepts():
    emb = np.eye(3, dtype=np.float32)
    task = know2vec.encode_task(emb, np.array([0, 1, 2]), emb)
    three, matched = know2vec.concept_match(task, ["a", "b", "c"], emb, ["x", "y", "z"])
    assert three == 1.0 and [m.model_concept for m in matched] == ["x", "y", "z"]
    two, matched = know2vec.concept_match(task, ["a", "b", "c"], emb[:2], ["x", "y"])
    assert abs(two - 2 / 3) < 1e-6 and matched[2].model_concept is None


def test_concept_match_says_how_clearly_each_class_matched():
    task = know2vec.encode_task(np.eye(2, dtype=np.float32), np.array([0, 1]), np.eye(2, dtype=np.float32))
    concepts = np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.float32)  # the second concept is close to the first class too
    _, matched = know2vec.concept_match(task, ["a", "b"], concepts, ["x", "y"])
    assert [m.model_concept for m in matched] == ["x", "y"]
    assert matched[0].margin == pytest.approx(1.0 - 0.8) and matched[1].margin == pytest.approx(0.6 - 0.0)


def test_scaled_probe_sets_keep_the_base_mix_at_another_size():
    from zoo2vec.encoders import probe_set

    base, big = probe_set.config("image-v1"), probe_set.config("image-v1-n1024")
    assert sum(p["n"] for p in big["parts"]) == 1024
    assert [p["kind"] for p in big["parts"]] == [p["kind"] for p in base["parts"]]
    assert big["reference_encoder"] == base["reference_encoder"] and big["name"] == "image-v1-n1024"
    assert probe_set.config("image-v1-clip")["reference_encoder"] == "clip-v1"
    assert probe_set.config("image-v1-clip")["parts"] == base["parts"]
    assert len({probe_set.version(n) for n in ("image-v1", "image-v1-n1024", "image-v1-clip")}) == 3
    assert len(probe_set.load("image-v1-n256")) == 256


def test_surrogate_outputs_stand_in_for_running_the_model():
    """A sample that sits on a probe input gets the model's outputs there; the transferability of surrogate outputs
    ranks a model whose probe decisions separate the task's classes above one whose decisions do not."""
    from zoo2vec.encoders.alignment import surrogate_scores

    probes = np.eye(4, dtype=np.float32)
    samples = probes[[0, 1, 2, 3]]
    task = know2vec.encode_task(samples, np.array([0, 0, 1, 1]), probes)
    separates = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]], dtype=np.float32)
    blind = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    np.testing.assert_allclose(task.surrogate_outputs(separates), separates, atol=1e-3)  # neighbours: itself first
    good = surrogate_scores(task.surrogate_outputs(separates), task.labels)
    bad = surrogate_scores(task.surrogate_outputs(blind), task.labels)
    assert good["surrogate_leep"] > bad["surrogate_leep"] and good["surrogate_nce"] > bad["surrogate_nce"]
    assert task.neighbours.shape == task.weights.shape == (4, 4)
    np.testing.assert_allclose(task.weights.sum(axis=1), 1.0, rtol=1e-5)


def test_surrogate_scores_side_by_side_equal_each_model_alone():
    """The candidates' surrogate scores computed together are each model's computed alone; a model without kept
    outputs gets zeros wherever it sits in the list."""
    from zoo2vec.encoders.alignment import surrogate_scores, surrogate_scores_side_by_side

    rng = np.random.default_rng(5)
    probes = rng.standard_normal((60, 8)).astype(np.float32)
    samples = rng.standard_normal((30, 8)).astype(np.float32)
    task = know2vec.encode_task(samples, rng.integers(0, 3, 30), probes)
    outputs = [rng.dirichlet(np.ones(c), 60).astype(np.float32) for c in (2, 10, 3)]
    outputs.insert(1, None)
    together = surrogate_scores_side_by_side(task, outputs, task.labels)
    alone = [surrogate_scores(None if o is None else task.surrogate_outputs(o), task.labels) for o in outputs]
    for t, a in zip(together, alone):
        assert t.keys() == a.keys() and t == pytest.approx(a, rel=1e-5, abs=1e-7)
    assert together[1] == {"surrogate_leep": 0.0, "surrogate_nce": 0.0} and together[0] != together[2]
    assert surrogate_scores_side_by_side(task, [None], task.labels) == [alone[1]]
