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


def test_a_range_is_two_conditions_on_one_field_each_value_bound():
    clause, params = to_sql({"params": [(">", 100), ("<", 1e6)]})
    assert clause == "params > ? AND params < ?" and params == [100.0, 1e6]
    assert to_sql({"params": [[">", 100], ["<", 1e6]]}) == (clause, params)  # the same from JSON, which has no tuples
    clause, params = to_sql({"license": [("in", ["mit", "bsd"]), ("!=", "bsd")], "tags": [("=", "a"), ("=", "b")]})
    assert clause.count("?") == len(params) == 5 and "mit" not in clause
    for bad, message in (([(">", 100), ("<", float("nan"))], "finite number"), ([(">", 1), ("<", float("inf"))], "finite"),
                         ([(">", 1), 5], "no \\(operator, value\\) pair"), ([(">", 1), ("~~", 5)], "no \\(operator"),
                         ([(">", 1), ("<", "big")], "needs a number")):
        with pytest.raises(FilterError, match=message):
            to_sql({"params": bad})


def test_parse_a_field_given_twice_meets_both():
    assert parse(["params>100", "params<1e6"]) == {"params": [(">", "100"), ("<", "1e6")]}
    assert parse(["license=mit,bsd", "license!=bsd", "license=mit"]) == {
        "license": [("in", ["mit", "bsd"]), ("!=", "bsd"), ("=", "mit")]}
    with pytest.raises(FilterError, match="finite"):
        to_sql(parse(["params>1", "params<nan"]))


def _names(zoo, where):
    return {r.name for r in zoo.search(text="digits", k=50, where=where)}


def test_range_filters_on_a_real_catalog(tiny_zoo_master):
    import zoo2vec

    zoo = zoo2vec.open(tiny_zoo_master)
    params = dict(zip(zoo.models()["name"], zoo.models()["params"]))
    for low, high in ((100, 1000), (200, 1e6), (1000, 5e6)):
        expected = {n for n, p in params.items() if low < p < high}
        assert expected and expected != set(params)  # each range keeps some models and drops others
        assert _names(zoo, {"params": [(">", low), ("<", high)]}) == expected
        assert _names(zoo, parse([f"params>{low}", f"params<{high}"])) == expected
    assert _names(zoo, {"params": [(">", 1000), ("<", 100)]}) == set()


def test_a_card_without_params_is_counted_from_its_safetensors_header(tiny_zoo_master, tmp_path):
    import json
    import shutil

    from zoo2vec.zoo.adapters import read_card
    from zoo2vec.zoo.hub_files import safetensors_params

    folder = tmp_path / "digits8-mlp-0to4"
    shutil.copytree(tiny_zoo_master / "models" / folder.name, folder)
    card = json.loads((folder / "card.json").read_text())
    stated = card.pop("params")
    (folder / "card.json").write_text(json.dumps(card))
    resolved = read_card(folder)
    assert resolved.card.params == stated == safetensors_params(folder / "model.safetensors")
    assert resolved.origin["params"] == "model.safetensors header"
    (folder / "card.json").write_text(json.dumps({**card, "params": 7}))
    assert read_card(folder).card.params == 7  # what a card says wins
    (folder / "card.json").write_text(json.dumps({**card, "adapter": {**card["adapter"], "file": "../elsewhere.safetensors"}}))
    assert read_card(folder).card.params is None  # a file outside the folder is not read


def _torchscript_model(folder):
    """A real TorchScript digits model: its card names no parameter count, and its format cannot tell one."""
    import json

    import torch

    from zoo2vec.zoo import architectures

    module = architectures.build("linear", {"input_shape": [1, 8, 8], "n_classes": 10}).eval()
    folder.mkdir()
    torch.jit.trace(module, torch.zeros(1, 1, 8, 8)).save(str(folder / "model.pt"))
    (folder / "card.json").write_text(json.dumps({
        "name": folder.name, "modality": "image", "input_shape": [1, 8, 8], "label_names": [str(i) for i in range(10)],
        "tags": ["digits"], "adapter": {"kind": "torchscript", "file": "model.pt"}}))


def test_unknown_params_are_dropped_by_every_params_condition_and_counted_where_weights_tell(tiny_zoo):
    import json

    import pandas as pd
    from click.testing import CliRunner

    import zoo2vec
    from zoo2vec.cli import main

    _torchscript_model(tiny_zoo / "models" / "digits8-script")
    card_file = tiny_zoo / "models" / "digits8-mlp-0to4" / "card.json"
    card = json.loads(card_file.read_text())
    stated = card.pop("params")
    card_file.write_text(json.dumps(card))
    result = CliRunner().invoke(main, ["index", str(tiny_zoo), "--workers", "1"])
    assert result.exit_code == 0, result.output
    zoo = zoo2vec.open(tiny_zoo)
    params = dict(zip(zoo.models()["name"], zoo.models()["params"]))
    assert params["digits8-mlp-0to4"] == stated  # counted from its weights at indexing
    assert pd.isna(params["digits8-script"])
    assert "digits8-script" in _names(zoo, None) and "digits8-script" in _names(zoo, {"tags": "digits"})
    for where in ({"params": (">", 0)}, {"params": ("<", 1e12)}, {"params": ("!=", 5)},
                  {"params": [(">", 0), ("<", 1e12)]}, {"params": [1, 2]}):
        assert "digits8-script" not in _names(zoo, where), where
    assert "digits8-mlp-0to4" in _names(zoo, {"params": [(">", 0), ("<", 1e12)]})
    cli = CliRunner().invoke(main, ["search", str(tiny_zoo), "--text", "digits", "--where", "params>0", "--json"])
    assert cli.exit_code == 0, cli.output
    assert "digits8-script" not in {json.loads(line)["model"] for line in cli.stdout.splitlines()}
    assert "1 model(s) with no known parameter count are left out by the params filter" in cli.stderr
    plain = CliRunner().invoke(main, ["search", str(tiny_zoo), "--text", "digits", "--where", "tags=digits"])
    assert "no known parameter count" not in plain.stderr
