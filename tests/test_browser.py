"""The app in a real browser: Debian's Chromium driven by Playwright against `zoo2vec serve` on loopback.

One tour through every page (a fresh app process and browser cost more than the steps): a text search reloaded from
its URL, a CSV whose columns are chosen in the page, a zip of labelled images with verify, the zoo map with the task
on it, a model page, a comparison and the index page. Screenshots go under the test's tmp_path, and also to
$ZOO2VEC_SCREENSHOTS (e.g. docs/screenshots) when set: the PNGs committed under docs/screenshots are made this way.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODELS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SEARCH_S = 120_000  # ms: the first search of a fresh app loads the encoders; verify runs models in workers

pytestmark = [
    pytest.mark.integration, pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is absent (apt-get install chromium; "
                                                      ".ci/run does)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BROKEN = "broken-news"  # a model whose card names a weights file that is not there


@pytest.fixture
def zoo_with_a_failure(tiny_zoo):
    """The tiny zoo plus a broken model, indexed again: the five models reused, the broken one failed."""
    import zoo2vec

    folder = tiny_zoo / "models" / BROKEN
    folder.mkdir()
    (folder / "card.json").write_text('{"name": "%s", "modality": "text", "adapter": {"kind": "onnx", "file": '
                                      '"model.onnx"}}' % BROKEN)
    report = zoo2vec.open(tiny_zoo).index()
    assert list(report.failed) == [BROKEN] and len(report.reused) == 5
    return tiny_zoo


@pytest.fixture
def app_url(zoo_with_a_failure, tmp_path):
    """`zoo2vec serve` on a copy of the tiny zoo, on a free loopback port; its URL once it answers."""
    tiny_zoo = zoo_with_a_failure
    port = free_port()
    cli = Path(sys.executable).parent / "zoo2vec"
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([str(cli), "serve", str(tiny_zoo), "--port", str(port), "--host", "127.0.0.1"],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"zoo2vec serve did not come up: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, 15)  # its own session: streamlit and anything it started
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'zoo2vec[test]' (playwright)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def digits_zip(make_task, path: Path) -> Path:
    """A zip of 8x8 digit images (PNG), one folder per class, from the held-out digits the other tests use."""
    from PIL import Image

    task = make_task("sklearn-digits", ["0", "1", "2"], shots=6)
    with zipfile.ZipFile(path, "w") as archive:
        for n, (sample, label) in enumerate(zip(task.samples, task.labels)):
            png = io.BytesIO()
            Image.fromarray((np.asarray(sample)[0] * 255).astype(np.uint8), mode="L").save(png, format="PNG")
            archive.writestr(f"digits/{task.label_names[label]}/{n}.png", png.getvalue())
    return path


NEWS = {"business": ["Shares in the bank rose after profits beat forecasts", "The firm cut jobs as sales slumped",
                     "Oil prices fell as the market braced for weak demand"],
        "sport": ["The striker scored twice in the cup final", "The champion won the title in five sets",
                  "The coach praised his defence after the narrow win"]}


def news_csv(path: Path) -> Path:
    """Labelled news in columns that are not text/label: id, topic, headline."""
    rows = [f"{n},{topic},{text}" for n, (topic, text) in enumerate(
        (topic, text) for topic, texts in NEWS.items() for text in texts)]
    path.write_text("id,topic,headline\n" + "\n".join(rows) + "\n")
    return path


def shoot(page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot under tmp_path, and a copy in $ZOO2VEC_SCREENSHOTS when set."""
    shot = tmp_path / "screenshots" / f"{name}.png"
    shot.parent.mkdir(exist_ok=True)
    # the app scrolls inside its main pane, not the page: a viewport as tall as the pane shows all of it
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))})
    page.wait_for_timeout(500)  # charts redraw at the new size
    page.screenshot(path=str(shot))
    page.set_viewport_size(size)
    wanted = os.environ.get("ZOO2VEC_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(wanted) / shot.name)


def settle(page) -> None:
    """Wait until the app has finished running its script: Streamlit shows its running indicator (after a moment)
    until then."""
    from playwright.sync_api import TimeoutError as Timeout

    running = page.get_by_test_id("stStatusWidget")
    try:
        running.wait_for(state="visible", timeout=1500)
    except Timeout:
        pass
    running.wait_for(state="hidden", timeout=SEARCH_S)
    page.wait_for_timeout(300)


def see(page, text: str, timeout: float = 30_000):
    """The first element showing `text`, once it is visible."""
    found = page.get_by_text(text).first
    found.wait_for(state="visible", timeout=timeout)
    return found


def results_shown(page) -> list[str]:
    """The titles of the result expanders ("1. name · score 0.731 · measured 0.822"), in order."""
    titles = [t.strip().splitlines()[-1] for t in page.locator("[data-testid='stExpander'] summary").all_inner_texts()]
    return [t for t in titles if re.match(r"\d+\. ", t)]


def grid_rows(page, n: int = 0) -> list[str]:
    """The rows (header first) of the n-th st.dataframe on the page, as text: the grid draws on a canvas, and keeps an
    accessible copy of its rows in the page."""
    return page.get_by_test_id("stDataFrame").nth(n).locator("[role=row]").all_inner_texts()


def search(page) -> None:
    page.get_by_test_id("stBaseButton-primaryFormSubmit").click()


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`."""
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).locator("input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_a_tour_of_every_page(page, app_url, tmp_path, make_task):  # page first: no playwright, no zoo built
    try:
        tour(app_url, page, tmp_path, make_task)
    except BaseException:
        page.screenshot(path=str(tmp_path / "failure.png"))  # what the page showed when the test gave up
        raise


def tour(app_url, page, tmp_path, make_task):
    # a search shared as a URL runs when the link is opened
    page.goto(f"{app_url}/?q=handwritten+digit+recognition&k=4")  # Search is the default page, at /
    page.get_by_text("Why each model").wait_for(timeout=SEARCH_S)
    settle(page)
    titles = results_shown(page)
    assert len(titles) == 4 and titles[0].startswith("1. digits8"), titles
    assert page.get_by_label("What do you need?").input_value() == "handwritten digit recognition"
    assert page.get_by_text("Download CSV").is_visible() and page.get_by_text("Download JSON").is_visible()

    # a table whose columns are not text/label: chosen in the page
    page.get_by_label("What do you need?").fill("")
    page.locator("input[type=file]").set_input_files(str(news_csv(tmp_path / "headlines.csv")))
    page.get_by_text("Text column").wait_for()
    choose(page, "Text column", "headline")
    choose(page, "Label column", "topic")
    search(page)
    page.get_by_text("Task from headlines.csv: text, 6 samples, classes business, sport").wait_for(timeout=SEARCH_S)
    settle(page)
    titles = results_shown(page)
    assert {t.split(" · ")[0].split(". ", 1)[1] for t in titles} == {"bbc-bow", "bbc-bow-business-tech"}, titles
    assert page.get_by_text("business→").first.is_visible()  # the best match's classes, spelled out

    # a zip of labelled images, the first two verified
    page.locator("input[type=file]").set_input_files(str(digits_zip(make_task, tmp_path / "digits.zip")))
    verify = page.get_by_role("spinbutton", name="Verify: run the first n on your samples (0 = off)")  # not its help
    verify.fill("2")
    verify.press("Enter")
    settle(page)
    search(page)
    page.get_by_text("Task from digits.zip: image, 18 samples, classes 0, 1, 2").wait_for(timeout=SEARCH_S)
    settle(page)
    titles = results_shown(page)
    assert sum("measured" in t for t in titles) == 2 and all(t.split(". ", 1)[1].startswith("digits8") for t in titles)
    assert page.get_by_text("0→0").first.is_visible()
    shoot(page, tmp_path, "search")

    # the zoo: every model in the table, and the task on the map
    page.get_by_role("link", name="Zoo").click()
    page.get_by_text("Map of what the models know").wait_for()
    settle(page)
    see(page, "5 of 5 models")
    rows = grid_rows(page)
    assert len(rows) == 6 and all(any(name in row for row in rows) for name in TINY_MODELS), rows
    see(page, "Each point is a model", SEARCH_S)
    assert not page.get_by_text("Search with labelled samples to see your task").count()  # the task is on it
    page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()
    page.get_by_label("Filter by name, description, training data or tag").fill("bbc")
    page.get_by_label("Filter by name, description, training data or tag").press("Enter")
    page.get_by_text("2 of 5 models").wait_for()
    page.get_by_label("Filter by name, description, training data or tag").fill("")
    page.get_by_label("Filter by name, description, training data or tag").press("Enter")
    page.get_by_text("5 of 5 models").wait_for()
    settle(page)
    shoot(page, tmp_path, "zoo")

    # the three best models compared on the same task, each measured
    page.get_by_role("link", name="Compare").click()
    see(page, "Your task from digits.zip")
    page.get_by_role("button", name="Compare", exact=True).click()
    see(page, "measured accuracy", SEARCH_S)
    settle(page)
    table = page.get_by_test_id("stTable").first
    header = [t.strip() for t in table.locator("thead th").all_inner_texts()]
    assert set(header[1:]) == {"digits8-mlp-0to4", "digits8-linear", "digits8-linear-parity"}, header
    measured = table.locator("tbody tr").filter(has_text="measured accuracy").locator("td").all_inner_texts()
    assert len(measured) == 3 and all(0.0 <= float(m) <= 1.0 for m in measured), measured
    shoot(page, tmp_path, "compare")

    # a model's page, opened by its URL
    page.goto(f"{app_url}/model?model=digits8-linear-parity")
    page.get_by_role("heading", name="digits8-linear-parity").wait_for()
    settle(page)
    for heading in ("Card", "Concepts found by probing", "Behaviour on the probe set", "Nearest models",
                    "Indexing history"):
        assert page.get_by_role("heading", name=heading).is_visible()
    assert page.get_by_role("link", name="digits8-linear").first.is_visible()  # a nearest model, linked
    assert page.get_by_text("Mean confidence").is_visible()
    shoot(page, tmp_path, "model")

    # the index: the last run, what it changed, nothing failing
    page.get_by_role("link", name="Index").click()
    page.get_by_role("heading", name="Failing now").wait_for()
    settle(page)
    see(page, "failed: 1")
    assert page.get_by_text(f"{BROKEN}: model '{BROKEN}': adapter file").is_visible()  # what changed, and why
    assert page.get_by_text("Nothing: the run reused").count() == 0
    failing = page.get_by_test_id("stTable").locator("tbody tr").all_inner_texts()
    assert len(failing) == 1 and BROKEN in failing[0] and "model.onnx is missing" in failing[0], failing
    assert page.get_by_role("heading", name="Runs and snapshots").is_visible()
    shoot(page, tmp_path, "index")
