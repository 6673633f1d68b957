"""zoo2vec over HTTP, for programs that are not Python: JSON in and out, over the public API (zoo2vec.open, zoo.search).

    GET  /health          the zoo and its current snapshot (null before the first index)
    GET  /models          the indexed models as records; ?where={"license": "mit"} filters them
    GET  /models/{name}   one model's record and its card
    POST /search          {"text": "...", "samples": [...], "labels": [...], "k": 5, "where": {...}, "verify": 0}
    POST /search/upload   multipart: `file` (a .zip, .csv, .tsv or .parquet task) and the same fields as form fields
                          (`where` as a JSON string), plus `text_column` and `label_column` for a table

`where` is the API's filter form in JSON: field -> value, [values] (any of) or {"operator": value}, e.g.
{"license": "mit", "params": {"<": 1e6}, "tags": ["digits", "news"]}.

Every error is JSON {"error": message, "type": class name}: zoo2vec's errors (zoo2vec.errors) as 4xx (a bad task,
query or filter 400, a limit 413, an unknown model or a zoo with no index 404), a body that is not what the endpoint
takes 400 (not JSON) or 422, an unknown endpoint 404; never a traceback. A body over settings.MAX_FILE_BYTES is refused
(413) from its declared length, before it is read, or as soon as more than that arrives.

Searches run one at a time (a Zoo's snapshot and its DuckDB connection are not shared between threads); /health
answers meanwhile. Each search reads the zoo's current snapshot, so a newly published index is used from the next
query on, and a query during a swap answers from the snapshot it opened.
"""

