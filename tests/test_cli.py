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


def test_text_search_prints_a_ranking(run):
    result = run("--text", "handwritten digit recognition", "-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("1. digits8")


def test_json_output_and_filters(run):
    result = run("--text", "news", "--json", "--where", "modality=text", "--where", "params>1000")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["model"] for r in rows} == {"bbc-bow", "bbc-bow-business-tech"}
    assert rows[0]["score"] >= rows[1]["score"]


def test_zip_task_search(run, tmp_path):
    from zoo2vec.data.datasets import packaged

    data = packaged("sklearn-digits", "holdout")
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as z:
        for i in range(80):
            img = tmp_path / f"{i}.png"
            Image.fromarray((data.x[i, 0] * 255).astype(np.uint8)).save(img)
            z.write(img, f"task/{data.label_names[data.y[i]]}/{i}.png")
    result = run("--task", str(tmp_path / "task.zip"), "-k", "1")
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
    assert lines[0].split()[:3] == ["started", "executor", "models"] and "local/cpu x1" in lines[1]
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
