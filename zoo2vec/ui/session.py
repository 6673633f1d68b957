"""What every page of the app shares: the open zoo, the last search (kept in the session so the Zoo map, Model and
Compare pages can use the user's task), and turning an upload into a Task."""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

import zoo2vec
from zoo2vec import settings
from zoo2vec.data.task import TABLE_SUFFIXES
from zoo2vec.errors import TaskLimitError

# "Nothing in this zoo fits well" when the best model's score is below these. With samples the score is a predicted
# (or, verified, a measured) accuracy on the user's task: under one half, the best model gets most samples wrong.
WEAK_TASK_FIT = 0.5
# A sentence alone is scored lower (the words scorer does not know the task's classes): in the tiny test zoo, the
# best model for an unrelated sentence ("bird species from photos", "spam email filter") scores 0.24-0.28 and for a
# related one ("handwritten digit recognition", "news topic") 0.36-0.43.
WEAK_WORDS_FIT = 0.3


@dataclass
class LastSearch:
    """The query and results of the session's latest search."""

    text: str
    task: zoo2vec.Task | None
    task_name: str | None  # the uploaded file's name
    results: zoo2vec.SearchResults
    verify: int


class _OneAtATime:
    """The zoo, called by one script run at a time. Streamlit runs each session's script in its own thread and a
    rerun can start before the run it replaces has left a call, while the zoo's catalog is one DuckDB connection,
    which refuses a second call in flight ("connection is busy") instead of waiting."""

    def __init__(self, zoo: zoo2vec.Zoo):
        self._zoo = zoo
        self._lock = threading.RLock()

    def __getattr__(self, name: str):
        value = getattr(self._zoo, name)
        if not callable(value):
            return value

        def locked(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return locked


@st.cache_resource
def _open(path: str) -> _OneAtATime:
    return _OneAtATime(zoo2vec.open(path))


def zoo_root() -> str:
    return os.environ.get("ZOO2VEC_ZOO") or str(settings.demo_zoo_path())


def open_zoo() -> zoo2vec.Zoo | None:
    """The zoo, or None once the page has said why it cannot be opened (no zoo there, or not indexed)."""
    root = zoo_root()
    try:
        zoo = _open(root)
        models = zoo.models()  # an unindexed zoo says so here
    except zoo2vec.Zoo2VecError as exc:
        st.error(str(exc))
        return None
    st.sidebar.caption(f"{len(models)} models indexed in the zoo **{Path(root).name}**", help=root)
    return zoo


def last_search() -> LastSearch | None:
    return st.session_state.get("last_search")


def keep_search(search: LastSearch) -> None:
    st.session_state["last_search"] = search
    st.session_state.pop("task_vector", None)  # the Zoo map projects the new task when it is next shown


def task_vector(zoo: zoo2vec.Zoo):
    """The last search's task as a knowledge vector (None without samples), computed once per search."""
    search = last_search()
    if search is None or search.task is None:
        return None
    if "task_vector" not in st.session_state:
        st.session_state["task_vector"] = zoo.task_vector(search.task)
    return st.session_state["task_vector"]


def weak_fit(search: LastSearch) -> float | None:
    """The threshold the best result falls below (the zoo holds nothing that fits well), else None."""
    if not search.results:
        return None
    best = max((r.measured for r in search.results if r.measured is not None), default=None)
    if best is None:
        best = max(r.score for r in search.results)
    threshold = WEAK_TASK_FIT if search.task is not None else WEAK_WORDS_FIT
    return threshold if best < threshold else None


def table_columns(name: str, data: bytes) -> list[str] | None:
    """The column names of an uploaded table (CSV, TSV or Parquet), None for other uploads or unreadable ones (the
    Task's own reading says why when the search runs)."""
    import io

    suffix = Path(name).suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(io.BytesIO(data)).schema_arrow.names)
        if suffix in (".csv", ".tsv"):
            import pandas as pd

            return [str(c) for c in pd.read_csv(io.BytesIO(data), nrows=0, sep="\t" if suffix == ".tsv" else ",").columns]
    except Exception:  # pandas and pyarrow raise many kinds for a broken file
        return None
    return None


def task_from_upload(name: str, data: bytes, **table_options) -> zoo2vec.Task:
    """A Task from an uploaded file's name and bytes (zip of class folders or a table; `text_column`,
    `label_column` for a table), through the same checks and limits as Task.from_path (a TaskError, shown as a
    message, for anything it cannot take)."""
    limit = settings.MAX_FILE_BYTES.get()
    if len(data) > limit:  # before the upload is written anywhere
        raise TaskLimitError(name, f"an upload of {len(data):,} bytes", settings.MAX_FILE_BYTES.what, limit,
                             settings.MAX_FILE_BYTES.setting)
    suffix = Path(name).suffix.lower()
    if suffix not in (".zip", *TABLE_SUFFIXES):
        raise zoo2vec.TaskError(f"{name}: upload a .zip (one folder per class) or a .csv, .tsv or .parquet table")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        return zoo2vec.Task.from_path(path, **table_options)


def unit_bar(column: str) -> dict:
    """A 0-1 score drawn as a bar with its value."""
    return st.column_config.ProgressColumn(column, min_value=0.0, max_value=1.0, format="%.3f")
