"""Where zoo2vec keeps its files and finds shared data; read from the environment each time."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Data home for built zoos, probe outputs and caches (ZOO2VEC_HOME, default ~/.cache/zoo2vec)."""
    return Path(os.environ.get("ZOO2VEC_HOME", Path.home() / ".cache" / "zoo2vec")).expanduser()


def shared_data() -> Path:
    """Folder of the shared public datasets (ZOO2VEC_DATA, default ../shared/data)."""
    return Path(os.environ.get("ZOO2VEC_DATA", Path.cwd().parent / "shared" / "data")).expanduser()


def demo_zoo_path() -> Path:
    return home() / "zoos" / "demo"


def bench_zoo_path() -> Path:
    return home() / "zoos" / "bench"
