import json

import pytest

from zoo2vec import ConfigError, ModelCard, ZooError
from zoo2vec.jobs.indexing import probe_set_names
from zoo2vec.zoo.layout import ZooLayout


def _model(layout: ZooLayout, name: str):
    folder = layout.model_folder(name)
    folder.mkdir(parents=True)
    ModelCard(name, "text").save(folder)
    return folder


def test_discover_finds_every_model_folder_in_name_order(tmp_path):
    layout = ZooLayout(tmp_path)
    b, a = _model(layout, "b-model"), _model(layout, "a-model")
    (layout.models / "no-card").mkdir()  # a format may say what the card would; indexing records it if none does
    (layout.models / ".a-model.tmp").mkdir()  # a recipe's half-built folder
    (layout.models / "stray.txt").write_text("not a model")
    assert list(layout.discover().items()) == [("a-model", a), ("b-model", b), ("no-card", layout.models / "no-card")]


def test_a_folder_without_models_is_not_a_zoo(tmp_path):
    with pytest.raises(ZooError, match="is not a zoo: it has no models/ folder"):
        ZooLayout(tmp_path).discover()


def test_sources_are_kept_in_the_manifest_once_and_resolved(tmp_path):
    layout = ZooLayout(tmp_path)
    assert layout.add_source("hf-cache", tmp_path / "cache")
    assert not layout.add_source("hf-cache", tmp_path / "cache")
    assert layout.sources() == [{"kind": "hf-cache", "path": str((tmp_path / "cache").resolve())}]
    assert layout.discover() == {}  # no models/ folder: the sources are the zoo
    layout.write_manifest({"sources": [{"kind": "hf-cache", "path": "rel/cache"}]})
    assert layout.sources()[0]["path"] == str(tmp_path / "rel" / "cache")
    layout.write_manifest({"sources": ["~/.cache"]})
    with pytest.raises(ZooError, match="'sources' must be a list"):
        layout.sources()


def test_manifest_round_trip_and_defaults(tmp_path):
    layout = ZooLayout(tmp_path)
    assert layout.manifest() == {} and layout.probe_sets() == {}
    layout.write_manifest({"name": "mine", "probe_sets": {"text": "text-v1"}})
    assert json.loads(layout.manifest_path.read_text())["name"] == "mine"
    assert probe_set_names(tmp_path)["text"] == "text-v1"
    assert probe_set_names(tmp_path)["image"]  # the default for what the manifest leaves out


@pytest.mark.parametrize("text, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"probe_sets": ["text-v1"]}', "must map a modality to a probe set name"),
])
def test_a_bad_manifest_is_a_clear_error(tmp_path, text, message):
    layout = ZooLayout(tmp_path)
    layout.manifest_path.write_text(text)
    with pytest.raises(ZooError, match=message):
        layout.probe_sets()


def test_an_unknown_probe_set_fails_before_any_model_is_probed(tmp_path):
    ZooLayout(tmp_path).write_manifest({"probe_sets": {"image": "image-v99"}})
    with pytest.raises(ConfigError, match="image-v99"):
        probe_set_names(tmp_path)
