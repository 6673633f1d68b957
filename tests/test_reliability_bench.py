"""zoo2vec eval --reliability's report: parts run and kept, RELIABILITY.md and the results.json entry."""

import json

from click.testing import CliRunner

from zoo2vec.cli import main
from zoo2vec.eval import reliability_bench


def test_a_fuzz_part_is_run_kept_and_reported_beside_the_other_entries(tmp_path, monkeypatch):
    home, out = tmp_path / "home", tmp_path / "bench"
    monkeypatch.setenv("ZOO2VEC_HOME", str(home))
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"held_out": {"zoo2vec": 1}, "indexing": {"kept": True}}))
    done = CliRunner().invoke(main, ["eval", "--reliability", "--only", "fuzz", "--inputs", "16", "--out", str(out)])
    assert done.exit_code == 0, done.output
    kept = json.loads((home / "bench" / "reliability.json").read_text())
    assert [e["inputs"] for e in kept["fuzz"]["entry_points"]] == [2] * 8
    results = json.loads((out / "results.json").read_text())
    assert results["held_out"] == {"zoo2vec": 1} and results["indexing"] == {"kept": True}
    fuzz = results["reliability"]["fuzz"]
    assert fuzz["inputs"] == 16 and fuzz["crashes"] == fuzz["tracebacks"] == fuzz["hangs"] == 0
    assert results["reliability"]["kill9"] == {"trials": None, "resumed": None, "orphans": None}
    text = (out / "RELIABILITY.md").read_text()
    assert "16 generated inputs" in text and "0 crashes, 0 tracebacks, 0 hangs" in text and "## kill -9" not in text
    again = reliability_bench.run(home, only=())  # nothing run: the kept parts come back
    assert again["fuzz"] == kept["fuzz"]
