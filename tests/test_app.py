from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import zoo2vec

APP = str(Path(zoo2vec.__file__).parent / "ui" / "app.py")


@pytest.fixture
def app(tiny_zoo_master, monkeypatch):
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo_master))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_text_search_shows_a_ranked_table(app):
    app.text_input[0].input("handwritten digit recognition")
    app.button[0].click().run()
    assert not app.exception and not app.error
    df = app.dataframe[0].value
    assert df["model"].iloc[0].startswith("digits8") and list(df["rank"]) == list(range(1, len(df) + 1))
    assert "Share of the score" in [c.value for c in app.caption]  # the words' card / concepts / prior shares, drawn


def test_uploaded_csv_task_and_filters(app):
    csv = ("text,label\n" + "\n".join(
        f"{t},{label}" for label, texts in {
            "business": ["Shares in the bank rose after profits beat forecasts", "The firm cut jobs as sales slumped"],
            "sport": ["The striker scored twice in the cup final", "The champion won the title in five sets"],
        }.items() for t in texts)).encode()
    app.file_uploader[0].set_value(("news.csv", csv, "text/csv"))
    app.selectbox[0].select("text")
    app.button[0].click().run()
    assert not app.exception and not app.error
    assert set(app.dataframe[0].value["modality"]) == {"text"}
    assert "business, sport" in app.info[0].value
    matches = app.dataframe[1].value  # the best match's class-to-concept table
    assert list(matches["task class"]) == ["business", "sport"] and matches["similarity"].between(-1, 1).all()


def test_bad_input_is_a_message_not_a_crash(app):
    app.file_uploader[0].set_value(("task.csv", b"text,label\nonly,one\n", "text/csv"))
    app.button[0].click().run()
    assert not app.exception
    assert "single class" in app.error[0].value
    app.file_uploader[0].set_value(("news.csv", b"text,label\nstocks fell,business\nthe match,sport\n", "text/csv"))
    app.selectbox[0].select("image")
    app.button[0].click().run()
    assert "the task is text" in app.error[0].value


def test_empty_query_asks_for_input(app):
    app.button[0].click().run()
    assert "Type what you need" in app.warning[0].value


def test_missing_zoo_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tmp_path / "nowhere"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception and "no zoo at" in at.error[0].value


def test_sidebar_filters_reach_the_search_and_an_empty_result_is_said(app, tiny_zoo_master):
    license, tag = "mit", "news"  # in the tiny zoo: bbc-bow-business-tech only
    app.text_input[0].input("news topic classification")
    app.multiselect[0].select(license)
    app.selectbox[1].select(tag)
    app.number_input[0].set_value(10**9)  # max parameters: above every tiny model
    app.slider[0].set_value(2)
    app.button[0].click().run()
    assert not app.exception and not app.error
    expected = zoo2vec.open(tiny_zoo_master).search(text="news topic classification", k=2, where={
        "license": [license], "tags": tag, "params": ("<=", 10**9)})
    assert list(app.dataframe[0].value["model"]) == [r.name for r in expected] == ["bbc-bow-business-tech"]
    app.number_input[0].set_value(1)
    app.button[0].click().run()
    assert not app.exception and "No model matches these filters." in [w.value for w in app.warning]
