"""The app's pages, each a script Streamlit runs (see zoo2vec/ui/app.py). Not named pages/: Streamlit would take
that folder for its older file-based navigation and run a page without the app around it."""
