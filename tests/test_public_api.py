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
