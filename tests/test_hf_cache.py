"""Hugging Face cache snapshots as zoo models: their names, the scan of a cache, a zoo whose only source is one."""

import os
from pathlib import Path

import pytest

from zoo2vec import ZooError
from zoo2vec.errors import SkippedModel
from zoo2vec.train.formats import build_format_models, write_hf_cache
from zoo2vec.zoo.adapters import fingerprint, read_card
from zoo2vec.zoo.adapters.hf_cache import model_name, repo_and_revision, scan
from zoo2vec.zoo.discovery import discover, locate
from zoo2vec.zoo.layout import ZooLayout


def _snapshot(cache, repo, commit, refs=()):
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    folder = repo_dir / "snapshots" / commit
    folder.mkdir(parents=True)
    for ref in refs:
        (repo_dir / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)
    return folder


def test_a_snapshot_is_named_by_the_ref_that_points_at_it(tmp_path):
    commit = "a" * 40
    assert model_name(_snapshot(tmp_path, "acme/news-bert", commit, refs=["main", "v1"])) == "acme/news-bert@main"
    assert model_name(_snapshot(tmp_path, "acme/tagged", commit, refs=["v1"])) == "acme/tagged@v1"
    assert model_name(_snapshot(tmp_path, "acme/branch", commit, refs=["feature/x"])) == "acme/branch@feature-x"
    assert model_name(_snapshot(tmp_path, "acme/old", commit)) == "acme/old@aaaaaaaaaaaa"
    assert repo_and_revision(tmp_path) is None and repo_and_revision(tmp_path / "acme") is None


def test_a_snapshot_in_no_format_is_skipped_with_the_formats_zoo2vec_reads(tmp_path):
    folder = _snapshot(tmp_path, "acme/gguf-llm", "b" * 40, refs=["main"])
    (folder / "model.gguf").write_text("weights")
    with pytest.raises(SkippedModel, match=r"acme/gguf-llm@main .* no classifier zoo2vec reads(.|\n)*onnx:"):
        read_card(folder)


def test_scanning_what_is_no_cache_says_where_to_point(tmp_path):
    with pytest.raises(ZooError, match="no Hugging Face cache at .*hub folder"):
        scan(tmp_path / "nowhere")
    ZooLayout(tmp_path / "zoo").write_manifest({"sources": [{"kind": "ftp", "path": "x"}]})
    with pytest.raises(ZooError, match="unknown source kind 'ftp'"):
        discover(tmp_path / "zoo")


def test_a_cached_model_is_found_read_and_fingerprinted_where_it_lies(tmp_path):
    built = build_format_models(tmp_path / "built", names=["skops-digits8-logreg"])["skops-digits8-logreg"]
    cache = write_hf_cache(tmp_path / "hub", {"acme/digits": built})
    zoo = tmp_path / "zoo"
    assert ZooLayout(zoo).add_source("hf-cache", cache)
    found = discover(zoo)
    assert list(found) == ["acme/digits@main"] and locate(zoo, "acme/digits@main") == found["acme/digits@main"]
    resolved = read_card(found["acme/digits@main"])
    card = resolved.card
    assert card.name == "acme/digits@main" and card.file_name == "acme--digits@main"
    assert card.adapter["kind"] == "hf-cache" and card.adapter["format"] == "skops"
    assert card.label_names == tuple(str(d) for d in range(10)) and card.input_shape == (1, 8, 8)
    assert resolved.origin["name"].startswith("the cache folder")
    snapshot = found["acme/digits@main"]
    first = fingerprint(snapshot)
    real_open = Path.open

    def no_blob_reads(self, *args, **kwargs):
        assert "blobs" not in self.resolve().parts, f"{self} was read: a blob's name is its hash already"
        return real_open(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "open", no_blob_reads)
        assert fingerprint(snapshot) == first
    link = snapshot / "model.skops"  # the same file under another blob (new content) is another fingerprint
    blob = link.resolve()
    renamed = blob.with_name("f" * 64)
    blob.rename(renamed)
    link.unlink()
    link.symlink_to(os.path.relpath(renamed, link.parent))
    assert fingerprint(snapshot) != first
    with pytest.raises(ZooError, match="neither under"):
        locate(zoo, "acme/other@main")


def test_index_hf_cache_keeps_the_cache_as_a_source_and_indexes_it(tmp_path):
    import json

    from click.testing import CliRunner

    import zoo2vec
    from zoo2vec.cli import main

    built = build_format_models(tmp_path / "built", names=["skops-digits8-logreg"])["skops-digits8-logreg"]
    cache = write_hf_cache(tmp_path / "hub", {"acme/digits": built})
    zoo = tmp_path / "zoo"
    bad = CliRunner().invoke(main, ["index", str(zoo), "--hf-cache", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "no Hugging Face cache at" in bad.output and not (zoo / "zoo.json").exists()
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(main, ["index", str(zoo), "--hf-cache", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "holds no Hugging Face models" in empty.output
    (tmp_path / "other-zoo" / "models").mkdir(parents=True)  # the option swallowed the zoo's path
    swapped = CliRunner().invoke(main, ["index", "--hf-cache", str(tmp_path / "other-zoo")])
    assert swapped.exit_code == 2 and "is a zoo, not a Hugging Face cache" in swapped.output
    first = CliRunner().invoke(main, ["index", str(zoo), "--hf-cache", str(cache)])
    assert first.exit_code == 0, first.output
    assert "added the Hugging Face cache" in first.output and "1 models indexed (1 probed" in first.output
    assert json.loads((zoo / "zoo.json").read_text())["sources"] == [{"kind": "hf-cache", "path": str(cache.resolve())}]
    again = CliRunner().invoke(main, ["index", str(zoo)])  # the source is kept: nothing to probe again
    assert again.exit_code == 0 and "(0 probed, 1 unchanged)" in again.output
    found = zoo2vec.open(zoo).search(text="8x8 optical digit recognition", k=1)[0]
    assert found.name == "acme/digits@main" and found.card["license"] == "mit"
