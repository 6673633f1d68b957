import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zoo2vec.cli import main


@pytest.fixture
def run(tiny_zoo_master):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, ["search", "--zoo", str(tiny_zoo_master), *args])

    return invoke


def test_text_search_prints_a_table_that_fits_100_columns(run):
    result = run("--text", "handwritten digit recognition", "-k", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").splitlines()
    assert len(lines) == 4 and all(len(line) <= 100 for line in lines), lines
    assert lines[0].split() == ["#", "model", "score", "modality", "license", "params", "why"]
    rows = [json.loads(line) for line in run("--text", "handwritten digit recognition", "-k", "3", "--json").stdout.splitlines()]
    for line, row in zip(lines[1:], rows):
        cells = line.split()
        assert cells[:4] == [str(row["rank"]), row["model"], f"{row['score']:.3f}", row["modality"]]
        assert cells[1].startswith("digits8") and cells[4] == row["license"]
        why = line[lines[0].index("why"):]
        assert len(row["why"]) > len(why) and why.endswith("\u2026") and row["why"].startswith(why[:-1])
    assert lines[1].split()[5] == {"digits8-linear": "650", "digits8-mlp-0to4": "2.2k"}.get(rows[0]["model"], "130")


def test_long_prints_the_whole_explanation_under_each_row(run):
    result = run("--text", "handwritten digit recognition", "-k", "2", "--long")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in run("--text", "handwritten digit recognition", "-k", "2", "--json").stdout.splitlines()]
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines)
    rest = "\n".join(lines)
    for row in rows:
        start = rest.index(f"{row['rank']:>2}  {row['model']}")
        following = rest[start:].splitlines()[1:]
        explained = []
        for line in following:
            if not line.startswith("    "):
                break
            explained.append(line.strip())
        assert " ".join(explained) == " ".join(row["why"].split())


def test_json_output_has_every_field_and_filters(run):
    result = run("--text", "news", "--json", "--where", "modality=text", "--where", "params>1000")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["model"] for r in rows} == {"bbc-bow", "bbc-bow-business-tech"}
    assert rows[0]["score"] >= rows[1]["score"]
    for r in rows:
        assert {"rank", "model", "score", "measured", "verify_error", "modality", "license", "params", "why", "shares",
                "kernel_alignment", "concept_match", "text_similarity", "words_score", "matches", "features",
                "card"} <= set(r)
        assert r["modality"] == "text" and r["params"] > 1000 and r["license"] == r["card"]["license"]
        assert r["card"]["name"] == r["model"] and r["measured"] is None and r["verify_error"] is None


def test_range_filter_at_the_cli(run):
    result = run("--text", "digits", "-k", "10", "--json", "--where", "params>100", "--where", "params<1000")
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["model"] for line in result.stdout.splitlines()} == {"digits8-linear", "digits8-linear-parity"}
    _one_line_error(run("--text", "x", "--where", "params>1", "--where", "params<inf"), "finite number")


def _digits_zip(tmp_path):
    from zoo2vec.data.datasets import packaged

    data = packaged("sklearn-digits", "holdout")
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as z:
        for i in range(80):
            img = tmp_path / f"{i}.png"
            Image.fromarray((data.x[i, 0] * 255).astype(np.uint8)).save(img)
            z.write(img, f"task/{data.label_names[data.y[i]]}/{i}.png")
    return tmp_path / "task.zip"


def test_zip_task_search(run, tmp_path):
    result = run("--task", str(_digits_zip(tmp_path)), "-k", "1")
    assert result.exit_code == 0, result.output
    assert "digits8-linear" in result.output


def _one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_user_mistakes_are_one_line_and_exit_2(run, tmp_path):
    _one_line_error(run(), "give --task PATH")
    _one_line_error(run("--text", "x", "--where", "size=3"), "unknown filter field 'size'")
    _one_line_error(run("--text", "x", "--where", "licence mit"), "FIELD OP VALUE")
    _one_line_error(run("--task", str(tmp_path / "missing.zip")), "does not exist")
    (tmp_path / "empty.csv").write_text("text,label\n")
    _one_line_error(run("--task", str(tmp_path / "empty.csv")), "the task is empty")
    (tmp_path / "one.csv").write_text("text,label\na,x\nb,x\n")
    _one_line_error(run("--task", str(tmp_path / "one.csv")), "single class")
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    _one_line_error(run("--task", str(tmp_path / "bad.zip")), "cannot read bad.zip")
    (tmp_path / "news.csv").write_text("text,label\nstocks fell,business\nthe match ended,sport\n")
    _one_line_error(run("--task", str(tmp_path / "news.csv"), "--where", "modality=image"), "the task is text")
    _one_line_error(run("--text", "x", "-k", "0"), "-k must be at least 1")


