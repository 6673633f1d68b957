"""Remote models over the Open Inference Protocol v2 (KServe, Triton, MLServer), and a small server.

Client: POST {url}/v2/models/{model}/infer with one input tensor (FP32 images, BYTES text) and read
the first output tensor as (N, n_classes). Requests are split so none exceeds max_request_bytes;
a response larger than max_response_bytes is refused; `timeout_s` bounds each request whole, from connecting to
the last byte received (every socket operation waits at most for what is left of it), so an endpoint that
trickles bytes fails at the deadline like one that never answers.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import numpy as np

from zoo2vec.errors import ModelFailure, ZooError
from zoo2vec.zoo.card import ModelCard


class RemoteModel:
    def __init__(
        self,
        url: str,
        card: ModelCard,
        *,
        model: str | None = None,
        timeout_s: float = 30.0,
        max_request_bytes: int = 8 << 20,
        max_response_bytes: int = 64 << 20,
    ):
        if not url.startswith(("http://", "https://")):
            raise ZooError(f"model {card.name!r}: endpoint url {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        self.card = card
        self.model = model or card.name
        self.timeout_s = timeout_s
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes

    def _input(self, chunk) -> dict:
        if self.card.modality == "image":
            x = np.asarray(chunk, dtype=np.float32)
            return {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        texts = [str(t) for t in chunk]
        return {"name": "input", "shape": [len(texts)], "datatype": "BYTES", "data": texts}

    def _chunks(self, batch):
        n = len(batch)
        if n == 0:
            return
        if self.card.modality == "image":
            per_item = 12 * int(np.prod(np.asarray(batch[0]).shape))  # ~ JSON text per float
        else:
            per_item = max(len(str(t).encode()) for t in batch) + 8
        step = max(1, self.max_request_bytes // max(per_item, 1))
        for start in range(0, n, step):
            yield batch[start : start + step]

    def predict(self, batch) -> np.ndarray:
        endpoint = f"{self.url}/v2/models/{self.model}/infer"
        clock = _Deadline(self.timeout_s)
        with httpcore.ConnectionPool(network_backend=clock, max_connections=1) as pool:
            outs = [self._output(self._post(pool, clock, endpoint, self._body(chunk)))
                    for chunk in self._chunks(batch)]
        return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=np.float32)

    def _body(self, chunk) -> bytes:
        body = json.dumps({"inputs": [self._input(chunk)]}).encode()
        if len(body) > self.max_request_bytes:
            raise ModelFailure(self.card.name, f"one input is larger than max_request_bytes={self.max_request_bytes}")
        return body

    def _post(self, pool, clock: _Deadline, endpoint: str, body: bytes) -> bytearray:
        clock.start()
        timeouts = {"connect": self.timeout_s, "read": self.timeout_s, "write": self.timeout_s, "pool": self.timeout_s}
        try:
            with pool.stream("POST", endpoint, content=body, extensions={"timeout": timeouts},
                             headers={"content-type": "application/json", "content-length": str(len(body))}) as r:
                data = self._read_capped(r, clock)
                if r.status != 200:
                    raise ModelFailure(self.card.name, f"endpoint answered HTTP {r.status}: {bytes(data[:200])!r}")
        except httpcore.TimeoutException:
            raise ModelFailure(self.card.name, f"endpoint timed out after {self.timeout_s:g} s") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
                httpcore.ProxyError) as exc:
            raise ModelFailure(self.card.name, f"endpoint unreachable: {exc or type(exc).__name__}") from None
        return data

    def _read_capped(self, response, clock: _Deadline) -> bytearray:
        """The response body, read piece by piece so an endpoint cannot fill memory with more than the cap, nor
        outlast the request's deadline."""
        headers = {k.lower(): v for k, v in response.headers}
        try:
            declared = int(headers.get(b"content-length") or 0)
        except ValueError:
            raise ModelFailure(self.card.name, f"response content-length {headers[b'content-length']!r} is no number") from None
        if declared > self.max_response_bytes:
            raise ModelFailure(self.card.name, f"response of {declared} bytes exceeds max_response_bytes")
        data = bytearray()
        for piece in response.iter_stream():
            clock.left()  # raises once the deadline has passed
            data += piece
            if len(data) > self.max_response_bytes:
                raise ModelFailure(self.card.name, "response exceeds max_response_bytes")
        return data

    def _output(self, data: bytearray) -> np.ndarray:
        try:
            output = json.loads(data)["outputs"][0]
            return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelFailure(self.card.name, f"response is not an Open Inference Protocol v2 answer: {exc}") from None


