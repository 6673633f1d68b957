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


def _script(folder, name: str, body: str):
    path = folder / name
    path.write_text("import faulty_models\nfrom zoo2vec.zoo import isolation\n\n" + body)
    return path


def _python(*args, cwd):
    """A real `python ...` run, as a user's script runs: the workers spawned from it import it again."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(faulty_models.__file__),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


CALL = 'print(isolation.run_isolated(faulty_models.behave, [("fine",)], timeout_s=30))\n'


def test_a_script_that_starts_workers_from_its_top_level_is_told_how_to_fix_it(tmp_path):
    _script(tmp_path, "unguarded.py", CALL)
    _script(tmp_path, "guarded.py", 'if "__main__" == __name__ and faulty_models:\n    ' + CALL)
    unguarded = _python("unguarded.py", cwd=tmp_path)
    assert unguarded.returncode == 1 and "ConfigError" in unguarded.stderr, unguarded.stderr
    assert "line 4 of" in unguarded.stderr and 'if __name__ == "__main__":' in unguarded.stderr
    guarded = _python("guarded.py", cwd=tmp_path)
    assert guarded.returncode == 0 and "(True, 'fine: answered in process" in guarded.stdout, guarded.stderr
    as_module = _python("-m", "unguarded", cwd=tmp_path)  # python -m: the workers import it by name
    assert as_module.returncode == 1 and "line 4 of" in as_module.stderr, as_module.stderr


def test_a_script_run_by_a_launcher_gets_an_answer_and_its_workers_say_why(tmp_path):
    # run by a launcher (runpy, as some tools do), the script's top level is not Python's own main, so the parent
    # does not read it; its workers, importing it, refuse to run it again, say why and exit, and the call is
    # answered as failed (multiprocessing's own complaint, which they would raise otherwise, names no line or fix)
    _script(tmp_path, "inner.py", CALL)
    (tmp_path / "launcher.py").write_text('import runpy\nrunpy.run_path("inner.py", run_name="__main__")\n')
    launched = _python("launcher.py", cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.startswith("[(False, "), launched.stdout
    assert 'if __name__ == "__main__":' in launched.stderr  # what the workers said as they exited
