"""Model: one indexed model: its card and where each field came from, the concepts probing found, how it behaved on
the probe set, the models nearest it, and its indexing history and last failure. ?model=NAME opens it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import zoo2vec
from zoo2vec.api import ModelDetails
from zoo2vec.ui import session


def main():
    zoo = session.open_zoo()
    if zoo is None:
        return
    names = sorted(zoo.models()["name"])
    wanted = st.query_params.get("model")
    if wanted in names and st.session_state.get("model_from_url") != wanted:  # a link from another page
        st.session_state["model_from_url"] = st.session_state["model_name"] = wanted
    name = st.selectbox("Model", names, key="model_name")
    if name is None:
        st.info("This zoo has no indexed models.")
        return
    st.query_params["model"] = name
    try:
        details = zoo.model(name)
    except zoo2vec.Zoo2VecError as exc:
        st.error(str(exc))
        return
    st.title(name)
    if details.card.get("description"):
        st.write(details.card["description"])
    if details.failure is not None:
        when = details.failure["ran_at"]
        st.warning(f"Last failure, {when:%Y-%m-%d %H:%M} (snapshot {details.failure['snapshot_id']}, since fixed): "
                   f"{details.failure['status']}: {details.failure['reason']}")
    else:
        st.caption("Indexed without a failure in every recorded run.")
    left, right = st.columns(2)
    with left:
        _card(details)
        _nearest(details)
    with right:
        _concepts(details)
        _behaviour(details)
    _history(details)


def _card(details: ModelDetails) -> None:
    st.subheader("Card")
    rows = [{"field": key, "value": _shown(value), "from": details.origin.get(key, "")}
            for key, value in details.card.items() if key != "adapter"]
    st.table(pd.DataFrame(rows).set_index("field"))  # a plain table: long values wrap instead of being cut
    if not details.origin:
        st.caption("Where each field came from is unknown: the model's folder is no longer in the zoo.")


def _concepts(details: ModelDetails) -> None:
    st.subheader("Concepts found by probing")
    concepts = details.concepts
    labelled = bool(concepts["labelled"].all())
    st.caption("One concept per class of the model, with the share of the probe set it claims"
               + ("" if labelled else " (its card names no labels, so classes are numbered)"))
    st.dataframe(concepts[["label", "mass"]].rename(columns={"label": "concept", "mass": "share of probe set"}),
                 hide_index=True, key="concepts",
                 column_config={"share of probe set": st.column_config.ProgressColumn(
                     min_value=0.0, max_value=float(max(concepts["mass"].max(), 1e-9)), format="%.3f")})


def _behaviour(details: ModelDetails) -> None:
    st.subheader("Behaviour on the probe set")
    a, b, c = st.columns(3)
    a.metric("Mean confidence", f"{details.confidence:.2f}", help="mean top-class probability on the probe inputs")
    b.metric("Mean entropy", f"{details.entropy:.2f} nats", help="how spread its outputs are, averaged over the probe set")
    mass = details.concepts["mass"]
    b_share = float(mass.max() / mass.sum()) if mass.sum() > 0 else 0.0
    c.metric("Largest class share", f"{b_share:.0%}", help="balance: the share of the probe set its most used class takes")
    if len(details.top_probability):
        counts, edges = _histogram(details.top_probability)
        st.caption("Top-class probability over the probe inputs")
        st.bar_chart(pd.DataFrame({"probe inputs": counts}, index=[f"{e:.1f}" for e in edges[:-1]]), height=180)


def _histogram(values, bins: int = 10):
    import numpy as np

    return np.histogram(values, bins=bins, range=(0.0, 1.0))


def _nearest(details: ModelDetails) -> None:
    st.subheader("Nearest models")
    if details.nearest.empty:
        st.caption(f"No other {details.card.get('modality', '')} model is indexed.")
        return
    st.caption("By knowledge vector: how alike they decide on the probe set (cosine, same modality only)")
    for row in details.nearest.itertuples():
        st.page_link("views/model.py", label=f"{row.name}  ·  {row.similarity:.2f}", query_params={"model": row.name})


def _history(details: ModelDetails) -> None:
    st.subheader("Indexing history")
    runs = details.runs
    if runs.empty:
        st.caption("No probe run of this model is recorded.")
        return
    st.dataframe(runs.sort_values("ran_at", ascending=False), hide_index=True, key="model runs")


def _shown(value) -> str:
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


main()