import dataclasses
import datetime as dt
import json
import math
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo2vec import settings
from zoo2vec.errors import (
    ConfigError,
    FilterError,
    IndexNotBuiltError,
    MissingExtraError,
    ModelFailure,
    TaskError,
    TaskLimitError,
    UntrustedCheckpointError,
    Zoo2VecError,
    ZooError,
    require,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

ENDPOINTS = ("GET /health", "GET /models", "GET /models/{name}", "POST /search", "POST /search/upload")
UPLOAD_SUFFIXES = (".zip", ".csv", ".tsv", ".parquet")
FORM_OVERHEAD_BYTES = 64 << 10  # an upload's body may exceed the file limit by its form fields and part headers
_LIMITED_PATHS = {"/search": 0, "/search/upload": FORM_OVERHEAD_BYTES}  # path -> bytes allowed beyond the file limit

# most specific first: the first class an error is an instance of gives its status
_STATUS = (
    (TaskLimitError, 413),
    (IndexNotBuiltError, 404),
    (FilterError, 400),
    (TaskError, 400),
    (ModelFailure, 500),  # a model of the zoo failed, not the request
    (UntrustedCheckpointError, 500),
    (ZooError, 404),  # an unknown model (or zoo)
    (ConfigError, 500),  # a setting of the server's
    (MissingExtraError, 500),
    (Zoo2VecError, 400),
)
_FORM_FIELDS = {"file", "text", "k", "where", "verify", "text_column", "label_column"}
_WHERE_FORM = ('where must be a JSON object of field -> value, [values] (any of) or {"operator": value}, like '
               '{"license": "mit", "params": {"<": 1e6}}')


def status_of(error: Zoo2VecError) -> int:
    """The HTTP status a zoo2vec error answers with."""
    return next(code for kind, code in _STATUS if isinstance(error, kind))


def error_body(message: str, kind: str) -> dict[str, str]:
    return {"error": message, "type": kind}


def create_app(zoo_root: Path) -> "FastAPI":
    """The REST app on the zoo at `zoo_root` (opened now: a missing zoo raises ZooError here, not per request)."""
    require("fastapi", "api")
    require("python_multipart", "api")  # python-multipart: /search/upload's form
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    import zoo2vec

    zoo = zoo2vec.open(zoo_root)
    one_at_a_time = threading.Lock()

    class SearchBody(BaseModel):
        """A search: words, labelled text samples, or both."""

        model_config = ConfigDict(extra="forbid")
        text: str | None = Field(None, description="the task in words, e.g. 'handwritten digit recognition'")
        samples: list[str] | None = Field(None, description="text samples of the task, one label each")
        labels: list[str | int] | None = Field(None, description="the samples' labels (class names)")
        k: int = Field(5, description="how many models to return")
        where: Any = Field(None, description='filters, e.g. {"license": "mit", "params": {"<": 1e6}}')
        verify: int = Field(0, description="run the first n candidates on the samples and measure them")

    app = FastAPI(title="zoo2vec", version=zoo2vec.__version__,
                  description="Find the right model in a model zoo for your task.")
    app.add_middleware(_BodyLimit)

    @app.exception_handler(Zoo2VecError)
    async def zoo2vec_error(request: Request, exc: Zoo2VecError):
        return JSONResponse(error_body(str(exc), type(exc).__name__), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = next(e for e in errors if e.get("type") == "json_invalid")
            reason = (detail.get("ctx") or {}).get("error", "")
            return JSONResponse(error_body(f"the body is not valid JSON{': ' + str(reason) if reason else ''}",
                                           "InvalidJSON"), status_code=400)
        return JSONResponse(error_body(_validation_message(errors), "RequestValidationError"), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        error = getattr(exc, "zoo2vec_error", None)  # _BodyLimit's, raised as an HTTPException to pass FastAPI's body reading
        if error is not None:
            return await zoo2vec_error(request, error)
        endpoints = ", ".join(ENDPOINTS)
        if exc.status_code == 404:
            message, kind = f"no endpoint {request.method} {request.url.path}: the endpoints are {endpoints}", "NotFound"
        elif exc.status_code == 405:
            message, kind = f"{request.url.path} does not take {request.method}: the endpoints are {endpoints}", "MethodNotAllowed"
        else:
            message, kind = str(exc.detail), "HTTPError"
        return JSONResponse(error_body(message, kind), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # logged by the server; the client gets no traceback
        return JSONResponse(error_body(f"internal error ({type(exc).__name__}); the server's log has the details",
                                       "InternalError"), status_code=500)

    @app.get("/health")
    def health():
        from zoo2vec.index.snapshots import SnapshotStore

        current = SnapshotStore(zoo.root).current()
        return {"status": "ok", "zoo": str(zoo.root), "snapshot": current.name if current else None}

    @app.get("/models")
    def models(where: str | None = None):
        """The indexed models; `where` is a JSON filter object."""
        conditions = _where_from_json(_json_field("where", where)) if where else None
        with one_at_a_time:
            return {"models": _model_records(zoo, conditions)}

    @app.get("/models/{name:path}")
    def model(name: str):
        with one_at_a_time:
            return _model_record(zoo, name)

    @app.post("/search")
    def search(body: SearchBody):
        task = _text_task(body.samples, body.labels)
        return _search(zoo, one_at_a_time, task, body.text, body.k, body.where, body.verify)

    @app.post("/search/upload")
    async def search_upload(request: Request):
        form = await request.form(max_files=1, max_fields=len(_FORM_FIELDS))
        try:
            unknown = sorted(set(form) - _FORM_FIELDS)
            if unknown:
                raise TaskError(f"unknown form fields {unknown}: the fields are {sorted(_FORM_FIELDS)}")
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise TaskError("send the task as the form's `file` field (a .zip, .csv, .tsv or .parquet file), "
                                "e.g. curl -F file=@task.csv")
            fields = {key: form.get(key) for key in _FORM_FIELDS - {"file"}}
            for key, value in fields.items():
                if value is not None and not isinstance(value, str):
                    raise TaskError(f"the form field {key!r} is a file: give it as text")
            k = _whole_number("k", fields["k"], 5)
            verify = _whole_number("verify", fields["verify"], 0)
            where = _json_field("where", fields["where"]) if fields["where"] else None
            table_options = {key: fields[key] for key in ("text_column", "label_column") if fields[key]}
            with tempfile.TemporaryDirectory(prefix="zoo2vec-upload-") as tmp:
                path = Path(tmp) / _safe_name(upload.filename)
                await _save(upload, path)
                task = await run_in_threadpool(zoo2vec.Task.from_path, path, **table_options)
            return await run_in_threadpool(_search, zoo, one_at_a_time, task, fields["text"], k, where, verify)
        finally:
            await form.close()

    return app


def serve(zoo_root: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the REST endpoint on the zoo until Ctrl-C (uvicorn; `pip install 'zoo2vec[api]'`). Listens on loopback
    unless another host is given: there is no authentication."""
    uvicorn = require("uvicorn", "api")
    app = create_app(Path(zoo_root))
    uvicorn.run(app, host=host, port=port, log_level="info")


class _BodyLimit:
    """Refuses a search body over the file limit (settings.MAX_FILE_BYTES): from its Content-Length before any of it
    is read, and while it arrives when it declares none (or lies), so no more than the limit is ever kept.

    What the client still sends is read and dropped (up to DRAIN_BYTES) before the answer: a connection closed with
    unread data is reset, and a reset can destroy the answer before the client reads it. A client that asked
    `Expect: 100-continue` (curl does for big uploads) is answered at once and never sends the body."""

    DRAIN_BYTES = 256 << 20

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        slack = _LIMITED_PATHS.get(scope.get("path")) if scope["type"] == "http" else None
        if slack is None or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        try:
            limit = settings.MAX_FILE_BYTES.get()
        except ConfigError as exc:
            return await _send_error(exc, scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit + slack:
            if headers.get(b"expect", b"").lower() != b"100-continue":
                await _drain(receive, min(int(declared), self.DRAIN_BYTES))
            return await _send_error(_too_large(f"a body of {int(declared):,} bytes", limit), scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit + slack:
                    from starlette.exceptions import HTTPException

                    if message.get("more_body", False):
                        await _drain(receive, self.DRAIN_BYTES)
                    error = _too_large(f"more than {limit + slack:,} bytes", limit)
                    refused = HTTPException(status_code=status_of(error), detail=str(error))
                    refused.zoo2vec_error = error
                    raise refused
            return message

        return await self.app(scope, counted, send)


async def _drain(receive, at_most: int) -> None:
    """Read and drop the rest of a request's body, up to `at_most` bytes."""
    dropped = 0
    while dropped <= at_most:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _too_large(found: str, limit: int) -> TaskLimitError:
    return TaskLimitError("the request body", found, settings.MAX_FILE_BYTES.what, limit, settings.MAX_FILE_BYTES.setting)


async def _send_error(exc: Zoo2VecError, scope, receive, send) -> None:
    from fastapi.responses import JSONResponse

    response = JSONResponse(error_body(str(exc), type(exc).__name__), status_code=status_of(exc),
                            headers={"Connection": "close"})  # the body may not have been read to its end
    await response(scope, receive, send)


def _validation_message(errors) -> str:
    """FastAPI's validation errors in a line: `k: Input should be a valid integer; extra: ...`."""
    parts = []
    for error in errors[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        if error.get("type") == "extra_forbidden":
            parts.append(f"unknown field {where!r}: the fields are text, samples, labels, k, where, verify")
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _json_field(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        error = FilterError if name == "where" else TaskError
        raise error(f"{name} is not valid JSON ({exc}); {_WHERE_FORM if name == 'where' else ''}".rstrip("; ")) from None


def _whole_number(name: str, raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise TaskError(f"{name} must be a whole number, got {raw[:100]!r}") from None


def _where_from_json(where: Any) -> dict[str, Any] | None:
    """The API's filter form from JSON's: {"operator": value} becomes (operator, value); the rest is as in the API."""
    if where is None:
        return None
    if not isinstance(where, dict):
        raise FilterError(f"{_WHERE_FORM}, not {type(where).__name__}")
    converted: dict[str, Any] = {}
    for field, cond in where.items():
        if isinstance(cond, dict):
            if not cond:
                raise FilterError(f"filter {field!r} is an empty object: give {{\"operator\": value}}, like {{\"<\": 1e6}}")
            conditions = [(op, value) for op, value in cond.items()]
            converted[field] = conditions[0] if len(conditions) == 1 else conditions
        else:
            converted[field] = cond
    return converted


def _text_task(samples: list | None, labels: list | None):
    from zoo2vec.data.task import Task

    if samples is None and labels is None:
        return None
    if samples is None or labels is None:
        raise TaskError("give `samples` and `labels` together: one label per sample")
    return Task.from_arrays(samples, labels)


def _search(zoo, lock: threading.Lock, task, text: str | None, k: int, where: Any, verify: int) -> dict:
    where = _where_from_json(where)
    with lock:
        results = zoo.search(task, text, k=k, where=where, verify=verify)
    query = {"text": text, "k": k, "where": where, "verify": verify,
             "task": None if task is None else {"modality": task.modality, "samples": len(task),
                                                "classes": list(task.label_names)}}
    return _plain({"query": query, "results": [_result_record(r) for r in results]})


def _result_record(result) -> dict:
    """Every field of a SearchResult, with the card's modality, license and params beside them."""
    record = {field.name: getattr(result, field.name) for field in dataclasses.fields(result)}
    card = result.card or {}
    record.update(modality=card.get("modality"), license=card.get("license"), params=card.get("params"))
    record["matches"] = [dataclasses.asdict(m) if dataclasses.is_dataclass(m) else m for m in result.matches]
    return record


def _model_records(zoo, where: dict[str, Any] | None) -> list[dict]:
    from zoo2vec.index import filters

    # one snapshot for both reads: a swap between them would mix two catalogs
    snapshot = zoo._current_snapshot.get()  # noqa: SLF001 - Zoo.models() takes no filters yet
    frame = snapshot.catalog.models()
    if where:
        allowed = set(snapshot.allowed_ids(filters.checked(where)).tolist())
        frame = frame[frame["model_id"].isin(allowed)]
    return [_plain(row) for row in frame.to_dict("records")]


def _model_record(zoo, name: str) -> dict:
    snapshot = zoo._current_snapshot.get()  # noqa: SLF001
    frame = snapshot.catalog.models()
    rows = frame[frame["name"] == name].to_dict("records")
    if not rows:
        names = frame["name"].tolist()
        shown = ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "")
        raise ZooError(f"no model {name!r} in the zoo {zoo.root}: GET /models lists them ({shown})")
    record = _plain(rows[0])
    record["card"] = _plain(snapshot.catalog.cards([rows[0]["model_id"]]).get(rows[0]["model_id"], {}))
    return record


def _plain(value: Any) -> Any:
    """`value` as JSON can hold it: numpy and pandas values as Python's, tuples and arrays as lists, a float that is
    not finite (or pandas' missing value) as null, dates as ISO text."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, bool)):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
    except (TypeError, ValueError):
        pass
    return str(value)


def _safe_name(filename: str | None) -> str:
    """The upload's name, kept for messages, as a plain file name; its suffix says how to read it."""
    name = Path(filename or "").name
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise TaskError(f"{name or 'the upload'}: send a {', '.join(UPLOAD_SUFFIXES[:-1])} or {UPLOAD_SUFFIXES[-1]} "
                        "file (a folder goes zipped)")
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).stem)[:100] or "task"
    return stem + suffix


async def _save(upload, path: Path) -> None:
    """Copy the upload (already refused by _BodyLimit when over the limit) to `path`, a chunk at a time."""
    await upload.seek(0)
    with path.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            out.write(chunk)
