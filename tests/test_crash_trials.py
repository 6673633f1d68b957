"""The crash and swap trials that bench/RELIABILITY.md counts, run small on the tiny zoo: real `zoo2vec index`
processes killed with SIGKILL, and real snapshot swaps under a reader."""

import sys

import pytest

from zoo2vec.eval import crash_trials
from zoo2vec.index.snapshots import SnapshotStore

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the trials read /proc")]


def test_kill9_trials_resume_and_leave_nothing_behind(tiny_zoo):
    out = crash_trials.kill9(tiny_zoo, 2, seed=1, workers=1)
    assert out["trials"] == 2 and out["resumed"] == 2, out["details"]
    assert out["orphans"] == 0 and out["workers_left"] == 0 and out["search_mismatches"] == 0, out["details"]
    assert out["searches"] >= 2 and out["cached_run_again"] == 0
    assert out["killed_in_history"] == out["killed"], out["details"]  # `zoo2vec runs` lists each killed run
    assert not list(tiny_zoo.glob(f"models/*/{crash_trials.MARK}"))


def test_queries_during_swaps_all_answer_the_same(tiny_zoo):
    before = SnapshotStore(tiny_zoo).current().name
    out = crash_trials.swaps(tiny_zoo, 3, min_queries=60)
    assert out["child_exit"] == 0 and out["swaps"] >= 3, out
    assert out["queries"] >= 60 and out["failed"] == 0 and out["wrong"] == 0, out["errors"]
    assert SnapshotStore(tiny_zoo).current().name != before


def test_orphans_names_what_a_crash_left(tiny_zoo):
    store = SnapshotStore(tiny_zoo)
    assert crash_trials.orphans(tiny_zoo, keep=3) == []
    store.create()  # an unpublished folder, as a killed run leaves
    (store.base / ".CURRENT.abc").write_text("x")
    left = crash_trials.orphans(tiny_zoo, keep=3)
    (store.base / "runs").mkdir()
    (store.base / "runs" / "20261206T000000000000-abcdef.json").write_text("{}")  # a run note no run carried
    left = crash_trials.orphans(tiny_zoo, keep=3)
    assert len(left) == 3 and "unpublished" in left[0] and left[1].endswith(".CURRENT.abc")
    assert left[2].endswith("runs/20261206T000000000000-abcdef.json")