def test_index_command_reports_and_its_exit_code_says_how_it_went(tiny_zoo):
    result = CliRunner().invoke(main, ["index", str(tiny_zoo)])
    assert result.exit_code == 0, result.output
    assert "5 models indexed (0 probed, 5 unchanged), 0 failed" in result.output
    (tiny_zoo / "models" / "not-a-model").mkdir()  # recorded as failed; the rest is published
    failed = CliRunner().invoke(main, ["index", str(tiny_zoo), "--json"])
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["indexed"] == 5 and len(report["reused"]) == 5
    assert "none of the formats" in report["failed"]["not-a-model"] and report["snapshot"]
    assert "1 model(s) failed" in failed.stderr


def test_models_command_and_missing_zoo(tiny_zoo_master, tmp_path):
    result = CliRunner().invoke(main, ["models", "--zoo", str(tiny_zoo_master)])
    assert result.exit_code == 0 and "bbc-bow-business-tech" in result.output
    _one_line_error(CliRunner().invoke(main, ["models", "--zoo", str(tmp_path / "nothing")]), "no zoo at")


def test_runs_command_shows_the_history(tiny_zoo):
    (tiny_zoo / "models" / "not-a-model").mkdir()
    assert CliRunner().invoke(main, ["index", str(tiny_zoo), "--workers", "1"]).exit_code == 1
    result = CliRunner().invoke(main, ["runs", str(tiny_zoo)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["started", "status", "executor", "models"]
    assert "published   local/cpu x1" in lines[1]
    assert "failed not-a-model: " in lines[2] and len(lines) == 4  # header, this run, its failure, the first run
    runs = json.loads(CliRunner().invoke(main, ["runs", str(tiny_zoo), "--json", "--last", "1"]).stdout)
    assert len(runs) == 1 and runs[0]["failed"] == 1 and runs[0]["report"]["failed"]["not-a-model"]


def test_index_on_a_schedule(tiny_zoo):
    result = CliRunner().invoke(main, ["index", str(tiny_zoo), "--schedule", "*/2 * * * * *", "--max-runs", "2",
                                       "--json"])
    assert result.exit_code == 0, result.output
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == 2 and all(r["indexed"] == 5 for r in reports)
    assert "scheduled '*/2 * * * * *': first run" in result.stderr
    assert result.stderr.count("indexing run starts") == 2
    for bad, why in (("0 2 * *", "has 4 fields"), ("0 25 * * *", "not a cron expression")):
        _one_line_error(CliRunner().invoke(main, ["index", str(tiny_zoo), "--schedule", bad]), why)
    _one_line_error(CliRunner().invoke(main, ["index", str(tiny_zoo), "--max-runs", "1"]), "goes with --schedule")



def test_verify_json_and_table_say_what_was_measured(run, tmp_path):
    task = _digits_zip(tmp_path)
    result = run("--task", str(task), "-k", "2", "--verify", "1", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert 0 <= rows[0]["measured"] <= 1 and rows[0]["verify_error"] is None and rows[1]["measured"] is None
    matches = rows[0]["matches"]
    assert len(matches) == 10 and {m["task_class"] for m in matches} == {str(d) for d in range(10)}
    assert all(isinstance(m["similarity"], float) for m in matches)
    table = run("--task", str(task), "-k", "2", "--verify", "1").stdout.splitlines()
    assert table[0].split()[:5] == ["#", "model", "score", "measured", "logme"] and all(len(line) <= 100 for line in table)
    assert table[1].split()[3:5] == [f"{rows[0]['measured']:.3f}", f"{rows[0]['logme']:.3f}"]
    assert table[2].split()[3:5] == ["-", "-"] and rows[1]["logme"] is None


def test_models_failed_shows_the_current_failures_once_each(tiny_zoo):
    def models(*args):
        return CliRunner().invoke(main, ["models", str(tiny_zoo), *args])

    assert models("--failed").stdout.strip() == "no failed models"
    assert json.loads(models("--failed", "--json").stdout) == []
    broken = tiny_zoo / "models" / "not-a-model"
    broken.mkdir()
    (tiny_zoo / "models" / "also-broken").mkdir()
    for _ in range(2):  # failed twice: listed once
        assert CliRunner().invoke(main, ["index", str(tiny_zoo), "--workers", "1"]).exit_code == 1
    lines = models("--failed").stdout.strip().splitlines()
    assert lines[0].split() == ["name", "status", "reason", "ran_at"] and len(lines) == 3
    assert lines[1].split()[:2] == ["also-broken", "failed"] and lines[2].split()[:2] == ["not-a-model", "failed"]
    records = json.loads(models("--failed", "--json").stdout)
    assert [r["name"] for r in records] == ["also-broken", "not-a-model"]
    assert "none of the formats" in records[0]["reason"]
    broken.rmdir()  # deleted: no longer a failure of the zoo, though an earlier run recorded it
    assert CliRunner().invoke(main, ["index", str(tiny_zoo), "--workers", "1"]).exit_code == 1
    assert [r["name"] for r in json.loads(models("--failed", "--json").stdout)] == ["also-broken"]
    assert len(zoo2vec_open(tiny_zoo).runs().query("name == 'not-a-model'")) == 2  # the history keeps them
    (tiny_zoo / "models" / "also-broken").rmdir()
    assert CliRunner().invoke(main, ["index", str(tiny_zoo), "--workers", "1"]).exit_code == 0
    assert models("--failed").stdout.strip() == "no failed models"


def zoo2vec_open(path):
    import zoo2vec

    return zoo2vec.open(path)


def test_models_json_and_table(tiny_zoo_master):
    records = json.loads(CliRunner().invoke(main, ["models", str(tiny_zoo_master), "--json"]).stdout)
    assert [r["name"] for r in records] == sorted(r["name"] for r in records) and len(records) == 5
    by_name = {r["name"]: r for r in records}
    assert by_name["digits8-linear"]["params"] == 650 and by_name["digits8-linear"]["modality"] == "image"
    assert "digits" in by_name["digits8-linear"]["tags"] and by_name["bbc-bow"]["indexed_at"].startswith("20")
    table = CliRunner().invoke(main, ["models", str(tiny_zoo_master)]).stdout.splitlines()
    assert table[0].split() == ["name", "modality", "license", "params", "tags"] and len(table) == 6
    assert table[[line.split()[0] for line in table].index("digits8-linear")].split()[3] == "650"


def test_every_command_names_the_zoo_the_same_ways(tiny_zoo, tmp_path, monkeypatch):
    zoo = str(tiny_zoo)  # a private copy: the test indexes it, and the session's shared zoo must keep one snapshot
    forms = {"argument": [zoo], "option": ["--zoo", zoo], "both": [zoo, "--zoo", zoo], "environment": []}
    for name, form in forms.items():
        if name == "environment":
            monkeypatch.setenv("ZOO2VEC_ZOO", zoo)
        for command in (["models"], ["runs"], ["search", "--text", "digits", "-k", "1"]):
            result = CliRunner().invoke(main, [command[0], *form, *command[1:]])
            assert result.exit_code == 0, (name, command, result.output)
            assert ("digits8" in result.stdout) if command[0] != "runs" else result.stdout.startswith("started")
        monkeypatch.delenv("ZOO2VEC_ZOO", raising=False)
    index = CliRunner().invoke(main, ["index", "--zoo", zoo, "--json"], env={"ZOO2VEC_ZOO": str(tmp_path / "no")})
    assert index.exit_code == 0 and json.loads(index.stdout)["indexed"] == 5
    for command in (["models"], ["runs"], ["index"], ["serve"], ["search", "--text", "x"]):
        _one_line_error(CliRunner().invoke(main, [command[0], zoo, "--zoo", str(tmp_path), *command[1:]]),
                        "two zoos given")
    monkeypatch.setenv("ZOO2VEC_ZOO", str(tmp_path / "nothing"))
    _one_line_error(CliRunner().invoke(main, ["models"]), "$ZOO2VEC_ZOO names it")
    _one_line_error(CliRunner().invoke(main, ["serve"]), "no zoo at")


def _listening(port):
    """The local addresses a TCP socket listens on at `port`, from /proc/net/tcp (state 0A: LISTEN)."""
    import socket
    import struct

    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


@pytest.mark.integration
def test_serve_listens_on_loopback_unless_told(tiny_zoo_master):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "zoo2vec.cli", "serve", str(tiny_zoo_master), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not _listening(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert _listening(port) == {"127.0.0.1"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
