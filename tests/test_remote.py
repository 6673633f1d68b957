import time

import numpy as np
import pytest
import torch

from zoo2vec import ModelCard, ModelFailure
from zoo2vec.zoo import architectures
from zoo2vec.zoo.blackbox import TorchModel, checked_predict
from zoo2vec.zoo.remote import InferenceServer, RemoteModel


def _trained_digit_model():
    """A real linear model trained on the 8x8 scikit-learn digits for a few epochs."""
    from zoo2vec.data.datasets import packaged
    from zoo2vec.train.recipes import train_classifier

    data = packaged("sklearn-digits", "train")
    module = architectures.build("linear", {"input_shape": [1, 8, 8], "n_classes": 10})
    train_classifier(module, torch.from_numpy(data.x), data.y, epochs=3, seed=0)
    card = ModelCard("digits-linear", "image", label_names=data.label_names, input_shape=(1, 8, 8))
    return TorchModel(module, card)


class Slow:
    card = ModelCard("slow", "text", label_names=["a", "b"])

    def predict(self, batch):
        time.sleep(3)
        return np.full((len(batch), 2), 0.5)


class Echo:
    card = ModelCard("echo-text", "text", label_names=["short", "long"])

    def __init__(self):
        self.calls = 0

    def predict(self, batch):
        self.calls += 1
        lengths = np.array([len(t) for t in batch], dtype=np.float32)
        return np.stack([1 / (1 + lengths), lengths / (1 + lengths)], axis=1)


class Broken:
    card = ModelCard("broken", "text", label_names=["a", "b"])

    def predict(self, batch):
        raise ValueError("weights are missing")


@pytest.fixture(scope="module")
def server():
    local = _trained_digit_model()
    echo = Echo()
    with InferenceServer([local, Slow(), echo, Broken()]) as srv:
        yield srv, local, echo


def test_remote_image_model_answers_like_the_local_one(server):
    srv, local, _ = server
    from zoo2vec.data.datasets import packaged

    x = packaged("sklearn-digits", "holdout").x[:50]
    remote = RemoteModel(srv.url, local.card)
    assert np.allclose(checked_predict(remote, x), checked_predict(local, x), atol=1e-5)


def test_text_batches_are_split_under_the_request_limit(server):
    srv, _, echo = server
    texts = [f"sentence number {i} " * 5 for i in range(40)]
    echo.calls = 0
    remote = RemoteModel(srv.url, echo.card, max_request_bytes=1000)
    out = checked_predict(remote, texts)
    assert echo.calls > 1
    assert np.allclose(out, echo.predict(texts), atol=1e-6)


def test_timeout_is_a_model_failure(server):
    srv, _, _ = server
    remote = RemoteModel(srv.url, Slow.card, timeout_s=0.3)
    t0 = time.perf_counter()
    with pytest.raises(ModelFailure, match="timed out"):
        checked_predict(remote, ["x"])
    assert time.perf_counter() - t0 < 2.5


def test_oversized_response_is_refused(server):
    srv, _, echo = server
    remote = RemoteModel(srv.url, echo.card, max_response_bytes=100)
    with pytest.raises(ModelFailure, match="max_response_bytes"):
        checked_predict(remote, ["a"] * 50)


def test_unknown_model_and_unreachable_endpoint(server):
    srv, _, echo = server
    card = ModelCard("nobody", "text")
    with pytest.raises(ModelFailure, match="HTTP 404"):
        checked_predict(RemoteModel(srv.url, card), ["a"])
    with pytest.raises(ModelFailure, match="unreachable"):
        checked_predict(RemoteModel("http://127.0.0.1:9", card, timeout_s=2), ["a"])


def test_health_endpoint(server):
    import httpx

    srv, _, _ = server
    assert httpx.get(f"{srv.url}/v2/health/ready").json() == {"ready": True}


def test_served_model_failure_bad_request_and_oversized_input(server):
    import httpx

    srv, _, echo = server
    with pytest.raises(ModelFailure, match="HTTP 500.*ValueError: weights are missing"):
        checked_predict(RemoteModel(srv.url, Broken.card), ["a"])
    bad = httpx.post(f"{srv.url}/v2/models/echo-text/infer", content=b"not json")
    assert bad.status_code == 400 and bad.json()["error"].startswith("bad request:")
    with pytest.raises(ModelFailure, match="one input is larger than max_request_bytes=50"):
        checked_predict(RemoteModel(srv.url, echo.card, max_request_bytes=50), ["x" * 100])


