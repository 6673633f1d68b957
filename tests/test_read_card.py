"""Cards inferred from a model folder's own files, card.json overriding them field by field, and the folders that
are no model: read_card's merge, the errors it gives, and what indexing records."""

import json

import pytest
from click.testing import CliRunner
from conftest import installed_distribution

from zoo2vec import ModelCard, ZooError
from zoo2vec.cli import main
from zoo2vec.errors import SkippedModel
from zoo2vec.jobs.indexing import run_index
from zoo2vec.zoo import adapters
from zoo2vec.zoo.adapters import Inferred, read_card
from zoo2vec.zoo.layout import ZooLayout


def _detect(folder):
    """A format whose folders hold labels.txt; 'not-a-classifier' in it marks a model zoo2vec skips."""
    path = folder / "labels.txt"
    if not path.is_file():
        return None
    labels = path.read_text().split()
    if labels == ["not-a-classifier"]:
        raise SkippedModel(f"{folder.name}: an encoder without a classification head")
    return Inferred({"modality": "text", "label_names": labels, "license": "apache-2.0", "tags": ["lines"],
                     "adapter": {"kind": "lines", "file": "labels.txt"}},
                    {"label_names": "labels.txt", "license": "labels.txt", "tags": "labels.txt", "modality": "labels.txt"})


LINES_FORMAT = """
import numpy as np


class Constant:
    def __init__(self, card):
        self.card = card

    def predict(self, batch):
        return np.tile([0.25, 0.75], (len(batch), 1))


def load(source):
    return Constant(source.card)
"""


@pytest.fixture
def lines_format(tmp_path, monkeypatch):
    """The 'lines' format: its loader comes by entry point from a package on sys.path, so that the worker processes
    that load models find it too; its detector is set here, in the process that reads the cards."""
    installed_distribution(tmp_path / "lines-site", "z2v_lines_format", LINES_FORMAT,
                           "[zoo2vec.adapters]\nlines = z2v_lines_format:load\n", monkeypatch)
    adapters._own()
    monkeypatch.setitem(adapters._DETECTORS, "lines", (50, _detect))
    monkeypatch.setitem(adapters._EXPECTS, "lines", "a labels.txt")


def _folder(root, name, labels="ham spam", card=None):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "labels.txt").write_text(labels)
    if card is not None:
        (folder / "card.json").write_text(json.dumps(card))
    return folder


def test_a_card_is_inferred_from_the_files_and_named_after_the_folder(tmp_path, lines_format):
    resolved = read_card(_folder(tmp_path, "spam-lines"))
    assert resolved.card.name == "spam-lines" and resolved.card.label_names == ("ham", "spam")
    assert resolved.card.adapter == {"kind": "lines", "file": "labels.txt"}
    assert resolved.origin["label_names"] == "labels.txt" and resolved.origin["name"] == "the folder's name"


def test_card_json_overrides_field_by_field(tmp_path, lines_format):
    folder = _folder(tmp_path, "spam-lines", card={"license": "mit", "adapter": {"kind": "lines", "extra": 1}})
    resolved = read_card(folder)
    assert resolved.card.license == "mit" and resolved.origin["license"] == "card.json"
    assert resolved.card.label_names == ("ham", "spam") and resolved.origin["label_names"] == "labels.txt"
    assert resolved.card.adapter == {"kind": "lines", "file": "labels.txt", "extra": 1}  # merged, card.json's keys win


def test_a_complete_card_of_a_format_without_a_detector_is_read_as_written(tmp_path):
    card = ModelCard("served", "text", label_names=["a", "b"], adapter={"kind": "http", "url": "http://x"})
    card.save(tmp_path)
    resolved = read_card(tmp_path)
    assert resolved.card == card and set(resolved.origin.values()) == {"card.json"}
    bare = tmp_path / "no-adapter"  # a whole card that names no adapter reads; loading says what is missing
    bare.mkdir()
    ModelCard("no-adapter", "text", label_names=["a", "b"]).save(bare)
    assert read_card(bare).card.name == "no-adapter"
    with pytest.raises(ZooError, match="unknown adapter kind None"):
        adapters.load_model(bare)


