"""Zoo: every indexed model in a sortable, filterable table, and a map of what they know.

The map projects the models' knowledge vectors (how each decides on its modality's probe set, the vectors search
retrieves by) to two dimensions with PCA; after a search with samples, the task's own vector is projected with the
same fitted PCA, so the user's task appears among the models it is closest to.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from zoo2vec.ui import session

HOVER = ["name", "modality", "license", "params", "training_data", "tags", "description"]


def main():
    st.title("The zoo")
    zoo = session.open_zoo()
    if zoo is None:
        return
    models = zoo.models()
    shown = _filtered(models)
    st.caption(f"{len(shown)} of {len(models)} models; click a column header to sort")
    st.dataframe(shown[["name", "modality", "license", "params", "tags", "label_names", "training_data",
                        "description", "confidence", "indexed_at"]], hide_index=True, key="models",
                 column_config={"confidence": st.column_config.NumberColumn(format="%.2f", help=(
                     "mean top-class probability on the probe set"))})
    st.subheader("Map of what the models know")
    _map(zoo, models, shown)


def _filtered(models: pd.DataFrame) -> pd.DataFrame:
    left, middle, right = st.columns([2, 1, 1])
    words = left.text_input("Filter by name, description, training data or tag", key="zoo filter")
    modalities = middle.multiselect("Modality", sorted(models["modality"].unique()), key="zoo modality")
    licenses = right.multiselect("License", sorted(models["license"].dropna().unique()), key="zoo license")
    keep = pd.Series(True, index=models.index)
    if words.strip():
        haystack = (models["name"] + " " + models["description"].fillna("") + " " + models["training_data"].fillna("")
                    + " " + models["tags"].map(lambda t: " ".join(t) if t is not None else ""))
        keep &= haystack.str.contains(words.strip(), case=False, regex=False)
    if modalities:
        keep &= models["modality"].isin(modalities)
    if licenses:
        keep &= models["license"].isin(licenses)
    return models[keep]


def _map(zoo, models: pd.DataFrame, shown: pd.DataFrame) -> None:
    import altair as alt

    names, vectors = zoo.knowledge()
    info = models.set_index("name")
    search = session.last_search()
    modalities = sorted(set(info["modality"]))
    left, right = st.columns(2)
    which = left.radio("Models", ["all", *modalities], horizontal=True, key="zoo map modality",
                       index=1 + modalities.index(search.task.modality) if search and search.task else 0)
    colour_by = right.radio("Colour by", ["modality", "license", "first tag"], horizontal=True, key="zoo colour")
    keep = [n for n, name in enumerate(names) if which == "all" or info.at[name, "modality"] == which]
    names, vectors = [names[n] for n in keep], vectors[keep]
    if len(names) < 2:
        st.info("The map needs at least two indexed models.")
        return
    projection, points = _project(vectors)
    frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "name": names})
    frame = frame.join(info[[c for c in HOVER if c != "name"]], on="name")
    frame["tags"] = frame["tags"].map(lambda t: ", ".join(t) if t is not None else "")
    frame["params"] = frame["params"].map(lambda p: "?" if pd.isna(p) else f"{int(p):,}")
    frame["shown"] = frame["name"].isin(shown["name"])
    frame["colour"] = frame["tags"].str.split(", ").str[0] if colour_by == "first tag" else frame[colour_by]
    task = _task_point(zoo, projection, which)
    everything = np.vstack([points, task[["x", "y"]].to_numpy()]) if task is not None else points
    x_scale, y_scale = _padded(everything[:, 0], right=0.25), _padded(everything[:, 1])  # room for the names
    base = alt.Chart(frame).encode(x=alt.X("x", title="PC 1", scale=x_scale, axis=alt.Axis(labels=False)),
                                   y=alt.Y("y", title="PC 2", scale=y_scale, axis=alt.Axis(labels=False)))
    layers = [base.mark_circle(size=140).encode(
        color=alt.Color("colour", title=colour_by), opacity=alt.condition("datum.shown", alt.value(0.9), alt.value(0.15)),
        tooltip=HOVER),
        base.mark_text(align="left", dx=9, fontSize=11).encode(text="name")]
    if task is not None:
        mark = alt.Chart(task).encode(x=alt.X("x", scale=x_scale), y=alt.Y("y", scale=y_scale))
        layers.append(mark.mark_point(shape="diamond", size=260, filled=True, color="black").encode(tooltip=["name"]))
        layers.append(mark.mark_text(align="left", dx=11, fontWeight="bold").encode(text="name"))
    st.altair_chart(alt.layer(*layers).properties(height=460).interactive(), key="zoo map")
    st.caption("Each point is a model, placed by how it decides on its modality's probe set (PCA of the knowledge "
               "vectors): nearby models decide alike. Image and text models are probed with different sets, so "
               "distances between the two groups mean nothing."
               + (" Your task is placed by its own decisions on the probe set, through the same projection: nearness "
                  "in two dimensions is rough, the Search page's scores are exact." if task is not None
                  else " Search with labelled samples to see your task on the map."))


@st.cache_data
def _project(vectors: np.ndarray):
    from sklearn.decomposition import PCA

    projection = PCA(n_components=2, random_state=0).fit(vectors)
    return projection, projection.transform(vectors)


def _padded(values: np.ndarray, *, right: float = 0.08, left: float = 0.08):
    """A scale over `values` with a margin on each side (a share of their span)."""
    import altair as alt

    low, high = float(values.min()), float(values.max())
    span = (high - low) or 1.0
    return alt.Scale(domain=[low - left * span, high + right * span], nice=False, zero=False)


def _task_point(zoo, projection, which: str) -> pd.DataFrame | None:
    """The last search's task on the map (its knowledge vector through the map's PCA), None without samples or when
    the map shows only the other modality."""
    search = session.last_search()
    if search is None or search.task is None or which not in ("all", search.task.modality):
        return None
    vector = session.task_vector(zoo)
    point = projection.transform(np.asarray(vector, dtype=np.float32)[None, :])[0]
    return pd.DataFrame({"x": [point[0]], "y": [point[1]], "name": [f"your task ({search.task_name or 'samples'})"]})


main()
