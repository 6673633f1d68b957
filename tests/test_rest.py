"""The REST endpoint (zoo2vec.rest) over real HTTP on loopback: uvicorn serving the tiny zoo in a thread, httpx as
the client. Good queries answer what the Python API answers; each kind of bad input is a 4xx with zoo2vec's message;
queries during index swaps all answer, and a newly published snapshot is used."""

import json
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the REST endpoint needs the api extra: pip install 'zoo2vec[api]'")
import httpx  # noqa: E402
import uvicorn  # noqa: E402

import zoo2vec  # noqa: E402
from zoo2vec.index.snapshots import SnapshotStore  # noqa: E402
from zoo2vec.jobs.indexing import run_index  # noqa: E402
from zoo2vec.rest import create_app  # noqa: E402

NEWS = {
    "business": ["Shares in the bank rose after profits beat forecasts", "The firm cut jobs as sales slumped",
                 "Oil prices pushed the market lower", "The retailer reported record quarterly earnings"],
    "sport": ["The striker scored twice in the cup final", "The champion won the title in five sets",
              "The team lost at home in extra time", "She broke the world record in the relay"],
}
FIELDS = {"rank", "name", "score", "measured", "logme", "verify_error", "kernel_alignment", "concept_match", "text_similarity",
          "words_score", "modality", "license", "params", "why", "shares", "matches", "features", "card"}


