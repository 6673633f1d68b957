"""Search: words and/or labelled samples in, the zoo's models ranked for them out, each with its whole explanation.

The words and filters go into the page's URL (?q=...&k=...), so a search can be shared and reloaded; samples cannot
travel in a URL, so a shared link repeats the words part.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import zoo2vec
from zoo2vec.search.query import verifiable
from zoo2vec.search.verify import RECOMMENDED
from zoo2vec.ui import session

EXAMPLES = ["handwritten digit recognition", "news topic classification", "sentiment of product reviews",
            "recognise objects in photos"]
URL_KEYS = ("q", "k", "modality", "license", "tag", "max_params", "verify")
VERIFY_HELP = (f"With uploaded samples only: the first n models run on them, in worker processes, and come first by "
               f"the LogME of their outputs. {RECOMMENDED} is what cross-validation chose; a fresh app's first "
               "verification takes a few seconds more, to start the workers.")


def main():
    st.title("Find the right model for your task")
    zoo = session.open_zoo()
    if zoo is None:
        return
    models = zoo.models()
    from_url = _from_url()
    if "query_text" not in st.session_state and session.last_search() is not None:  # back from another page
        st.session_state["query_text"] = session.last_search().text
    where, k, verify = _sidebar(models)
    query = _query_form()
    if query is not None or from_url:
        text, upload, columns = query if query is not None else (st.session_state.get("query_text", ""), None, {})
        _search(zoo, text, upload, columns, where=where, k=k, verify=verify)
    search = session.last_search()
    if search is not None:
        _show(search)


def _from_url() -> bool:
    """Fill the widgets from the URL on the session's first visit; True when the URL holds a query to run."""
    if st.session_state.get("url_read"):
        return False
    st.session_state["url_read"] = True
    params = st.query_params
    if "q" not in params:
        return False
    st.session_state["query_text"] = params["q"]
    if params.get("k", "").isdigit():
        st.session_state["k"] = min(max(int(params["k"]), 1), 20)
    if params.get("modality") in ("image", "text"):
        st.session_state["modality"] = params["modality"]
    if params.get("license"):
        st.session_state["licenses"] = params["license"].split(",")
    if params.get("tag"):
        st.session_state["tag"] = params["tag"]
    if params.get("max_params", "").isdigit():
        st.session_state["max_params"] = int(params["max_params"])
    return bool(params["q"].strip())


def _sidebar(models: pd.DataFrame) -> tuple[dict, int, int]:
    """The filters (as a `where`), the number of results and how many of them to verify."""
    with st.sidebar:
        st.header("Filters")
        modality = st.selectbox("Modality", ["any", "image", "text"], key="modality")
        known = sorted(models["license"].dropna().unique())
        if any(x not in known for x in st.session_state.get("licenses", [])):  # e.g. a shared URL's
            st.session_state["licenses"] = [x for x in st.session_state["licenses"] if x in known]
        licenses = st.multiselect("License", known, key="licenses")
        all_tags = ["any"] + sorted({t for tags in models["tags"] for t in (tags if tags is not None else [])})
        if st.session_state.get("tag") not in all_tags:
            st.session_state["tag"] = "any"
        tag = st.selectbox("Tag", all_tags, key="tag")
        max_params = st.number_input("Max parameters (0 = no limit)", min_value=0, step=100_000, key="max_params")
        st.session_state.setdefault("k", 5)  # defaults through the session: a shared URL may have set them
        k = st.slider("Results", 1, 20, key="k")
        st.session_state.setdefault("verify", RECOMMENDED)
        verify = st.number_input("Verify: run the first n on your samples (0 = off)", min_value=0, max_value=20,
                                 key="verify", help=VERIFY_HELP)
    return _where(modality, licenses, tag, max_params), k, int(verify)


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


def _query_form():
    """(words, upload, table columns) once Search is pressed or an example clicked, else None."""
    st.pills("Examples", EXAMPLES, key="example", on_change=_example_picked, label_visibility="collapsed")
    example = st.session_state.pop("example_picked", None)
    upload = st.file_uploader("Labelled samples: a zip (one folder per class) or a table (CSV, TSV, Parquet)",
                              type=["zip", "csv", "tsv", "parquet"])
    columns = _columns_of(upload) if upload is not None else {}
    # a form: Enter in the text box searches, and typing does not rerun the app on every key
    with st.form("query"):
        text = st.text_input("What do you need?", placeholder="e.g. handwritten digit recognition", key="query_text")
        submitted = st.form_submit_button("Search", type="primary")
    return (text, upload, columns) if submitted or example is not None else None


def _example_picked() -> None:
    """An example clicked: it becomes the query (before the text box is drawn) and is searched at once."""
    st.session_state["query_text"] = st.session_state["example_picked"] = st.session_state["example"]
    st.session_state["example"] = None  # a pill, not a lasting choice


def _columns_of(upload) -> dict:
    """The text and label columns the user picks for an uploaded table ({} for a zip)."""
    names = session.table_columns(upload.name, upload.getvalue())
    if not names:
        return {}
    text_at = names.index("text") if "text" in names else 0
    label_at = names.index("label") if "label" in names else min(1, len(names) - 1)
    left, right = st.columns(2)
    text_column = left.selectbox("Text column", names, index=text_at, key=f"text column {upload.name}")
    label_column = right.selectbox("Label column", names, index=label_at, key=f"label column {upload.name}")
    return {"text_column": text_column, "label_column": label_column}


