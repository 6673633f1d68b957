import subprocess
import sys

import pytest

import zoo2vec
from zoo2vec.zoo.layout import ZooLayout


def test_exported_names_are_the_documented_surface():
    assert set(zoo2vec.__all__) == {
        "ConfigError", "FilterError", "IndexNotBuiltError", "MissingExtraError", "ModelCard", "ModelFailure",
        "SearchResult", "SearchResults", "Task", "TaskError", "UntrustedCheckpointError", "Zoo", "Zoo2VecError",
        "ZooError", "open",
    }
    for name in zoo2vec.__all__:
        assert getattr(zoo2vec, name) is not None


def test_import_is_light():
    code = ("import sys, zoo2vec; heavy = [m for m in ('torch', 'faiss', 'duckdb', 'streamlit', 'sentence_transformers',"
            " 'open_clip', 'ray', 'sklearn') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_error_is_a_zoo2vec_error():
    for name in zoo2vec.__all__:
        obj = getattr(zoo2vec, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, zoo2vec.Zoo2VecError)


def test_missing_extra_names_the_extra(monkeypatch):
    from zoo2vec.errors import require

    monkeypatch.setitem(sys.modules, "streamlit", None)
    with pytest.raises(zoo2vec.MissingExtraError, match=r"zoo2vec\[ui\]"):
        require("streamlit", "ui")


def test_open_missing_zoo_says_how_to_build_it():
    with pytest.raises(zoo2vec.ZooError, match="zoo2vec demo"):
        zoo2vec.open()


def test_unindexed_zoo_says_how_to_index(tmp_path):
    ZooLayout(tmp_path).models.mkdir()
    with pytest.raises(zoo2vec.IndexNotBuiltError, match="zoo2vec index"):
        zoo2vec.open(tmp_path).search(text="anything")


def test_open_without_a_path_honours_zoo2vec_zoo_like_the_cli(tiny_zoo_master, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from zoo2vec.cli import main

    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo_master))
    zoo = zoo2vec.open()
    assert zoo.root == tiny_zoo_master and len(zoo.models()) == 5
    cli = CliRunner().invoke(main, ["models", "--json"])
    assert sorted(zoo.models()["name"]) == sorted(r["name"] for r in json.loads(cli.stdout))
    assert zoo2vec.open(tiny_zoo_master / "models").root.name == "models"  # a path given wins over the variable
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tmp_path / "gone"))
    with pytest.raises(zoo2vec.ZooError, match=r"no zoo at .*gone: \$ZOO2VEC_ZOO names it"):
        zoo2vec.open()
    monkeypatch.setenv("ZOO2VEC_ZOO", "")  # set but empty: as unset
    with pytest.raises(zoo2vec.ZooError, match="zoo2vec demo"):
        zoo2vec.open()


def test_results_are_plain_json_with_every_field_and_ranges_filter(tiny_zoo_master):
    import json

    zoo = zoo2vec.open(tiny_zoo_master)
    results = zoo.search(text="handwritten digits", k=5, where={"params": [(">", 100), ("<", 1000)]})
    assert {r.name for r in results} == {"digits8-linear", "digits8-linear-parity"}
    for r in results:
        d = json.loads(json.dumps(r.to_dict()))  # plain values only
        assert d["model"] == r.name and d["params"] == r.card["params"] and d["license"] == r.card["license"]
        assert d["modality"] == "image" and d["verify_error"] is None and d["why"] == r.why and d["card"] == r.card
    frame = results.to_pandas()
    assert {"modality", "license", "params", "verify_error"} <= set(frame.columns)
    assert all(len(line) <= 100 for line in str(results).splitlines())
    assert str(zoo2vec.SearchResults()) == "(no models matched)"


def test_failures_are_the_current_ones(tiny_zoo):
    from zoo2vec.jobs.indexing import run_index

    assert zoo2vec.open(tiny_zoo).failures().empty
    (tiny_zoo / "models" / "not-a-model").mkdir()
    run_index(tiny_zoo, workers=1)
    run_index(tiny_zoo, workers=1)
    failures = zoo2vec.open(tiny_zoo).failures()
    assert list(failures["name"]) == ["not-a-model"] and list(failures["status"]) == ["failed"]
    (tiny_zoo / "models" / "not-a-model").rmdir()
    run_index(tiny_zoo, workers=1)
    zoo = zoo2vec.open(tiny_zoo)
    assert zoo.failures().empty and (zoo.runs()["status"] == "failed").sum() == 2
