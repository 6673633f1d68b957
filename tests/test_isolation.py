"""Model code run for a search (verify) goes to killable worker processes: a model that hangs, crashes, exits or
raises is reported with why, and the searching process goes on."""

import os

import faulty_models
import pytest

from zoo2vec.zoo import isolation


def test_each_misbehaviour_is_reported_and_the_pool_answers_again():
    calls = [("fine",), ("hang",), ("segfault",), ("exit",), ("raise",)]
    answers = isolation.run_isolated(faulty_models.behave, calls, timeout_s=3)
    assert answers[0][0] and answers[0][1].startswith("fine: answered in process ")
    assert int(answers[0][1].rsplit(" ", 1)[1]) != os.getpid()  # not in this process
    assert answers[1:] == [(False, "killed after 3 s"), (False, "the worker died: signal 11 (SIGSEGV)"),
                           (False, "the worker exited: exit code 3"), (False, "RuntimeError: weights corrupted")]
    assert isolation.run_isolated(faulty_models.behave, [("fine",)], timeout_s=30)[0][0]  # fresh workers took over


@pytest.mark.integration
def test_verify_never_loads_a_model_in_the_searching_process(tiny_zoo_master, make_task, monkeypatch):
    import zoo2vec

    def refuse(*args, **kwargs):  # this process's copy only: the spawned workers import their own
        pytest.fail("verify loaded a model in the searching process")

    monkeypatch.setattr("zoo2vec.zoo.measure.load_model", refuse)
    task = make_task("sklearn-digits", ["0", "1", "2"], shots=6)
    results = zoo2vec.open(tiny_zoo_master).search(task, k=3, verify=2)
    assert all(r.measured is not None and 0.0 <= r.measured <= 1.0 for r in results[:2])
