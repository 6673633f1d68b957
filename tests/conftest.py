import shutil
from pathlib import Path

import numpy as np
import pytest

from zoo2vec import settings

TINY_MODELS = ["digits8-linear", "digits8-mlp-0to4", "digits8-linear-parity", "bbc-bow", "bbc-bow-business-tech"]


def pytest_collection_modifyitems(config, items):
    """Tests marked shared_data are skipped, saying why, where the shared datasets are absent (a fresh clone);
    CI (.ci/run) always points ZOO2VEC_DATA at them, so there they run."""
    folder = settings.shared_data()
    if folder.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the shared datasets: {folder} does not exist (set ZOO2VEC_DATA to the "
                                   "shared data folder)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every cache and home folder in a temp dir; nothing reaches a hub."""
    monkeypatch.setenv("ZOO2VEC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ZOO2VEC_ZOO", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tiny_zoo_master(tmp_path_factory):
    """Five real models (8x8 digits and BBC news), trained in seconds and indexed, built once."""
    from zoo2vec.jobs.indexing import run_index
    from zoo2vec.train.demo_zoo import build_demo_zoo

    root = tmp_path_factory.mktemp("tiny") / "zoo"
    build_demo_zoo(root, names=TINY_MODELS)
    run_index(root)
    return root


@pytest.fixture
def run_that_fails(monkeypatch):
    """Index a zoo in a run that fails as it publishes (a full disk: the index write raises); the run raises too."""
    from zoo2vec.index.vector_index import VectorIndex
    from zoo2vec.jobs.indexing import run_index

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    def run(zoo: Path):
        with monkeypatch.context() as m:
            m.setattr(VectorIndex, "build", disk_full)
            with pytest.raises(OSError):
                run_index(zoo)

    return run


@pytest.fixture
def tiny_zoo(tiny_zoo_master, tmp_path) -> Path:
    """A private copy of the tiny zoo, index included, for tests that change it."""
    root = tmp_path / "zoo"
    shutil.copytree(tiny_zoo_master, root)
    return root


def installed_distribution(site: Path, package: str, source: str, entry_points: str, monkeypatch) -> Path:
    """A real installed distribution in `site` (put on sys.path): the module `package` holding `source`, and its
    dist-info naming `entry_points` (the lines of an entry_points.txt)."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(source)
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    name = package.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(site))
    return site


def sample_task(dataset: str, classes, shots: int = 10, seed: int = 0):
    """A Task from the held-out part of a packaged dataset (never used to train demo models)."""
    import zoo2vec
    from zoo2vec.data.datasets import packaged

    data = packaged(dataset, "holdout")
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(data.y == data.label_names.index(c)), shots, replace=False)
                          for c in classes])
    samples = list(data.x[idx]) if isinstance(data.x, np.ndarray) else [data.x[i] for i in idx]
    return zoo2vec.Task.from_arrays(samples, [data.label_names[i] for i in data.y[idx]])


@pytest.fixture(scope="session")
def make_task():
    return sample_task