def test_a_folder_that_is_no_model_names_the_formats_it_could_be(tmp_path, lines_format):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ZooError, match="none of the formats") as err:
        read_card(tmp_path)
    assert "lines: a labels.txt" in str(err.value) and "hf-cache:" in str(err.value)
    with pytest.raises(ZooError, match="unknown card field"):
        read_card(_folder(tmp_path, "typo", card={"licence": "mit"}))


def test_indexing_records_folders_that_are_no_model_and_skips_non_classifiers(tiny_zoo, lines_format):
    models = ZooLayout(tiny_zoo).models
    (models / "empty-folder").mkdir()
    _folder(models, "encoder-only", labels="not-a-classifier")
    _folder(models, "spam-lines")
    report = run_index(tiny_zoo)
    assert "none of the formats" in report.failed["empty-folder"]
    assert report.skipped == {"encoder-only": "encoder-only: an encoder without a classification head"}
    assert "spam-lines" in report.probed and len(report.reused) == 5
    assert "1 skipped" in report.summary() and "skipped encoder-only" in report.summary()


def test_card_command_prints_each_field_and_where_it_came_from(tmp_path, lines_format):
    folder = _folder(tmp_path, "spam-lines", card={"license": "mit"})
    out = CliRunner().invoke(main, ["card", str(folder)])
    assert out.exit_code == 0, out.output
    rows = {line.split()[0]: line for line in out.output.splitlines()}
    assert rows["license"].endswith("card.json") and rows["label_names"].endswith("labels.txt")
    assert rows["params"].endswith("default")
    as_json = CliRunner().invoke(main, ["card", "--json", str(folder)])
    assert json.loads(as_json.output)["label_names"] == ["ham", "spam"]
    (tmp_path / "nothing").mkdir()
    bad = CliRunner().invoke(main, ["card", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "none of the formats" in bad.output
    a_file = CliRunner().invoke(main, ["card", str(folder / "labels.txt")])
    assert a_file.exit_code == 2 and "is not a folder" in a_file.output


def test_an_adapter_file_and_what_it_links_to_stay_in_the_model_folder(tmp_path):
    from zoo2vec.zoo.adapters import inside

    folder = tmp_path / "zoo" / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_text("x")
    (tmp_path / "secret.onnx").write_text("x")
    (folder / "link.onnx").symlink_to(tmp_path / "secret.onnx")
    dotted = tmp_path / "zoo" / ".." / "zoo" / "models" / "m"  # `zoo2vec index ../zoo` must still work
    assert inside(dotted, "model.onnx") is not None and inside(folder, "sub/../model.onnx") is not None
    assert inside(folder, "../../secret.onnx") is None and inside(folder, "link.onnx") is None
    snapshot = tmp_path / "hub" / "models--acme--m" / "snapshots" / "abc"  # a cache's links into its blobs are fine
    snapshot.mkdir(parents=True)
    blob = tmp_path / "hub" / "models--acme--m" / "blobs" / "0123"
    blob.parent.mkdir()
    blob.write_text("x")
    (snapshot / "model.onnx").symlink_to("../../blobs/0123")
    assert inside(snapshot, "model.onnx") == snapshot / "model.onnx"


def test_a_card_inferred_anew_from_the_same_files_is_indexed_again_without_probing(tiny_zoo, lines_format, monkeypatch):
    import zoo2vec

    _folder(ZooLayout(tiny_zoo).models, "spam-lines")
    run_index(tiny_zoo)
    assert run_index(tiny_zoo).probed == []

    def relicensed(folder):
        found = _detect(folder)
        return found and Inferred({**found.fields, "license": "mit"}, found.origin)

    monkeypatch.setitem(adapters._DETECTORS, "lines", (50, relicensed))  # a newer zoo2vec reads the files better
    monkeypatch.setattr("zoo2vec.jobs.executors.start_pool", lambda *a, **k: pytest.fail("the probe outputs are cached"))
    report = run_index(tiny_zoo)
    assert report.probed == ["spam-lines"] and len(report.reused) == 5
    models = zoo2vec.open(tiny_zoo).models().set_index("name")
    assert models.loc["spam-lines", "license"] == "mit"
