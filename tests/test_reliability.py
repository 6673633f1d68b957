"""The fuzz loop that `zoo2vec eval --reliability` will run (zoo2vec.eval.reliability.fuzz): real worker processes,
real inputs, counts that say what happened to each."""

import random

import pytest

from zoo2vec.eval import reliability


def test_fuzz_counts_every_input_and_is_fixed_by_its_seed():
    first = reliability.fuzz("csv", 25, seed=3)
    assert first["inputs"] == 25 and first["results"] + first["errors"] == 25
    assert first["results"] > 0 and first["errors"] > 0  # generated inputs reach both ends
    assert (first["crashes"], first["tracebacks"], first["hangs"]) == (0, 0, 0), first["examples"]
    assert 50 < first["peak_rss_mb"] < 4096 and first["max_seconds"] < 10
    again = reliability.fuzz("csv", 25, seed=3)
    assert (again["results"], again["errors"]) == (first["results"], first["errors"])
    assert reliability.summary([first, again]) == {"inputs": 50, "crashes": 0, "tracebacks": 0, "hangs": 0,
                                                   "peak_rss_mb": max(first["peak_rss_mb"], again["peak_rss_mb"])}


def test_an_input_with_no_answer_in_time_is_a_hang_and_the_worker_is_replaced():
    counts = reliability.fuzz("where", 2, seed=0, hang_s=0.001)  # no worker answers that fast (it starts first)
    assert counts["inputs"] == 2 and counts["hangs"] == 2 and counts["examples"][0]["kind"] == "hang"


def test_an_exception_outside_zoo2vecs_errors_is_a_traceback():
    worker = reliability._Worker()
    try:
        kind, _, _, detail = worker.run("no-such-entry-point", b"", 60)
        assert kind == "traceback" and "ValueError: unknown entry point" in detail
        kind, *_ = worker.run("where", {"license": "mit"}, 60)  # the same worker goes on
        assert kind == "result"
    finally:
        worker.close()


def test_every_entry_point_generates_inputs_that_feed(tmp_path):
    rng = random.Random(0)
    for i, entry_point in enumerate(reliability.ENTRY_POINTS):
        workdir = tmp_path / str(i)
        workdir.mkdir()
        assert reliability.feed(entry_point, reliability.generate(entry_point, rng), workdir) in ("result", "error")
    with pytest.raises(ValueError, match="unknown entry point"):
        reliability.fuzz("nowhere", 1)