class Server:
    """A real uvicorn server for the zoo at `root`, on a free loopback port, in a thread."""

    def __init__(self, root: Path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(root), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=120)

    def stop(self):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def zoo_root(tiny_zoo_master, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rest") / "zoo"
    shutil.copytree(tiny_zoo_master, root)
    return root


@pytest.fixture(scope="module")
def api(zoo_root):
    server = Server(zoo_root)
    yield server.client
    server.stop()


@pytest.fixture(scope="module")
def python_zoo(zoo_root):
    return zoo2vec.open(zoo_root)


def _news_csv(path: Path, text="text", label="label") -> Path:
    rows = [f'"{t}",{name}' for name, texts in NEWS.items() for t in texts]
    path.write_text(f"{text},{label}\n" + "\n".join(rows) + "\n")
    return path


def _error(response, status: int, kind: str, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "type"} and body["type"] == kind, body
    assert "Traceback" not in body["error"] and all(w in body["error"] for w in words), body["error"]
    return body["error"]


def _same_as_python(got: dict, expected) -> None:
    assert [r["name"] for r in got["results"]] == [r.name for r in expected]
    assert [r["score"] for r in got["results"]] == pytest.approx([r.score for r in expected], abs=1e-6)


# good queries


def test_health_names_the_zoo_and_its_current_snapshot(api, zoo_root):
    body = api.get("/health").json()
    assert body == {"status": "ok", "zoo": str(zoo_root), "snapshot": SnapshotStore(zoo_root).current().name}


def test_models_are_listed_and_filtered_with_the_api_where_form(api):
    everything = api.get("/models").json()["models"]
    assert sorted(m["name"] for m in everything) == ["bbc-bow", "bbc-bow-business-tech", "digits8-linear",
                                                     "digits8-linear-parity", "digits8-mlp-0to4"]
    assert {"license", "params", "modality", "tags", "label_names", "indexed_at"} <= set(everything[0])
    text = api.get("/models", params={"where": json.dumps({"modality": "text"})}).json()["models"]
    assert sorted(m["name"] for m in text) == ["bbc-bow", "bbc-bow-business-tech"]
    small = api.get("/models", params={"where": json.dumps({"params": {"<": 1000}, "tags": ["digits", "parity"]})})
    assert sorted(m["name"] for m in small.json()["models"]) == ["digits8-linear", "digits8-linear-parity"]
    one = api.get("/models/bbc-bow").json()
    assert one["name"] == "bbc-bow" and one["card"]["label_names"] == ["business", "entertainment", "politics",
                                                                        "sport", "tech"]


def test_text_search_answers_what_the_python_api_answers(api, python_zoo):
    response = api.post("/search", json={"text": "handwritten digit recognition", "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    _same_as_python(body, python_zoo.search(text="handwritten digit recognition", k=3))
    assert body["results"][0]["name"].startswith("digits8") and len(body["results"]) == 3
    first = body["results"][0]
    assert set(first) == FIELDS and first["why"] and first["modality"] == "image" and first["license"] == "mit"
    assert first["measured"] is None and first["text_similarity"] is not None
    filtered = api.post("/search", json={"text": "news", "where": {"license": "mit", "modality": "text"}}).json()
    assert [r["name"] for r in filtered["results"]] == ["bbc-bow-business-tech"]


def test_text_samples_with_labels_and_verify(api, python_zoo):
    samples = [t for texts in NEWS.values() for t in texts]
    labels = [name for name, texts in NEWS.items() for _ in texts]
    response = api.post("/search", json={"samples": samples, "labels": labels, "k": 2, "verify": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"]["task"] == {"modality": "text", "samples": 8, "classes": ["business", "sport"]}
    _same_as_python(body, python_zoo.search(zoo2vec.Task.from_arrays(samples, labels), k=2, verify=1))
    first = body["results"][0]
    assert 0 <= first["measured"] <= 1 and isinstance(first["logme"], float) and first["verify_error"] is None
    assert {m["task_class"] for m in first["matches"]} == {"business", "sport"}
    assert first["kernel_alignment"] is not None and all(r["modality"] == "text" for r in body["results"])


def test_uploaded_csv_task(api, python_zoo, tmp_path):
    csv = _news_csv(tmp_path / "news.csv")
    response = api.post("/search/upload", files={"file": ("news.csv", csv.read_bytes(), "text/csv")},
                        data={"k": "2", "where": json.dumps({"params": {">": 100}})})
    assert response.status_code == 200, response.text
    _same_as_python(response.json(), python_zoo.search(zoo2vec.Task.from_path(csv), k=2))
    # other column names, as the CLI's --text-column and --label-column
    other = _news_csv(tmp_path / "other.csv", text="headline", label="topic")
    response = api.post("/search/upload", files={"file": ("other.csv", other.read_bytes())},
                        data={"text_column": "headline", "label_column": "topic", "text": "news topics", "k": "1"})
    assert response.status_code == 200, response.text
    assert response.json()["query"]["task"]["classes"] == ["business", "sport"]


# bad input: a 4xx with the message, never a 500


@pytest.mark.parametrize("body, status, kind, words", [
    ('{"text": "news",', 400, "InvalidJSON", ["not valid JSON"]),
    ('{"text": "news", "where": {"colour": "red"}}', 400, "FilterError", ["unknown filter field 'colour'", "license"]),
    ('{"text": "news", "where": {"params": {"<": NaN}}}', 400, "FilterError", ["'params' needs a finite number"]),
    ('{"text": "news", "where": {"params": "nan"}}', 400, "FilterError", ["'params' needs a finite number"]),
    ('{"text": "news", "where": "license=mit"}', 400, "FilterError", ["where must be a JSON object"]),
    ('{"text": "news", "k": 0}', 400, "TaskError", ["k must be a positive integer, got 0"]),
    ('{"text": "news", "k": -3}', 400, "TaskError", ["k must be a positive integer, got -3"]),
    ('{"text": "news", "k": "five"}', 422, "RequestValidationError", ["k:"]),
    ('{"text": "news", "verify": -1}', 400, "TaskError", ["verify must be a whole number"]),
    ('{"text": "news", "colour": "red"}', 422, "RequestValidationError", ["unknown field 'colour'"]),
    ('{}', 400, "TaskError", ["give a task"]),
    ('{"samples": ["a b", "c d"], "labels": ["x"]}', 400, "TaskError", ["2 samples but 1 labels"]),
    ('{"samples": ["a b", "c d"]}', 400, "TaskError", ["`samples` and `labels` together"]),
    ('{"samples": ["a b", "c d"], "labels": ["x", "x"]}', 400, "TaskError", ["single class"]),
    ('{"text": "news", "samples": ["a", "b"], "labels": ["x", "y"], "verify": 1}', 400, "TaskError",
     ["at least two samples of every class"]),
])
def test_bad_search_bodies_are_4xx_with_the_message(api, body, status, kind, words):
    _error(api.post("/search", content=body, headers={"content-type": "application/json"}), status, kind, *words)


def test_bad_requests_elsewhere(api, tmp_path):
    _error(api.get("/nowhere"), 404, "NotFound", "no endpoint GET /nowhere", "POST /search")
    _error(api.delete("/search"), 405, "MethodNotAllowed", "/search does not take DELETE")
    _error(api.get("/models/no-such-model"), 404, "ZooError", "no model 'no-such-model'", "bbc-bow")
    _error(api.get("/models", params={"where": "{bad"}), 400, "FilterError", "where is not valid JSON")
    _error(api.get("/models", params={"where": '{"colour": 1}'}), 400, "FilterError", "unknown filter field")
    csv = _news_csv(tmp_path / "news.csv").read_bytes()
    _error(api.post("/search/upload", files={"file": ("news.exe", csv)}), 400, "TaskError", "news.exe", ".csv")
    _error(api.post("/search/upload", data={"text": "news"}), 400, "TaskError", "`file` field")
    _error(api.post("/search/upload", files={"file": ("news.csv", csv)}, data={"k": "two"}), 400, "TaskError",
           "k must be a whole number, got 'two'")
    _error(api.post("/search/upload", files={"file": ("news.csv", csv)}, data={"colour": "red"}), 400, "TaskError",
           "unknown form fields ['colour']")
    _error(api.post("/search/upload", files={"file": ("news.csv", csv)}, data={"text_column": "body"}), 400,
           "TaskError", "body")
    _error(api.post("/search/upload", files={"file": ("broken.zip", b"PK\x03\x04 not really a zip")}), 400,
           "TaskError", "cannot read broken.zip as a zip file")
    _error(api.post("/search/upload", files={"file": ("news.csv", csv)}, data={"where": '{"params": {"<": NaN}}'}),
           400, "FilterError", "finite number")


def test_bodies_over_the_file_limit_are_413(api, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO2VEC_MAX_FILE_BYTES", "2000")
    csv = _news_csv(tmp_path / "news.csv")
    big = csv.read_text() + "".join(f'"{NEWS["sport"][i % 4]} {i}",sport\n' for i in range(60))
    assert 2000 < len(big) < 20_000  # over the file limit, within the form's allowance: the task's reader refuses it
    _error(api.post("/search/upload", files={"file": ("news.csv", big.encode())}), 413, "TaskLimitError",
           "news.csv", "2,000 bytes per file", "ZOO2VEC_MAX_FILE_BYTES")
    huge = big * 40  # over the limit and the form's allowance: refused from its Content-Length, unread
    _error(api.post("/search/upload", files={"file": ("news.csv", huge.encode())}), 413, "TaskLimitError",
           "the request body", "ZOO2VEC_MAX_FILE_BYTES")
    _error(api.post("/search", json={"text": "news " * 1000}), 413, "TaskLimitError", "the request body")

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(50):
            yield b"news " * 100
        yield b'"}'

    _error(api.post("/search", content=chunks(), headers={"content-type": "application/json"}), 413,
           "TaskLimitError", "the request body", "more than 2,000 bytes")
    monkeypatch.setenv("ZOO2VEC_MAX_FILE_BYTES", "lots")
    _error(api.post("/search", json={"text": "news"}), 500, "ConfigError", "ZOO2VEC_MAX_FILE_BYTES='lots'")
    monkeypatch.delenv("ZOO2VEC_MAX_FILE_BYTES")
    assert api.post("/search", json={"text": "news"}).status_code == 200


def test_a_zoo_with_no_index_is_404(tmp_path):
    (tmp_path / "empty").mkdir()
    server = Server(tmp_path / "empty")
    try:
        assert server.client.get("/health").json()["snapshot"] is None
        _error(server.client.post("/search", json={"text": "news"}), 404, "IndexNotBuiltError", "zoo2vec index")
        _error(server.client.get("/models"), 404, "IndexNotBuiltError", "has no index yet")
    finally:
        server.stop()


# index swaps


def test_queries_during_index_swaps_all_answer_and_a_new_snapshot_is_used(tiny_zoo):
    server = Server(tiny_zoo)
    try:
        query = {"text": "handwritten digit recognition", "k": 3}
        before = [r["name"] for r in server.client.post("/search", json=query).json()["results"]]
        published, failed = [], []

        def reindex():
            try:
                for _ in range(5):
                    published.append(run_index(tiny_zoo).snapshot)
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                failed.append(exc)

        swapper = threading.Thread(target=reindex)
        swapper.start()
        answers, during = [], 0
        while swapper.is_alive() or len(answers) < 5:
            during += swapper.is_alive()
            response = server.client.post("/search", json=query)
            answers.append((response.status_code, [r["name"] for r in response.json().get("results", [])]))
        swapper.join()
        assert not failed and len(set(published)) == 5 and during >= 3
        assert all(status == 200 for status, _ in answers), answers
        assert all(names == before for _, names in answers), answers
        assert server.client.get("/health").json()["snapshot"] == published[-1]

        # a snapshot without one of the models: the next query and listing no longer show it
        shutil.rmtree(tiny_zoo / "models" / before[0])
        assert before[0] in run_index(tiny_zoo).removed
        after = server.client.post("/search", json=query).json()["results"]
        assert before[0] not in [r["name"] for r in after] and len(after) == 3
        assert before[0] not in [m["name"] for m in server.client.get("/models").json()["models"]]
    finally:
        server.stop()


def test_a_missing_extra_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(zoo2vec.MissingExtraError, match=r"zoo2vec\[api\]"):
        create_app(tmp_path)


def test_zoo2vec_api_serves_the_zoo_on_loopback(zoo_root):
    import subprocess

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cli = [sys.executable, "-c", "from zoo2vec.cli import main; main()"]
    proc = subprocess.Popen([*cli, "api", str(zoo_root), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "zoo2vec api did not answer"
            time.sleep(0.5)
        found = httpx.post(f"http://127.0.0.1:{port}/search", json={"text": "news topics", "k": 2}, timeout=120)
        assert found.status_code == 200 and len(found.json()["results"]) == 2
    finally:
        proc.terminate()
        proc.wait(30)
    missing = subprocess.run([*cli, "api", str(zoo_root / "nowhere")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no zoo at" in missing.stderr
