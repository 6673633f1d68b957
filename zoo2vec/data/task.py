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
        samples = list(samples) if not isinstance(samples, np.ndarray) else list(samples)
        labels = list(np.asarray(labels).tolist()) if not isinstance(labels, list) else labels
        if len(samples) == 0:
            raise TaskError("the task is empty: give at least two labelled samples of two classes")
        if len(samples) != len(labels):
            raise TaskError(f"{len(samples)} samples but {len(labels)} labels: give one label per sample")
        if all(isinstance(s, str) for s in samples):
            modality = "text"
            if any(not s.strip() for s in samples):
                raise TaskError("the task holds an empty text sample; remove it or give it text")
            samples = tuple(samples)
        elif any(isinstance(s, str) for s in samples):
            raise TaskError("the task mixes texts and images: a task is of one modality")
        else:
            modality = "image"
            samples = tuple(as_chw(s, where=f"sample {i}") for i, s in enumerate(samples))
        if label_names is not None:
            names = tuple(str(n) for n in label_names)
            try:
                y = np.asarray([int(l) for l in labels], dtype=np.int64)
            except (TypeError, ValueError):
                index = {n: i for i, n in enumerate(names)}
                unknown = sorted({str(l) for l in labels} - set(index))
                if unknown:
                    raise TaskError(f"labels {unknown} are not in label_names {list(names)}") from None
                y = np.asarray([index[str(l)] for l in labels], dtype=np.int64)
            if y.min() < 0 or y.max() >= len(names):
                raise TaskError(f"integer labels must lie in 0..{len(names) - 1} to index label_names")
            used = sorted(set(y.tolist()))
            y = np.searchsorted(used, y)
            names = tuple(names[i] for i in used)
        else:
            names = tuple(sorted({str(l) for l in labels}))
            index = {n: i for i, n in enumerate(names)}
            y = np.asarray([index[str(l)] for l in labels], dtype=np.int64)
        if len(names) < 2:
            raise TaskError(f"the task has a single class ({names[0]!r}): ranking models needs at least two classes")
        return cls(samples, y, names, modality)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Task:
        """One sub-folder per class holding image files or .txt files."""
        folder = Path(folder)
        if not folder.is_dir():
            raise TaskError(f"{folder} is not a folder")
        samples, labels = [], []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
            for f in sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith(".")):
                suffix = f.suffix.lower()
                if suffix in TEXT_SUFFIXES:
                    samples.append(_read_text(f))
                elif suffix in IMAGE_SUFFIXES:
                    samples.append(_read_image(f))
                else:
                    continue
                labels.append(sub.name)
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
                df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
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
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise TaskError(f"cannot read {path.name} as a zip file: {exc}") from None
        with archive, tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp).resolve()
            for member in archive.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise TaskError(f"{path.name} holds a path that leaves the archive: {member!r}")
            archive.extractall(root)
            tables = [p for p in root.rglob("*") if p.suffix.lower() in TABLE_SUFFIXES and "__MACOSX" not in p.parts]
            if len(tables) == 1:
                return cls.from_table(tables[0], **table_options)
            # a zip of a folder usually holds that folder as its single top-level entry
            top = [p for p in root.iterdir() if not p.name.startswith(("__", "."))]
            base = top[0] if len(top) == 1 and top[0].is_dir() and _has_only_dirs(top[0]) else root
            return cls.from_folder(base)

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
