"""Task: the few labelled samples a user brings to search with."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo2vec.data.images import as_chw
from zoo2vec.errors import TaskError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TEXT_SUFFIXES = {".txt"}
TABLE_SUFFIXES = {".csv", ".parquet", ".tsv"}


@dataclass(frozen=True)
class Task:
    """Labelled query samples of one modality.

    `samples` are (C, H, W) float32 images in [0, 1] or strings; `labels` index into `label_names`.
    """

    samples: tuple
    labels: np.ndarray
    label_names: tuple[str, ...]
    modality: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def __repr__(self) -> str:
        return f"Task({self.modality}, {len(self)} samples, classes={list(self.label_names)})"

    @classmethod
    def from_arrays(cls, samples: Sequence, labels: Sequence, *, label_names: Sequence[str] | None = None) -> Task:
        """From images (each (H, W), (H, W, C) or (C, H, W)) or strings, and one label per sample.

        Labels may be names or integers; with `label_names`, integer labels index into it.
        """
        samples = list(samples)
        labels = list(np.asarray(labels).tolist()) if not isinstance(labels, list) else labels
        if len(samples) == 0:
            raise TaskError("the task is empty: give at least two labelled samples of two classes")
        if len(samples) != len(labels):
            raise TaskError(f"{len(samples)} samples but {len(labels)} labels: give one label per sample")
        modality, samples = _samples_of_one_modality(samples)
        y, names = _encode_labels(labels) if label_names is None else _encode_labels_into(labels, label_names)
        if len(names) < 2:
            raise TaskError(f"the task has a single class ({names[0]!r}): ranking models needs at least two classes")
        return cls(samples, y, names, modality)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Task:
        """One sub-folder per class holding image files or .txt files."""
        folder = Path(folder)
        if not folder.is_dir():
            raise TaskError(f"{folder} is not a folder")
        samples, labels = _read_class_folders(folder)
        if not samples:
            raise TaskError(
                f"{folder} holds no samples: expected one sub-folder per class with image files "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) or .txt files"
            )
        return cls.from_arrays(samples, labels)

    @classmethod
    def from_table(cls, path: str | Path, *, text_column: str = "text", label_column: str = "label") -> Task:
        """A CSV, TSV or Parquet file with a text column and a label column."""
        import pandas as pd

        path = Path(path)
        try:
            if path.suffix.lower() == ".parquet":
                df = pd.read_parquet(path)
            else:
                sep = "\t" if path.suffix.lower() == ".tsv" else ","
                df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise TaskError(f"{path} does not exist") from None
        except Exception as exc:  # pandas raises many kinds for a broken file
            raise TaskError(f"cannot read {path.name} as a table: {exc}") from None
        missing = [c for c in (text_column, label_column) if c not in df.columns]
        if missing:
            raise TaskError(f"{path.name} lacks column(s) {missing}; it has {list(df.columns)}. "
                            "Name the columns with text_column= / label_column= (CLI: --text-column, --label-column)")
        return cls.from_arrays([str(t) for t in df[text_column]], [str(l) for l in df[label_column]])

    @classmethod
    def from_zip(cls, path: str | Path, **table_options) -> Task:
        """A zip of a class-per-folder tree, or of one CSV/Parquet file."""
        path = Path(path)
        archive = _open_zip(path)
        with archive, tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp).resolve()
            _extract_within(archive, root, path.name)
            tables = [p for p in root.rglob("*") if p.suffix.lower() in TABLE_SUFFIXES and "__MACOSX" not in p.parts]
            if len(tables) == 1:
                return cls.from_table(tables[0], **table_options)
            return cls.from_folder(_class_folders_root(root))

    @classmethod
    def from_path(cls, path: str | Path, **table_options) -> Task:
        """Any of the above, by what the path is."""
        path = Path(path)
        if not path.exists():
            raise TaskError(f"{path} does not exist")
        if path.is_dir():
            return cls.from_folder(path)
        suffix = path.suffix.lower()
        if suffix == ".zip":
            return cls.from_zip(path, **table_options)
        if suffix in TABLE_SUFFIXES:
            return cls.from_table(path, **table_options)
        raise TaskError(f"{path.name}: give a folder, a .zip, or a .csv/.tsv/.parquet file")


def _samples_of_one_modality(samples: list) -> tuple[str, tuple]:
    """The task's modality and its samples: texts as given, or images brought to (C, H, W)."""
    is_text = [isinstance(s, str) for s in samples]
    if all(is_text):
        if any(not s.strip() for s in samples):
            raise TaskError("the task holds an empty text sample; remove it or give it text")
        return "text", tuple(samples)
    if any(is_text):
        raise TaskError("the task mixes texts and images: a task is of one modality")
    return "image", tuple(as_chw(s, where=f"sample {i}") for i, s in enumerate(samples))


def _encode_labels(labels: list) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels taken as names: classes are the distinct names, sorted."""
    names = tuple(sorted({str(l) for l in labels}))
    index = {n: i for i, n in enumerate(names)}
    return np.asarray([index[str(l)] for l in labels], dtype=np.int64), names


def _encode_labels_into(labels: list, label_names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as integers into `label_names`, or as its names; classes no sample uses are dropped."""
    names = tuple(str(n) for n in label_names)
    y = _label_indices(labels, names)
    if y.min() < 0 or y.max() >= len(names):
        raise TaskError(f"integer labels must lie in 0..{len(names) - 1} to index label_names")
    used = sorted(set(y.tolist()))
    return np.searchsorted(used, y), tuple(names[i] for i in used)


def _label_indices(labels: list, names: tuple[str, ...]) -> np.ndarray:
    try:
        return np.asarray([int(l) for l in labels], dtype=np.int64)
    except (TypeError, ValueError):
        pass  # not integers: they must be names
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(l) for l in labels} - set(index))
    if unknown:
        raise TaskError(f"labels {unknown} are not in label_names {list(names)}")
    return np.asarray([index[str(l)] for l in labels], dtype=np.int64)


def _read_class_folders(folder: Path) -> tuple[list, list[str]]:
    """Samples and their labels (the sub-folder's name); files of other kinds are skipped."""
    samples, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        for f in sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith(".")):
            sample = _read_sample(f)
            if sample is not None:
                samples.append(sample)
                labels.append(sub.name)
    return samples, labels


def _read_sample(path: Path) -> str | np.ndarray | None:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _read_text(path)
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path)
    return None


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TaskError(f"cannot read {path.name} as a zip file: {exc}") from None


def _extract_within(archive: zipfile.ZipFile, root: Path, name: str) -> None:
    """Extract into `root`, refusing the whole archive if any member would land outside it (zip slip)."""
    for member in archive.namelist():
        if not (root / member).resolve().is_relative_to(root):
            raise TaskError(f"{name} holds a path that leaves the archive: {member!r}")
    archive.extractall(root)


def _class_folders_root(root: Path) -> Path:
    # a zip of a folder usually holds that folder as its single top-level entry
    top = [p for p in root.iterdir() if not p.name.startswith(("__", "."))]
    return top[0] if len(top) == 1 and top[0].is_dir() and _has_only_dirs(top[0]) else root


def _has_only_dirs(folder: Path) -> bool:
    return all(p.is_dir() for p in folder.iterdir() if not p.name.startswith("."))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"cannot read {path} as UTF-8 text: {exc}") from None


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L" if img.mode in ("L", "1", "P", "LA", "I", "I;16") else "RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise TaskError(f"cannot read {path} as an image: {exc}") from None
