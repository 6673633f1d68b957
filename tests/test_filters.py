import numpy as np
import pytest

from zoo2vec import FilterError
from zoo2vec.index.filters import parse, to_sql


def test_values_are_bound_never_spliced():
    evil = "mit'; DROP TABLE models; --"
    clause, params = to_sql({"license": evil, "params": ("<", 5e6), "tags": "digits"})
    assert evil.lower() not in clause and "DROP" not in clause
    assert params == [evil.lower(), 5e6, "digits"]
    assert clause.count("?") == 3


@pytest.mark.parametrize("where, message", [
    ({"colour": "red"}, "unknown filter field 'colour'. Available: name, modality"),
    ({"params": ("~~", 3)}, "unknown operator"),
    ({"params": "big"}, "needs a number"),
    ({"license": ("<", "mit")}, "needs a numeric or date field"),
    ({"tags": ("<", 3)}, "needs a numeric or date field"),
    ({"indexed_at": (">=", "yesterday")}, "needs a date like 2026-11-27"),
    ({"indexed_at": ("contains", "2026")}, "is a date"),
    ({"license": []}, "matches nothing"),
    ({"license": {"a": 1}}, "needs a text value"),
    ("license=mit", "must be a dict"),
])
def test_bad_filters_say_what_is_wrong(where, message):
    with pytest.raises(FilterError, match=message):
        to_sql(where)


def test_date_indexed_filter_on_a_real_catalog(tiny_zoo_master):
    """indexed_at takes days or times; a day given with = means that whole day."""
    import datetime as dt

    import zoo2vec

    zoo = zoo2vec.open(tiny_zoo_master)
    indexed = zoo.models()["indexed_at"]
    day = indexed.min().date()
    everything = len(indexed)
    assert len(zoo.search(text="digits", k=50, where={"indexed_at": day.isoformat()})) == (indexed.dt.date == day).sum()
    assert len(zoo.search(text="digits", k=50, where={"indexed_at": (">=", dt.datetime(2000, 1, 1))})) == everything
    assert len(zoo.search(text="digits", k=50, where={"indexed_at": ("<", "2000-01-01")})) == 0
    later = (indexed.max() + dt.timedelta(seconds=1)).isoformat()
    assert len(zoo.search(text="digits", k=50, where=parse([f"indexed_at<{later}"]))) == everything


def test_parse_cli_expressions():
    assert parse(["license=mit,apache-2.0", "params<=1e6", "source~demo", "tags=digits"]) == {
        "license": ["mit", "apache-2.0"], "params": ("<=", "1e6"), "source": ("contains", "demo"),
        "tags": ("=", "digits")}
    with pytest.raises(FilterError, match="FIELD OP VALUE"):
        parse(["license mit"])
    with pytest.raises(FilterError, match="given twice"):
        parse(["license=mit", "license=bsd"])


def test_vector_index_filters_and_picks_its_type():
    import numpy as np

    from zoo2vec.index.vector_index import VectorIndex, choose_factory

    assert choose_factory(1000) == "Flat" and choose_factory(1_000_000) == "IVF1024,Flat"
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    ids = np.arange(100, 300)
    flat = VectorIndex.build(ids, vectors)
    exact = np.argsort(-(vectors @ vectors[5]))
    found, _ = flat.search(vectors[5], 3)
    assert found.tolist() == (ids[exact[:3]]).tolist()
    allowed = ids[1::7]
    found, _ = flat.search(vectors[5], 50, allowed)
    assert set(found.tolist()) == set(allowed.tolist())  # a selective filter still fills k
    ivf = VectorIndex.build(ids, vectors, factory="IVF4,Flat")
    found, _ = ivf.search(vectors[5], 3)
    assert found.tolist() == (ids[exact[:3]]).tolist()  # nprobe covers every list here: exact


def test_a_selective_filter_on_an_inverted_file_returns_the_exact_filtered_top_k():
    import numpy as np

    from zoo2vec.index.vector_index import VectorIndex

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(20_000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(20_000) * 7  # model ids need not be sequential
    ivf = VectorIndex.build(ids, vectors, factory="IVF256,Flat")
    assert ivf.nprobe == 16  # probes 16 of 256 lists unless the filter is selective
    for row in range(10):
        allowed = np.sort(rng.choice(ids, 200, replace=False))  # 1% of the index
        found, scores = ivf.search(vectors[row], 10, allowed)
        keep = np.isin(ids, allowed)
        exact = np.sort(vectors[keep] @ vectors[row])[::-1][:10]
        assert len(found) == 10 and set(found.tolist()) <= set(allowed.tolist())
        assert np.allclose(scores, exact, atol=1e-5)


def test_a_loaded_index_uses_the_gpus_only_where_faiss_has_some(tmp_path, monkeypatch):
    import faiss

    from zoo2vec.index.vector_index import VectorIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    VectorIndex.build(np.arange(300), vectors).save(tmp_path / "x.faiss")
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    loaded = VectorIndex.load(tmp_path / "x.faiss")
    assert (loaded.gpu is not None) == (gpus > 0)
    exact = np.argsort(-(vectors @ vectors[7]))[:5]
    assert list(loaded.search(vectors[7], 5)[0]) == list(exact)  # on the GPUs where there are some
    assert list(loaded.search(vectors[7], 5, allowed=exact[2:])[0]) == list(exact[2:])  # filtered: the CPU copy
    monkeypatch.setenv("ZOO2VEC_FAISS_GPU", "0")
    assert VectorIndex.load(tmp_path / "x.faiss").gpu is None