class _Deadline(httpcore.NetworkBackend):
    """httpcore's socket backend, every operation bounded by what is left until the request's deadline."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._inner = httpcore.SyncBackend()

    def start(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def left(self, timeout: float | None = None, error=httpcore.ReadTimeout) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise error(f"the request took longer than {self.seconds:g} s")
        return remaining if timeout is None else min(timeout, remaining)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, self.left(timeout, httpcore.ConnectTimeout), local_address,
                                         socket_options)
        return _Stream(stream, self)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        stream = self._inner.connect_unix_socket(path, self.left(timeout, httpcore.ConnectTimeout), socket_options)
        return _Stream(stream, self)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(min(seconds, self.left()))


class _Stream(httpcore.NetworkStream):
    _PIECE = 64 << 10  # a body is sent in pieces, each bounded by what is left

    def __init__(self, stream, clock: _Deadline):
        self._stream = stream
        self._clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._clock.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for start in range(0, len(view), self._PIECE) or [0]:
            self._stream.write(bytes(view[start:start + self._PIECE]),
                               self._clock.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        stream = self._stream.start_tls(ssl_context, server_hostname, self._clock.left(timeout,
                                                                                       httpcore.ConnectTimeout))
        return _Stream(stream, self._clock)

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class InferenceServer:
    """Serve black-box models over Open Inference Protocol v2 on a local port (a context manager).

    For tests and for exposing an in-process model to another zoo2vec; not a production server.
    """

    def __init__(self, models, *, host: str = "127.0.0.1", port: int = 0):
        self.models = {m.card.name: m for m in models}
        self._httpd = _QuietServer((host, port), _OipHandler)
        self._httpd.daemon_threads = True
        self._httpd.models = self.models
        self.host, self.port = self._httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> InferenceServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="oip-server", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    models: dict  # name -> black-box model, shared with the InferenceServer that owns this

    def handle_error(self, request, client_address):
        """A client that gave up (timeout, size limit) is not an error of the server; print nothing."""


class _OipHandler(BaseHTTPRequestHandler):
    server: _QuietServer

    def log_message(self, *args):  # the library prints nothing
        pass

    def _send(self, status: int, payload: dict):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[:3] == ["v2", "health", "ready"]:
            return self._send(200, {"ready": True})
        if len(parts) == 3 and parts[:2] == ["v2", "models"] and parts[2] in self.server.models:
            card = self.server.models[parts[2]].card
            return self._send(200, {"name": card.name, "platform": "zoo2vec", "inputs": [], "outputs": []})
        return self._send(404, {"error": f"not found: {self.path}"})

    def do_POST(self):
        parts = self.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v2", "models"] or parts[3] != "infer":
            return self._send(404, {"error": f"not found: {self.path}"})
        model = self.server.models.get(parts[2])
        if model is None:
            return self._send(404, {"error": f"unknown model {parts[2]!r}"})
        try:
            batch = self._read_batch()
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return self._send(400, {"error": f"bad request: {exc}"})
        try:
            out = np.asarray(model.predict(batch), dtype=np.float32)
        except Exception as exc:  # the served model's failure goes back to the client as a 500
            return self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
        self._send(200, {
            "model_name": model.card.name,
            "outputs": [{"name": "probabilities", "shape": list(out.shape), "datatype": "FP32",
                         "data": out.ravel().tolist()}],
        })

    def _read_batch(self):
        length = int(self.headers.get("content-length", 0))
        tensor = json.loads(self.rfile.read(length))["inputs"][0]
        if tensor["datatype"] == "BYTES":
            return [str(t) for t in tensor["data"]]
        return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