def test_model_metadata_and_unknown_paths(server):
    import httpx

    srv, _, echo = server
    assert httpx.get(f"{srv.url}/v2/models/echo-text").json()["name"] == "echo-text"
    assert httpx.get(f"{srv.url}/v2/models/nobody").status_code == 404
    assert httpx.post(f"{srv.url}/v2/models/echo-text/explain", content=b"{}").status_code == 404


def test_answer_that_is_not_open_inference_protocol_is_a_model_failure():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotOip(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            body = b'{"answer": 1}'
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotOip)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        remote = RemoteModel(f"http://127.0.0.1:{httpd.server_address[1]}", Echo.card)
        with pytest.raises(ModelFailure, match="not an Open Inference Protocol v2 answer"):
            checked_predict(remote, ["a"])
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Trickle:
    """A real loopback HTTP server that answers one byte every `every` seconds, in the headers or in the body
    (a valid Open Inference Protocol answer, so only the clock can stop it), for as long as the client listens."""

    def __init__(self, where: str, every: float = 0.25):
        import socket
        import threading

        self.where, self.every = where, every
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import json

        body = json.dumps({"outputs": [{"name": "p", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 0.5]}]})
        body = body.encode() + b" " * 200
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(1 << 16)  # the request (small)
            slow, fast = (head, b"") if self.where == "headers" else (b"", head)
            try:
                conn.sendall(fast)
                for i in range(len(slow + body)):
                    if self.stop.wait(self.every):
                        return
                    conn.sendall((slow + body)[i:i + 1])
            except OSError:  # the client hung up: what it should do at its deadline
                return

    def close(self):
        self.stop.set()
        self.listener.close()


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
@pytest.mark.parametrize("where", ["headers", "body"])
def test_the_timeout_bounds_the_whole_request_against_a_trickling_server(where):
    """Each byte came well within the read timeout, so a server sending one every 0.25 s held the request for as long
    as it liked (issue 14: a byte every 2 s outlived a 5 s timeout); now the request fails at its deadline."""
    server = _Trickle(where)
    try:
        remote = RemoteModel(server.url, Echo.card, timeout_s=1.5)
        started = time.perf_counter()
        with pytest.raises(ModelFailure, match="timed out after 1.5 s") as exc:
            checked_predict(remote, ["a"])
        assert time.perf_counter() - started < 1.5 + 0.5
        assert exc.value.model == "echo-text"
    finally:
        server.close()


def test_the_timeout_bounds_sending_to_a_server_that_never_reads():
    import socket

    listener = socket.socket()  # connects (the backlog), never accepts nor reads, and buffers little
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        remote = RemoteModel(f"http://127.0.0.1:{listener.getsockname()[1]}", Echo.card, timeout_s=1.0,
                             max_request_bytes=64 << 20)
        started = time.perf_counter()
        with pytest.raises(ModelFailure, match="timed out after 1 s"):
            checked_predict(remote, ["x" * (4 << 20)])  # more than the socket buffers hold
        assert time.perf_counter() - started < 1.0 + 0.5
    finally:
        listener.close()


@pytest.mark.parametrize("timeout", ["soon", -1, 0, float("nan"), float("inf"), True])
def test_a_card_with_a_bad_timeout_is_a_zoo_error(tmp_path, timeout):
    from zoo2vec import ZooError
    from zoo2vec.zoo.adapters import ModelSource
    from zoo2vec.zoo.adapters.http import load

    card = ModelCard("remote", "text", label_names=["a", "b"],
                     adapter={"kind": "http", "url": "http://127.0.0.1:9", "timeout_s": timeout})
    with pytest.raises(ZooError, match="timeout_s must be a positive number"):
        load(ModelSource(tmp_path, card))
    ok = ModelCard("remote", "text", label_names=["a", "b"], adapter={"kind": "http", "url": "http://127.0.0.1:9"})
    assert load(ModelSource(tmp_path, ok)).timeout_s == 30
