"""Index: what the indexing job did: runs since the last publish that failed or were killed, the last published run
and what it changed, the models that fail now (with reasons), every run (one snapshot each published), and every
model's probe runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from zoo2vec.ui import session

TABLE_ROWS = 50  # failures shown as a plain table up to this many; a scrolling grid beyond


def main():
    st.title("Indexing")
    zoo = session.open_zoo()
    if zoo is None:
        return
    history = zoo.history()
    published = history[history["status"] == "published"]
    for run in history.itertuples():  # the runs since the last publish that did not publish, or are running now
        if run.status == "published":
            break
        (st.info if run.status == "running" else st.error)(
            f"Run of {run.started_at:%Y-%m-%d %H:%M} UTC: {run.status} in its {run.report.get('stage')} stage"
            + (f". {run.report['reason']}" if run.report.get("reason") else ""))
    if published.empty:
        st.info("No indexing run is recorded for this snapshot.")
    else:
        _last_run(published.iloc[0])
    _failures(zoo.failures())
    if not history.empty:
        st.subheader("Runs and snapshots")
        st.caption("One row per run, newest first; each published run made one snapshot, a failed or killed one "
                   "none (the snapshot before stayed current)")
        st.dataframe(history.drop(columns="report"), hide_index=True, key="history",
                     column_config={"seconds": st.column_config.NumberColumn(format="%.1f")})
    with st.expander("Every probe run of every model"):
        st.dataframe(zoo.runs().sort_values("ran_at", ascending=False), hide_index=True, key="probe runs")


def _last_run(run: pd.Series) -> None:
    st.subheader(f"Last run: {run['ended_at']:%Y-%m-%d %H:%M} UTC")
    st.caption(f"snapshot {run['snapshot_id']} · {run['executor']}, {run['workers']} workers · {run['seconds']:.1f} s")
    columns = st.columns(6)
    for column, what in zip(columns, ["models", "probed", "reused", "removed", "failed", "skipped"]):
        column.metric(what, int(run[what]))
    report = run["report"]
    changed = [(f"probed (new or changed): {len(report.get('probed', []))}", report.get("probed", [])),
               (f"removed: {len(report.get('removed', []))}", report.get("removed", [])),
               (f"failed: {len(report.get('failed', {}))}", [f"{n}: {why}" for n, why in report.get("failed", {}).items()]),
               (f"skipped: {len(report.get('skipped', {}))}", [f"{n}: {why}" for n, why in report.get("skipped", {}).items()])]
    st.markdown("**What changed**")
    for title, names in changed:
        if names:
            st.markdown(f"*{title}*\n\n" + "\n".join(f"- {n}" for n in names))
    if not any(names for _, names in changed):
        st.caption(f"Nothing: the run reused all {len(report.get('reused', []))} models as they were.")
    for warning in report.get("warnings", []):
        st.warning(warning)


def _failures(failures: pd.DataFrame) -> None:
    st.subheader("Failing now")
    if failures.empty:
        st.success("Every model of the zoo is indexed: the last run had no failure.")
        return
    st.caption("The models the last run could not index, once each, with the reason (fixed or deleted ones are gone)")
    if len(failures) <= TABLE_ROWS:  # a plain table wraps each reason whole
        st.table(failures.set_index("name"))
    else:
        st.dataframe(failures, hide_index=True, key="failures")


main()
