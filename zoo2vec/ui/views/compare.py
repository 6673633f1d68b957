"""Compare: two to four models side by side on the user's task (the last search's samples and words): predicted
score, measured accuracy (each model run on the samples), and which of the model's concepts each task class
matched. ?models=A,B opens a comparison."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import zoo2vec
from zoo2vec.ui import session

MAX_MODELS = 4


def main():
    st.title("Compare models on your task")
    zoo = session.open_zoo()
    if zoo is None:
        return
    names = sorted(zoo.models()["name"])
    search = session.last_search()
    if "compare_models" not in st.session_state:
        from_url = [n for n in st.query_params.get("models", "").split(",") if n in names]
        from_search = [r.name for r in search.results][:3] if search is not None else []
        st.session_state["compare_models"] = (from_url or from_search)[:MAX_MODELS]
    chosen = st.multiselect(f"Models (two to {MAX_MODELS})", names, max_selections=MAX_MODELS, key="compare_models")
    task = search.task if search is not None else None
    if task is not None:
        st.info(f"Your task{f' from {search.task_name}' if search.task_name else ''}: {task.modality}, {len(task)} "
                f"samples, classes {', '.join(task.label_names)}. The models are run on these samples to measure them.")
    else:
        st.info("No samples from the Search page: the models are compared on words only. Search with labelled "
                "samples first to measure them on your task.")
    text = st.text_input("Words", value=search.text if search is not None else "", key="compare_text")
    if len(chosen) < 2:
        st.caption("Pick at least two models.")
        return
    st.query_params["models"] = ",".join(chosen)
    if not st.button("Compare", type="primary") and st.session_state.get("compared_for") != (tuple(chosen), text):
        return
    results = _compare(zoo, task, text, chosen)
    if results is not None:
        st.session_state["compared_for"] = (tuple(chosen), text)
        _show(results, chosen)


def _compare(zoo: zoo2vec.Zoo, task, text: str, chosen: list[str]) -> zoo2vec.SearchResults | None:
    if task is None and not text.strip():
        st.warning("Give some words, or search with labelled samples first.")
        return None
    key = (tuple(chosen), text, id(task))
    cached = st.session_state.get("comparison")
    if cached is not None and cached[0] == key:
        return cached[1]
    with st.status("Comparing…", expanded=True) as status:
        if task is not None:
            status.write(f"Running {len(chosen)} models on your {len(task)} samples…")
        try:
            results = zoo.search(task, text or None, k=len(chosen), where={"name": chosen},
                                 verify=len(chosen) if task is not None else 0)
        except zoo2vec.Zoo2VecError as exc:
            status.update(label="The comparison could not run", state="error")
            st.error(str(exc))
            return None
        status.update(label="Compared", state="complete", expanded=False)
    st.session_state["comparison"] = (key, results)
    return results


def _show(results: zoo2vec.SearchResults, chosen: list[str]) -> None:
    left_out = [n for n in chosen if n not in {r.name for r in results}]
    if left_out:
        st.warning(f"Not comparable with this task (another modality): {', '.join(left_out)}")
    rows = {"predicted score": [r.score for r in results],
            "measured accuracy": [r.measured for r in results],
            "decisions agree (kernel alignment)": [r.kernel_alignment for r in results],
            "classes match concepts": [r.concept_match for r in results],
            "words score": [r.words_score for r in results],
            "card text similarity": [r.text_similarity for r in results],
            "modality": [r.card.get("modality") for r in results],
            "params": [r.card.get("params") for r in results]}
    table = pd.DataFrame(rows, index=[r.name for r in results]).T.dropna(how="all")
    st.table(table.map(_shown))  # a few rows, all shown: a plain table
    for column, result in zip(st.columns(len(results)), results):
        with column:
            st.markdown(f"**{result.name}**")
            if result.verify_error:
                st.error(f"Could not be measured: {result.verify_error}")
            if result.matches:
                st.dataframe([{"task class": m.task_class, "model concept": m.model_concept or "(none left)",
                               "similarity": round(m.similarity, 3)} for m in result.matches], hide_index=True)
            st.caption(result.why)


def _shown(value) -> str:
    if value is None or isinstance(value, float) and pd.isna(value):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


main()
