"""The app's pages through Streamlit's AppTest (no browser; tests/test_browser.py drives a real one)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import zoo2vec

APP = str(Path(zoo2vec.__file__).parent / "ui" / "app.py")
NEWS = {"business": ["Shares in the bank rose after profits beat forecasts", "The firm cut jobs as sales slumped"],
        "sport": ["The striker scored twice in the cup final", "The champion won the title in five sets"]}


@pytest.fixture
def app(tiny_zoo_master, monkeypatch):
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo_master))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def search(at: AppTest, text: str | None = None) -> AppTest:
    if text is not None:
        at.text_input(key="query_text").input(text)
    return at.button[-1].click().run()  # the form's Search button, the page's last


def titles(at: AppTest) -> list[str]:
    return [e.label for e in at.expander if e.label[:1].isdigit()]


def test_text_search_shows_a_ranked_table_each_explanation_and_the_query_in_the_url(app):
    search(app, "handwritten digit recognition")
    assert not app.exception and not app.error
    df = app.dataframe[0].value
    assert df["model"].iloc[0].startswith("digits8") and list(df["rank"]) == list(range(1, len(df) + 1))
    assert [t.split(" · ")[0] for t in titles(app)] == [f"{r}. {m}" for r, m in zip(df["rank"], df["model"])]
    assert "Share of the score" in [c.value for c in app.caption]  # the words' card / concepts / prior shares, drawn
    assert any("words: predicted accuracy" in m.value for m in app.markdown)  # the whole why, not a cut cell
    assert {d.label for d in app.get("download_button")} == {"Download CSV", "Download JSON"}
    assert app.query_params["q"] == "handwritten digit recognition" and app.query_params["k"] == "5"


def test_a_shared_url_runs_its_search(tiny_zoo_master, monkeypatch):
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo_master))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(q="news topic classification", k="2", modality="text")
    at.run()
    assert not at.exception and not at.error
    assert at.text_input(key="query_text").value == "news topic classification"
    assert list(at.dataframe[0].value["model"]) == ["bbc-bow", "bbc-bow-business-tech"]


def test_uploaded_csv_with_other_column_names_and_filters(app):
    csv = ("id,headline,topic\n" + "\n".join(
        f"{n},{t},{label}" for n, (label, t) in enumerate((label, t) for label, texts in NEWS.items() for t in texts)))
    app.get("file_uploader")[0].set_value(("news.csv", csv.encode(), "text/csv"))
    app.run()
    app.selectbox(key="text column news.csv").select("headline")
    app.selectbox(key="label column news.csv").select("topic")
    app.selectbox(key="modality").select("text")
    search(app)
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert set(table["modality"]) == {"text"}
    assert table["logme"].notna().all() and table["measured"].between(0, 1).all()  # verified by default: both models
    assert app.status[0].label == "2 models ranked, 2 measured on your samples"
    assert "business, sport" in app.info[0].value
    matches = app.dataframe[1].value  # the best match's class-to-concept table
    assert list(matches["task class"]) == ["business", "sport"] and matches["similarity"].between(-1, 1).all()
    app.slider(key="k").set_value(1)
    search(app)  # one result shown, chosen among the two verified: what search(k=1, verify=5) returns
    assert list(app.dataframe[0].value["model"]) == [table["model"].iloc[0]]
    assert app.status[0].label == "1 model ranked, 1 measured on your samples"


def test_bad_input_is_a_message_not_a_crash(app):
    app.get("file_uploader")[0].set_value(("task.csv", b"text,label\nonly,one\n", "text/csv"))
    search(app)
    assert not app.exception
    assert "single class" in app.error[0].value
    app.get("file_uploader")[0].set_value(("news.csv", b"text,label\nstocks fell,business\nthe match,sport\n", "text/csv"))
    app.selectbox(key="modality").select("image")
    search(app)
    assert "the task is text" in app.error[0].value


def test_samples_too_few_to_verify_are_still_ranked_and_the_page_says_why(app):
    app.get("file_uploader")[0].set_value(("news.csv", b"text,label\nstocks fell,business\nthe match,sport\n", "text/csv"))
    search(app)
    assert not app.exception and not app.error
    assert "logme" not in app.dataframe[0].value  # no model measured: the column is not drawn
    assert any("needs at least two samples of every class" in c.value for c in app.caption)


def test_empty_query_asks_for_input(app):
    search(app)
    assert "Type what you need" in app.warning[0].value


def test_a_weak_fit_is_said(app):
    search(app, "bird species from photos")  # nothing in the tiny zoo knows birds
    assert any("Nothing in this zoo fits well" in w.value for w in app.warning)
    search(app, "news topic classification")
    assert not any("Nothing in this zoo fits well" in w.value for w in app.warning)


def test_missing_zoo_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tmp_path / "nowhere"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception and "no zoo at" in at.error[0].value


def test_sidebar_filters_reach_the_search_and_an_empty_result_is_said(app, tiny_zoo_master):
    license, tag = "mit", "news"  # in the tiny zoo: bbc-bow-business-tech only
    app.multiselect(key="licenses").select(license)
    app.selectbox(key="tag").select(tag)
    app.number_input(key="max_params").set_value(10**9)  # max parameters: above every tiny model
    app.slider(key="k").set_value(2)
    search(app, "news topic classification")
    assert not app.exception and not app.error
    expected = zoo2vec.open(tiny_zoo_master).search(text="news topic classification", k=2, where={
        "license": [license], "tags": tag, "params": ("<=", 10**9)})
    assert list(app.dataframe[0].value["model"]) == [r.name for r in expected] == ["bbc-bow-business-tech"]
    app.number_input(key="max_params").set_value(1)
    search(app)
    assert not app.exception and "No model matches these filters." in [w.value for w in app.warning]


def test_the_zoo_page_lists_every_model_and_filters_them(app, tiny_zoo_master):
    app.switch_page("views/zoo.py").run()
    assert not app.exception and not app.error
    assert sorted(app.dataframe[0].value["name"]) == sorted(zoo2vec.open(tiny_zoo_master).models()["name"])
    app.text_input(key="zoo filter").input("bbc").run()
    assert list(app.dataframe[0].value["name"]) == ["bbc-bow", "bbc-bow-business-tech"]
    assert any("Search with labelled samples" in c.value for c in app.caption)  # no task yet: none on the map


def test_the_model_page_from_its_url(tiny_zoo_master, monkeypatch):
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo_master))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.query_params["model"] = "bbc-bow-business-tech"
    at.switch_page("views/model.py").run()
    assert not at.exception and not at.error
    assert at.title[0].value == "bbc-bow-business-tech"
    card = at.table[0].value
    assert card.at["license", "value"] == "mit" and card.at["license", "from"] == "card.json"
    assert list(at.dataframe[0].value["concept"]) == ["business", "tech"]
    assert [s.value for s in at.subheader] == ["Card", "Nearest models", "Concepts found by probing",
                                               "Behaviour on the probe set", "Indexing history"]


def test_the_index_page_shows_the_last_run(app):
    app.switch_page("views/index.py").run()
    assert not app.exception and not app.error
    assert [m.label for m in app.metric] == ["models", "probed", "reused", "removed", "failed", "skipped"]
    assert app.metric[0].value == "5" and "Every model of the zoo is indexed" in app.success[0].value


def test_the_index_page_shows_a_run_that_failed_after_the_last_published_one(tiny_zoo, run_that_fails, monkeypatch):
    run_that_fails(tiny_zoo)
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/index.py").run()
    assert not at.exception
    assert "failed in its publish stage. OSError: [Errno 28] No space left on device" in at.error[0].value
    assert at.metric[0].value == "5"  # the last published run, still what searches read
    assert list(at.dataframe[0].value["status"]) == ["failed", "published"]


def test_compare_asks_for_two_models_then_compares_on_words(app):
    app.switch_page("views/compare.py").run()
    assert not app.exception and "Pick at least two models." in [c.value for c in app.caption]
    app.multiselect(key="compare_models").select("bbc-bow").select("bbc-bow-business-tech")
    app.text_input(key="compare_text").input("news topic classification").run()
    app.button[0].click().run()
    assert not app.exception and not app.error
    table = app.table[0].value
    assert list(table.columns) == ["bbc-bow", "bbc-bow-business-tech"] and "predicted score" in table.index


def test_browsing_pages_loads_no_model_framework(tiny_zoo_master, monkeypatch):
    """Search (before a search), Zoo, Model and Index read the catalog only: no torch or encoder import at start."""
    import subprocess
    import sys

    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo_master))
    code = ("import sys; from streamlit.testing.v1 import AppTest\n"
            f"at = AppTest.from_file({APP!r}, default_timeout=120); at.run()\n"
            "for page in ('views/zoo.py', 'views/model.py', 'views/index.py'):\n"
            "    at.switch_page(page).run(); assert not at.exception, page\n"
            "print(','.join(m for m in ('torch', 'sentence_transformers', 'open_clip', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""])
