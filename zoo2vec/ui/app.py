"""The zoo2vec app (Streamlit): its pages, through Streamlit's own navigation.

Search (words and/or labelled samples in, ranked models out), Zoo (every indexed model, and a map of what they
know), Model (one model's card, concepts, behaviour, neighbours and history), Compare (a few models side by side on
the user's task) and Index (runs, snapshots and what fails now). Run with `zoo2vec serve` (or
`streamlit run zoo2vec/ui/app.py`); the zoo comes from $ZOO2VEC_ZOO, else the demo zoo.
"""

from __future__ import annotations

import streamlit as st

PAGES = [  # (file, title, url path, icon); the first is the default page, at / (Streamlit serves it there)
    ("views/search.py", "Search", None, ":material/search:"),
    ("views/zoo.py", "Zoo", "zoo", ":material/scatter_plot:"),
    ("views/model.py", "Model", "model", ":material/description:"),
    ("views/compare.py", "Compare", "compare", ":material/compare_arrows:"),
    ("views/index.py", "Index", "index", ":material/history:"),
]


def main():
    st.set_page_config(page_title="zoo2vec", layout="wide")
    pages = [st.Page(file, title=title, url_path=url, icon=icon, default=n == 0)
             for n, (file, title, url, icon) in enumerate(PAGES)]
    st.navigation(pages, position="top").run()


main()
