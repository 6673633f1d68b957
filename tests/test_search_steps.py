"""The search steps on their own: fusion of task and words scores, the `why` text, validated queries, and that task
scoring and words scoring read nothing of each other's results."""

import numpy as np
import pytest

import zoo2vec
from zoo2vec import FilterError, TaskError
from zoo2vec.encoders.know2vec import ConceptMatch
from zoo2vec.search.explain import why
from zoo2vec.search.fusion import fuse, rank
from zoo2vec.search.query import Query
from zoo2vec.search.task_scoring import TaskScore
from zoo2vec.search.words import WORDS_POOL, WordsScore, words_pool

PAIR = {"kernel_alignment": 0.56, "concept_match": 0.9, "label_match": 0.97, "has_labels": 1.0, "input_match": 1.0}
WORDS = {"card": 0.4, "label_match": 0.8, "has_labels": 1.0, "concept_words": 0.3, "is_text": 1.0, "kernel_classes": 0.2}


def task_score(model_id=1, score=0.8, **features):
    return TaskScore(model_id=model_id, score=score, features={**PAIR, **features},
                     matches=(ConceptMatch("0", "0", 0.96, 0.3), ConceptMatch("1", None, 0.0)))


def words_score(model_id=1, score=0.4, shares=None, **features):
    return WordsScore(model_id=model_id, text_similarity=0.4, score=score, features={**WORDS, **features},
                      shares={"card": 0.5, "concepts": 0.5} if shares is None else shares)


def test_fuse_weighs_task_and_words_and_scales_the_words_shares():
    both = fuse(task_score(), words_score(), 0.25)
    assert both.score == pytest.approx(0.7) and both.shares == {"task": 0.75, "card": 0.125, "concepts": 0.125}
    assert both.model_id == 1 and both.task.score == 0.8 and both.words.score == 0.4
    task_only = fuse(task_score(), None, 0.25)
    assert (task_only.score, task_only.shares, task_only.words) == (0.8, {"task": 1.0}, None)
    words_only = fuse(None, words_score(shares={"card": 1.0}), 0.25)
    assert (words_only.score, words_only.shares, words_only.task) == (0.4, {"card": 1.0}, None)
    with pytest.raises(ValueError):
        fuse(None, None, 0.25)


def test_rank_keeps_every_model_and_breaks_ties_by_retrieval_order():
    ranked = rank([task_score(1, 0.5), task_score(2, 0.9), task_score(3, 0.5)], [words_score(4, 0.5)], 0.5)
    assert [(f.model_id, f.score) for f in ranked] == [(2, 0.9), (1, 0.5), (3, 0.5), (4, 0.5)]
    assert ranked[0].words is None and ranked[-1].task is None


def test_why_spells_out_each_part():
    text = why(fuse(task_score(), words_score(), 0.5))
    assert text == ("predicted accuracy 0.80; classes (similarity, margin over the next concept): 0→0 (0.96, +0.30), 1→∅; "
                    "decisions agree 0.56; label names match 0.97; words: predicted accuracy 0.40 (card text 0.40, "
                    "named classes vs label names 0.80, vs concepts found by probing 0.30, decisions agree with the "
                    "named classes' 0.20); shares task 50%, card 25%, concepts 25%")
    plain = why(fuse(task_score(has_labels=0.0, input_match=0.5), None, 0.5), learned=False)
    assert plain.startswith("task score 0.80") and "model names no labels" in plain and "input shape" in plain
    assert "shares" not in plain  # one component: nothing to share
    words = why(fuse(None, words_score(has_labels=0.0, is_text=0.0, kernel_classes=0.0, shares={}), 0.5),
                words_learned=False)
    assert words == "words score 0.40 (card text 0.40)"


def test_why_counts_the_classes_it_does_not_show():
    many = TaskScore(1, 0.5, PAIR, tuple(ConceptMatch(str(c), str(c), 0.9, 0.1) for c in range(8)))
    assert ", +2 more" in why(fuse(many, None, 0.5)) and "6→6" not in why(fuse(many, None, 0.5))


def test_words_pool_is_the_task_candidates_or_the_nearest_allowed():
    allowed = np.arange(10, dtype=np.int64)
    pool, n = words_pool([7, 3], allowed, 100)
    assert pool.tolist() == [7, 3] and n == 2  # with a task: exactly its candidates
    pool, n = words_pool([], allowed, 100)
    assert pool is allowed and n == WORDS_POOL
    assert words_pool([], allowed, 2 * WORDS_POOL)[1] == 2 * WORDS_POOL


def test_query_validation(make_task):
    task = make_task("sklearn-digits", ["0", "1"], shots=2)
    q = Query.validate(task, "  ", k=3, where=None, verify=1)
    assert q.text is None and q.where == {} and q.n_candidates == 100 and q.verify == 1
    assert Query.validate(None, "digits", k=40, where={"license": "mit"}, verify=0).n_candidates == 200
    with pytest.raises(TaskError, match="positive integer"):
        Query.validate(None, "x", k=True, where=None, verify=0)
    with pytest.raises(FilterError, match="the task is image, but the filter asks for modality 'text'"):
        Query.validate(task, None, k=1, where={"modality": "text"}, verify=0).filters(catalog=None)


@pytest.fixture(scope="module")
def snapshot(tiny_zoo_master):
    from zoo2vec.search.snapshot import CurrentSnapshot

    return CurrentSnapshot(tiny_zoo_master).get()


def test_task_scoring_and_words_scoring_stand_alone(snapshot, make_task):
    """Each step scores from the snapshot alone: the task scores are the same whether or not words were scored."""
    from zoo2vec.encoders import alignment
    from zoo2vec.search.task_scoring import score_task
    from zoo2vec.search.words import score_words

    task = make_task("bbc-news", ["business", "tech"], shots=4)
    allowed = snapshot.allowed_ids({"modality": "text"})
    scorer, words = alignment.load(), alignment.load(words=True)
    before = score_task(snapshot, task, allowed, 100, scorer)
    assert {s.model_id for s in before} == set(allowed.tolist())
    said = score_words(snapshot, "business or technology news", task.label_names, *words_pool(
        [s.model_id for s in before], allowed, 100), words)
    assert {s.model_id for s in said} == {s.model_id for s in before}
    assert all(set(s.features) == set(alignment.WORD_FEATURES) and s.shares for s in said)
    after = score_task(snapshot, task, allowed, 100, scorer)
    assert [(s.model_id, s.score, s.features) for s in after] == [(s.model_id, s.score, s.features) for s in before]
    assert all(s.kernel_alignment == s.features["kernel_alignment"] for s in after)


def test_search_results_are_importable_from_api_and_package():
    from zoo2vec.api import SearchResult, SearchResults
    from zoo2vec.search import results

    assert zoo2vec.SearchResult is SearchResult is results.SearchResult
    assert zoo2vec.SearchResults is SearchResults is results.SearchResults
