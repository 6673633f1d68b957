"""The zoo2vec search app (Streamlit): words and/or a labelled task in, ranked models out.

Run with `zoo2vec serve` (or `streamlit run zoo2vec/ui/app.py`); the zoo comes from $ZOO2VEC_ZOO,
else the demo zoo.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

import zoo2vec
from zoo2vec import settings
from zoo2vec.errors import TaskLimitError

if TYPE_CHECKING:
    from streamlit.runtime.uploaded_file_manager import UploadedFile


@st.cache_resource
def _open(path: str) -> zoo2vec.Zoo:
    return zoo2vec.open(path)


def task_from_upload(name: str, data: bytes) -> zoo2vec.Task:
    """A Task from an uploaded file's name and bytes (zip of class folders or a table), through the same checks and
    limits as Task.from_path (a TaskError, shown as a message, for anything it cannot take)."""
    limit = settings.MAX_FILE_BYTES.get()
    if len(data) > limit:  # before the upload is written anywhere
        raise TaskLimitError(name, f"an upload of {len(data):,} bytes", settings.MAX_FILE_BYTES.what, limit,
                             settings.MAX_FILE_BYTES.setting)
    suffix = Path(name).suffix.lower()
    if suffix not in (".zip", ".csv", ".tsv", ".parquet"):
        raise zoo2vec.TaskError(f"{name}: upload a .zip (one folder per class) or a .csv, .tsv or .parquet table")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        return zoo2vec.Task.from_path(path)


def main():
    st.set_page_config(page_title="zoo2vec", layout="wide")
    st.title("zoo2vec: find the right model for your task")
    opened = _open_zoo()
    if opened is None:
        return
    zoo, models = opened
    where, k, verify = _sidebar(models)
    query = _query_form()
    if query is None:
        return
    found = _search(zoo, *query, where=where, k=k, verify=verify)
    if found is not None:
        _show_results(*found)


def _open_zoo() -> tuple[zoo2vec.Zoo, pd.DataFrame] | None:
    """The zoo and its models, or None once the user has been told why it cannot be opened."""
    root = os.environ.get("ZOO2VEC_ZOO") or str(settings.demo_zoo_path())
    try:
        zoo = _open(root)
        models = zoo.models()
    except zoo2vec.Zoo2VecError as exc:
        st.error(str(exc))
        return None
    st.caption(f"{len(models)} models indexed in {root}")
    return zoo, models


def _sidebar(models: pd.DataFrame) -> tuple[dict, int, int]:
    """The filters (as a `where`), the number of results and how many of them to verify."""
    with st.sidebar:
        st.header("Filters")
        modality = st.selectbox("Modality", ["any", "image", "text"])
        licenses = st.multiselect("License", sorted(models["license"].dropna().unique()))
        all_tags = sorted({t for tags in models["tags"] for t in (tags if tags is not None else [])})
        tag = st.selectbox("Tag", ["any"] + all_tags)
        max_params = st.number_input("Max parameters (0 = no limit)", min_value=0, value=0, step=100_000)
        k = st.slider("Results", 1, 20, 5)
        verify = st.number_input("Verify: run the first n on your samples (0 = off)",
                                 min_value=0, max_value=20, value=0)
    return _where(modality, licenses, tag, max_params), k, verify


def _where(modality: str, licenses: list[str], tag: str, max_params: int) -> dict:
    where: dict = {}
    if modality != "any":
        where["modality"] = modality
    if licenses:
        where["license"] = list(licenses)
    if tag != "any":
        where["tags"] = tag
    if max_params:
        where["params"] = ("<=", max_params)
    return where


def _query_form() -> tuple[str, UploadedFile | None] | None:
    """The words and the uploaded file once Search is pressed, else None."""
    # a form: Enter in the text box searches, and typing does not rerun the app on every key
    with st.form("query"):
        text = st.text_input("What do you need?", placeholder="e.g. handwritten digit recognition")
        upload = st.file_uploader("Labelled samples: a zip (one folder per class) or a CSV (text,label)",
                                  type=["zip", "csv", "tsv", "parquet"])
        submitted = st.form_submit_button("Search", type="primary")
    return (text, upload) if submitted else None


def _search(
    zoo: zoo2vec.Zoo, text: str, upload: UploadedFile | None, *, where: dict, k: int, verify: int
) -> tuple[zoo2vec.Task | None, zoo2vec.SearchResults] | None:
    """(task or None, results), or None once the user has been told what is missing or wrong."""
    try:
        task = task_from_upload(upload.name, upload.getvalue()) if upload is not None else None
        if task is None and not text.strip():
            st.warning("Type what you need or upload labelled samples.")
            return None
        results = zoo.search(task, text or None, k=k, where=where, verify=int(verify) if task is not None else 0)
    except zoo2vec.Zoo2VecError as exc:
        st.error(str(exc))
        return None
    return task, results


def _show_results(task: zoo2vec.Task | None, results: zoo2vec.SearchResults) -> None:
    if task is not None:
        st.info(f"Task: {task.modality}, {len(task)} samples, classes {', '.join(task.label_names)}")
    if not results:
        st.warning("No model matches these filters.")
        return
    df = results.to_pandas().dropna(axis="columns", how="all")  # e.g. no task: no task scores to show
    st.dataframe(df, hide_index=True, use_container_width=True,
                 column_config={"score": _unit_bar("score"), "measured": _unit_bar("measured")})
    _show_best(results[0])


def _unit_bar(column: str) -> dict:
    return st.column_config.ProgressColumn(column, min_value=0.0, max_value=1.0, format="%.3f")


def _show_best(best: zoo2vec.SearchResult) -> None:
    st.subheader(f"Best match: {best.name}")
    st.write(best.why)
    if len(best.shares) > 1:  # where the score came from: samples (task), card text, concepts found by probing, prior
        st.caption("Share of the score")
        st.bar_chart(pd.DataFrame({"share": best.shares}), horizontal=True, height=160)
    if best.matches:  # which task class matched which of the model's concepts, and how clearly
        st.dataframe([{"task class": m.task_class, "model concept": m.model_concept or "(none left)",
                       "similarity": round(m.similarity, 3), "margin over next concept": round(m.margin, 3)}
                      for m in best.matches], hide_index=True)
    st.json(best.card, expanded=False)


main()
