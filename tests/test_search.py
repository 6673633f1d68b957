import shutil

import numpy as np
import pytest

import zoo2vec
from zoo2vec import FilterError, TaskError
from zoo2vec.encoders.alignment import FEATURES
from zoo2vec.zoo.layout import ZooLayout


@pytest.fixture(scope="module")
def zoo(tiny_zoo_master):
    return zoo2vec.open(tiny_zoo_master)


def test_digit_task_prefers_the_ten_class_digit_model(zoo, make_task):
    task = make_task("sklearn-digits", [str(d) for d in range(10)])
    results = zoo.search(task, k=5)
    assert [r.name for r in results][0] == "digits8-linear"
    assert {r.card["modality"] for r in results} == {"image"}
    assert len(results) == 3  # only the zoo's three image models qualify
    best = results[0]
    assert best.kernel_alignment is not None and best.concept_match is not None and best.text_similarity is None
    assert [m.model_concept for m in best.matches] == [str(d) for d in range(10)]
    assert "0→0 (" in best.why and "predicted accuracy" in best.why and "label names match" in best.why
    # the pair features the alignment scored, reported with the result
    assert set(best.features) == set(FEATURES)
    assert best.features["label_match"] > 0.9 and best.features["has_labels"] == 1.0 and best.features["input_match"] == 1.0


def test_untrained_and_learned_alignment_see_the_same_features(tiny_zoo_master, make_task):
    task = make_task("sklearn-digits", ["0", "1", "2"])
    learned = zoo2vec.open(tiny_zoo_master).search(task, k=3)
    plain = zoo2vec.open(tiny_zoo_master, alignment="untrained").search(task, k=3)
    by_name = {r.name: r for r in plain}
    for r in learned:
        assert r.features == by_name[r.name].features
        assert by_name[r.name].score == pytest.approx((r.kernel_alignment + r.concept_match) / 2, abs=1e-3)


def test_subset_task_finds_the_subset_model_above_the_parity_model(zoo, make_task):
    results = zoo.search(make_task("sklearn-digits", ["0", "1", "2", "3", "4"]), k=3)
    names = [r.name for r in results]
    assert names.index("digits8-mlp-0to4") < names.index("digits8-linear-parity")


def test_news_task_ranks_the_topic_model_above_the_binary_one(zoo, make_task):
    results = zoo.search(make_task("bbc-news", ["business", "politics", "sport", "tech"]), k=2)
    assert [r.name for r in results] == ["bbc-bow", "bbc-bow-business-tech"]
    assert [m.model_concept for m in results[1].matches].count(None) == 2  # two classes it cannot tell


def test_text_query_and_filters(zoo):
    assert zoo.search(text="classify news articles by topic", k=1)[0].card["modality"] == "text"
    assert zoo.search(text="handwritten digit recognition", k=1)[0].name.startswith("digits8")
    only_text = zoo.search(text="handwritten digit recognition", k=5, where={"modality": "text"})
    assert {r.card["modality"] for r in only_text} == {"text"} and len(only_text) == 2
    nothing = zoo.search(text="digits", where={"params": ("<", 1)})
    assert len(nothing) == 0 and str(nothing) == "(no models matched)"


def test_task_and_text_together_report_both_parts(zoo, make_task):
    results = zoo.search(make_task("bbc-news", ["business", "tech"]), "business or technology news", k=2)
    assert all(r.text_similarity is not None and r.words_score is not None and r.kernel_alignment is not None
               for r in results)
    df = results.to_pandas()
    assert list(df["model"]) == [r.name for r in results]
    assert df["score"].is_monotonic_decreasing
    weight = zoo.words_weight
    for r in results:  # each component's share of the score is shown: samples, and the words' card, concepts and decisions
        assert set(r.shares) == {"task", "card", "concepts", "decisions"} and sum(r.shares.values()) == pytest.approx(1.0)
        assert r.shares["task"] == pytest.approx(1 - weight)
        assert "shares task" in r.why and "words: predicted accuracy" in r.why


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, TaskError, "give a task"),
    ({"text": "  "}, TaskError, "give a task"),
    ({"text": "x", "k": 0}, TaskError, "positive integer"),
    ({"text": "x", "where": {"size": 3}}, FilterError, "unknown filter field 'size'"),
])
def test_bad_queries(zoo, kwargs, error, message):
    with pytest.raises(error, match=message):
        zoo.search(**kwargs)


def test_text_task_against_image_filter(zoo, make_task):
    task = make_task("bbc-news", ["sport", "tech"], shots=3)
    with pytest.raises(FilterError, match="the task is text, but the filter asks for modality 'image'"):
        zoo.search(task, where={"modality": "image"})