def _search(zoo: zoo2vec.Zoo, text: str, upload, columns: dict, *, where: dict, k: int, verify: int) -> None:
    """Run the search, showing each step; keep it in the session, or say what is missing or wrong."""
    if upload is None and not text.strip():
        st.warning("Type what you need or upload labelled samples.")
        return
    _to_url(text, k, where, verify)
    with st.status("Searching…", expanded=True) as status:
        try:
            task = None
            if upload is not None:
                status.write(f"Reading {upload.name}…")
                task = session.task_from_upload(upload.name, upload.getvalue(), **columns)
            status.write("Scoring the zoo (the first search of a fresh app loads the encoders: several seconds)…")
            verify = verify if task is not None and verifiable(task) else 0
            results = zoo.search(task, text or None, k=max(k, verify), where=where)
            if verify:
                first = [r.name for r in results[:verify]]  # what the ranking alone put first, to read meanwhile
                status.write(f"Running the first {len(first)} on your samples to measure them: {', '.join(first)}…")
                results = zoo.verify(results, task, verify)
            results = zoo2vec.SearchResults(results[:k])
        except zoo2vec.Zoo2VecError as exc:
            status.update(label="The search could not run", state="error", expanded=False)
            st.error(str(exc))
            return
        measured = f", {sum(r.measured is not None for r in results)} measured on your samples" if verify else ""
        ranked = f"{len(results)} model{'' if len(results) == 1 else 's'} ranked"
        status.update(label=f"{ranked}{measured}", state="complete", expanded=False)
    if task is not None and not verify and st.session_state.get("verify"):
        st.caption("Not verified: measuring a model on your samples needs at least two samples of every class.")
    session.keep_search(session.LastSearch(text, task, upload.name if upload is not None else None, results, verify))


def _to_url(text: str, k: int, where: dict, verify: int) -> None:
    params = {"q": text, "k": str(k)}
    if "modality" in where:
        params["modality"] = where["modality"]
    if "license" in where:
        params["license"] = ",".join(where["license"])
    if "tags" in where:
        params["tag"] = where["tags"]
    if "params" in where:
        params["max_params"] = str(where["params"][1])
    st.query_params.from_dict(params)


def _show(search: session.LastSearch) -> None:
    task, results = search.task, search.results
    if task is not None:
        st.info(f"Task{f' from {search.task_name}' if search.task_name else ''}: {task.modality}, {len(task)} samples,"
                f" classes {', '.join(task.label_names)}")
    if not results:
        st.warning("No model matches these filters.")
        return
    threshold = session.weak_fit(search)
    if threshold is not None:
        measured = any(r.measured is not None for r in results)
        st.warning(f"Nothing in this zoo fits well: the best {'measured' if measured else 'predicted'} score is under "
                   f"{threshold:.2f}. The models below are the closest the zoo has.", icon=":material/warning:")
    df = results.to_pandas()
    shown = df[["rank", "model", "score", "measured", "logme", "modality", "license", "params"]]
    st.dataframe(shown.dropna(axis="columns", how="all"), hide_index=True, key="results",
                 column_config={"score": session.unit_bar("score"), "measured": session.unit_bar("measured"),
                                "logme": st.column_config.NumberColumn(
                                    "LogME", format="%.3f", help="LogME of the model's outputs on your samples: "
                                    "what the verified models are ordered by (chosen by cross-validation; the measured "
                                    "accuracy is noisy on few samples)")})
    row = st.container(horizontal=True)
    row.download_button("Download CSV", df.to_csv(index=False), file_name="zoo2vec-results.csv", mime="text/csv")
    row.download_button("Download JSON", json.dumps([r.to_dict() for r in results], indent=2),
                          file_name="zoo2vec-results.json", mime="application/json")
    st.subheader("Why each model")
    for result in results:
        _explain(result, expanded=result.rank == 1)


def _explain(result: zoo2vec.SearchResult, *, expanded: bool) -> None:
    measured = f" · measured {result.measured:.3f}" if result.measured is not None else (
        " · could not be measured" if result.verify_error else "")
    with st.expander(f"{result.rank}. {result.name} · score {result.score:.3f}{measured}", expanded=expanded):
        st.markdown(result.why.replace("; ", "  \n"))
        if result.verify_error:
            st.error(f"Verification failed: {result.verify_error}")
        shares, matches = len(result.shares) > 1, bool(result.matches)
        left, right = st.columns(2) if shares and matches else (st.container(), st.container())
        if matches:  # which task class matched which of the model's concepts, and how clearly
            left.caption("Your classes and the model's concepts")
            left.dataframe([{"task class": m.task_class, "model concept": m.model_concept or "(none left)",
                             "similarity": round(m.similarity, 3), "margin over next concept": round(m.margin, 3)}
                            for m in result.matches], hide_index=True)
        if shares:  # where the score came from: samples (task), card text, concepts found by probing, prior
            right.caption("Share of the score")
            right.bar_chart(pd.DataFrame({"share": result.shares}), horizontal=True, height=160)
        card = {k: v for k, v in result.card.items() if k not in ("adapter", "name") and v not in (None, "", [])}
        st.caption("Card")
        st.dataframe(pd.DataFrame({"field": list(card), "value": [_shown(v) for v in card.values()]}),
                     hide_index=True)
        st.page_link("views/model.py", label=f"Open {result.name}'s page", icon=":material/arrow_forward:",
                     query_params={"model": result.name})


def _shown(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


main()