def test_task_modality_missing_from_zoo(tiny_zoo, make_task):
    from zoo2vec.jobs.indexing import run_index

    for name in ("bbc-bow", "bbc-bow-business-tech"):
        shutil.rmtree(ZooLayout(tiny_zoo).model_folder(name))
    run_index(tiny_zoo)
    with pytest.raises(TaskError, match="no text models"):
        zoo2vec.open(tiny_zoo).search(make_task("bbc-news", ["sport", "tech"], shots=3))


def test_task_given_as_a_path(zoo, tmp_path):
    from PIL import Image

    from zoo2vec.data.datasets import packaged

    data = packaged("sklearn-digits", "holdout")
    for i in range(60):
        folder = tmp_path / "task" / data.label_names[data.y[i]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((data.x[i, 0] * 255).astype(np.uint8)).resize((32, 32)).save(folder / f"{i}.png")
    results = zoo.search(tmp_path / "task", k=1)
    assert results[0].name == "digits8-linear"


def test_verify_runs_the_first_candidates_and_reranks_them_by_their_logme(zoo, make_task):
    """The verified models come first ordered by LogME of their outputs on the samples (what CV chose); each also
    carries the probe's accuracy, to read."""
    task = make_task("sklearn-digits", ["0", "1", "2", "3", "4"], shots=6)
    results = zoo.search(task, k=3, verify=2)
    head, rest = results[:2], results[2:]
    assert all(r.measured is not None and 0.0 <= r.measured <= 1.0 for r in head)
    assert all(isinstance(r.logme, float) and np.isfinite(r.logme) for r in head)
    assert head[0].logme >= head[1].logme and all(r.measured is None and r.logme is None for r in rest)
    frame = results.to_pandas()
    assert "measured" in str(results) and frame["measured"].notna().sum() == frame["logme"].notna().sum() == 2
    plain = zoo.search(task, k=3)
    assert {r.name for r in head} == {r.name for r in plain[:2]}  # the same two candidates, only their order may change


def test_verifying_results_already_shown_gives_what_search_with_verify_gives(zoo, make_task):
    """Zoo.verify on a ranking the user has seen (the app shows it first) is search(verify=n): same order, same
    measurements, ranks numbered afresh."""
    task = make_task("sklearn-digits", ["0", "1", "2", "3", "4"], shots=6)
    shown = zoo.search(task, k=3)
    later = zoo.verify(shown, task, 2)
    direct = zoo.search(task, k=3, verify=2)
    assert [(r.name, r.measured, r.logme) for r in later] == [(r.name, r.measured, r.logme) for r in direct]
    assert [r.rank for r in later] == [1, 2, 3] and later[2] == shown[2]
    assert {r.name for r in later[:2]} == {r.name for r in shown[:2]} and all(r.measured is None for r in shown)
    assert zoo.verify(shown, task, 0) == shown


def test_verify_reports_a_model_gone_since_the_search_and_measures_the_rest(tiny_zoo, make_task):
    task = make_task("sklearn-digits", ["0", "1", "2"], shots=4)
    zoo = zoo2vec.open(tiny_zoo)
    shown = zoo.search(task, k=3)
    shutil.rmtree(ZooLayout(tiny_zoo).model_folder(shown[0].name))
    checked = zoo.verify(shown, task, 2)
    gone = next(r for r in checked if r.name == shown[0].name)
    assert gone.rank == 2 and gone.measured is None and gone.logme is None and "neither under" in gone.verify_error
    assert checked[0].name == shown[1].name and checked[0].logme is not None and checked[0].verify_error is None


def test_bad_verify_of_results(zoo, make_task):
    digits = make_task("sklearn-digits", ["0", "1"], shots=3)
    shown = zoo.search(digits, k=2)
    with pytest.raises(TaskError, match="give the task the results were ranked for"):
        zoo.verify(shown, None, 2)
    with pytest.raises(TaskError, match="two samples of every class"):
        zoo.verify(shown, make_task("sklearn-digits", ["0", "1"], shots=1), 2)
    news = make_task("bbc-news", ["sport", "tech"], shots=3)
    with pytest.raises(TaskError, match="the task is text, but .* take other inputs"):
        zoo.verify(shown, news, 2)


def test_bad_verify_requests(zoo, make_task):
    with pytest.raises(TaskError, match="give a task"):
        zoo.search(text="digits", verify=2)
    with pytest.raises(TaskError, match="whole number"):
        zoo.search(make_task("sklearn-digits", ["0", "1"]), verify=-1)


def test_verify_needs_two_samples_per_class(zoo, make_task):
    with pytest.raises(TaskError, match="two samples of every class"):
        zoo.search(make_task("sklearn-digits", ["0", "1"], shots=1), verify=1)


def test_probe_accuracy_on_separable_and_random_features():
    from zoo2vec.zoo.measure import probe_accuracy

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    assert probe_accuracy(np.c_[y * 5.0 + rng.normal(0, 0.1, 20), rng.normal(size=20)], y) == 1.0
    assert probe_accuracy(rng.normal(size=(20, 2)), y) < 0.9
