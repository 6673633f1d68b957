"""Task: the few labelled samples a user brings to search with.

Every input is bounded before the work it would cost (zoo2vec.settings.LIMITS, each raised by its ZOO2VEC_MAX_*
setting): samples and classes are counted while files are listed and rows are read (a table 10,000 rows at a time),
files are measured before they are read, images by the size their header declares before they are decoded, zips by
their entries and declared sizes before extraction and by the bytes actually written while extracting. Whatever an
input holds, reading it ends in a Task or a TaskError (TaskLimitError for a limit).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from zoo2vec import settings
from zoo2vec.data.images import as_chw
from zoo2vec.errors import TaskError, TaskLimitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TEXT_SUFFIXES = {".txt"}
TABLE_SUFFIXES = {".csv", ".parquet", ".tsv"}
TABLE_BATCH_ROWS = 10_000  # a table is read this many rows at a time, the limits checked after each batch
_COPY_BYTES = 1 << 20


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

    def capped(self, n: int) -> Task:
        """At most n of the samples (at least one per class), the classes taking turns (each class's samples in a fixed
        random order), so every class keeps min(its count, about n / classes); the task itself when it has n or fewer."""
        n = max(n, self.n_classes)
        if len(self) <= n:
            return self
        rng = np.random.default_rng(0)
        turns = [rng.permutation(np.flatnonzero(self.labels == c)) for c in range(self.n_classes)]
        rank = np.empty(len(self), dtype=np.int64)  # a sample's place in the round robin
        for members in turns:
            rank[members] = np.arange(len(members)) * self.n_classes
        rank += self.labels  # ties within a round broken by class
        keep = np.sort(np.argsort(rank, kind="stable")[:n])
        return Task(tuple(self.samples[i] for i in keep), self.labels[keep], self.label_names, self.modality)

    @classmethod
    def from_arrays(cls, samples: Sequence, labels: Sequence, *, label_names: Sequence[str] | None = None) -> Task:
        """From images (each (H, W), (H, W, C) or (C, H, W)) or strings, and one label per sample.

        Labels may be names or integers; with `label_names`, integer labels index into it.
        """
        budget = _Budget()
        samples = _bounded_list(samples, "samples", budget)
        labels = _bounded_list(labels, "labels", budget)
        if len(samples) == 0:
            raise TaskError("the task is empty: give at least two labelled samples of two classes")
        if len(samples) != len(labels):
            raise TaskError(f"{len(samples)} samples but {len(labels)} labels: give one label per sample")
        modality, samples = _samples_of_one_modality(samples, budget)
        if label_names is None:
            y, names = _encode_labels(labels)
        else:
            y, names = _encode_labels_into(labels, _names(label_names, budget))
        budget.classes(len(names), "the task")
        if len(names) < 2:
            raise TaskError(f"the task has a single class ({names[0]!r}): ranking models needs at least two classes")
        return cls(samples, y, names, modality)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Task:
        """One sub-folder per class holding image files or .txt files."""
        folder = Path(folder)
        try:
            if not folder.is_dir():
                raise TaskError(f"{folder} is not a folder")
            samples, labels = _read_class_folders(folder, _Budget())
        except (OSError, ValueError) as exc:
            raise TaskError(f"cannot read the folder {folder}: {exc}") from None
        if not samples:
            raise TaskError(
                f"{folder} holds no samples: expected one sub-folder per class with image files "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) or .txt files"
            )
        return cls.from_arrays(samples, labels)

    @classmethod
    def from_table(cls, path: str | Path, *, text_column: str = "text", label_column: str = "label") -> Task:
        """A CSV, TSV or Parquet file with a text column and a label column, read a batch of rows at a time."""
        path = Path(path)
        columns = (str(text_column), str(label_column))
        budget = _Budget()
        _check_regular_file(path, budget)
        try:
            if path.suffix.lower() == ".parquet":
                texts, labels = _read_parquet(path, columns, budget)
            else:
                texts, labels = _read_csv(path, "\t" if path.suffix.lower() == ".tsv" else ",", columns, budget)
        except TaskError:
            raise
        except FileNotFoundError:
            raise TaskError(f"{path} does not exist") from None
        except Exception as exc:  # pandas and pyarrow raise many kinds for a broken file
            raise TaskError(f"cannot read {path.name} as a table: {_one_line(exc)}") from None
        return cls.from_arrays(texts, labels)

    @classmethod
    def from_zip(cls, path: str | Path, **table_options) -> Task:
        """A zip of a class-per-folder tree, or of one CSV/Parquet file."""
        path = Path(path)
        _check_regular_file(path, _Budget())
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
        if not isinstance(path, (str, os.PathLike)):
            raise TaskError(f"a task is a Task or the path of a folder, .zip, .csv, .tsv or .parquet file; "
                            f"got {type(path).__name__}")
        path = Path(path)
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except (OSError, ValueError) as exc:  # e.g. a name too long, or holding a NUL
            raise TaskError(f"cannot use {str(path)[:200]!r} as a task path: {exc}") from None
        if not exists:
            raise TaskError(f"{path} does not exist")
        if is_dir:
            return cls.from_folder(path)
        suffix = path.suffix.lower()
        if suffix == ".zip":
            return cls.from_zip(path, **table_options)
        if suffix in TABLE_SUFFIXES:
            return cls.from_table(path, **table_options)
        raise TaskError(f"{path.name}: give a folder, a .zip, or a .csv/.tsv/.parquet file")


class _Budget:
    """The limits in force (read once per task) and what the task read so far holds, checked as it grows."""

    def __init__(self):
        self.max_samples = settings.MAX_SAMPLES.get()
        self.max_classes = settings.MAX_CLASSES.get()
        self.max_text_chars = settings.MAX_TEXT_CHARS.get()
        self.max_task_chars = settings.MAX_TASK_CHARS.get()
        self.max_image_pixels = settings.MAX_IMAGE_PIXELS.get()
        self.max_task_pixels = settings.MAX_TASK_PIXELS.get()
        self.max_file_bytes = settings.MAX_FILE_BYTES.get()
        self.max_expanded_bytes = settings.MAX_EXPANDED_BYTES.get()
        self.max_zip_entries = settings.MAX_ZIP_ENTRIES.get()
        self.chars = 0
        self.pixels = 0

    def samples(self, n: int, where: str, *, more: bool = False) -> None:
        """`more`: counting stopped at the first one over, so there are at least `n`."""
        if n > self.max_samples:
            found = f"more than {self.max_samples:,} samples" if more else f"{n:,} samples"
            _over(settings.MAX_SAMPLES, self.max_samples, where, found)

    def classes(self, n: int, where: str) -> None:
        if n > self.max_classes:
            _over(settings.MAX_CLASSES, self.max_classes, where, f"{n:,} classes")

    def text(self, text: str, where: str) -> None:
        if len(text) > self.max_text_chars:
            _over(settings.MAX_TEXT_CHARS, self.max_text_chars, where, f"a text of {len(text):,} characters")
        self.chars += len(text)
        if self.chars > self.max_task_chars:
            _over(settings.MAX_TASK_CHARS, self.max_task_chars, where, f"more than {self.max_task_chars:,} characters")

    def image(self, height: int, width: int, where: str) -> None:
        pixels = int(height) * int(width)
        if pixels > self.max_image_pixels:
            _over(settings.MAX_IMAGE_PIXELS, self.max_image_pixels, where,
                  f"an image of {width:,} x {height:,} = {pixels:,} pixels")
        self.pixels += pixels
        if self.pixels > self.max_task_pixels:
            _over(settings.MAX_TASK_PIXELS, self.max_task_pixels, where,
                  f"more than {self.max_task_pixels:,} pixels of images")

    def file(self, size: int, where: str) -> None:
        if size > self.max_file_bytes:
            _over(settings.MAX_FILE_BYTES, self.max_file_bytes, where, f"a file of {size:,} bytes")


def _over(limit: settings.Limit, value: int, where: str, found: str):
    raise TaskLimitError(where, found, limit.what, value, limit.setting)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _bounded_list(values, what: str, budget: _Budget) -> list:
    """`values` as a list, refused before it is built when it holds more than the samples limit."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TaskError(f"{what} must be a sequence (one per sample), got {type(values).__name__}")
    if isinstance(values, np.ndarray):
        budget.samples(len(values) if values.ndim else 0, what)
        return list(values) if values.ndim > 1 else values.tolist()
    try:
        n = len(values)
    except TypeError:  # an iterator: take one more than the limit, at most
        out = list(islice(iter(values), budget.max_samples + 1))
        budget.samples(len(out), what, more=True)
        return out
    budget.samples(n, what)
    return list(values)


def _names(label_names, budget: _Budget) -> tuple[str, ...]:
    if isinstance(label_names, (str, bytes)) or not hasattr(label_names, "__iter__"):
        raise TaskError(f"label_names must be a list of class names, got {type(label_names).__name__}")
    names = tuple(str(n) for n in islice(iter(label_names), budget.max_classes + 1))
    budget.classes(len(names), "label_names")
    return names


def _samples_of_one_modality(samples: list, budget: _Budget) -> tuple[str, tuple]:
    """The task's modality and its samples: texts as given, or images brought to (C, H, W)."""
    is_text = [isinstance(s, str) for s in samples]
    if all(is_text):
        for i, s in enumerate(samples):
            budget.text(s, f"sample {i}")
            if not s.strip():
                raise TaskError("the task holds an empty text sample; remove it or give it text")
            if not s.isascii():
                try:
                    s.encode("utf-8")
                except UnicodeEncodeError:
                    raise TaskError(f"sample {i} holds characters that are not valid Unicode "
                                    "(lone surrogates): give it as text decoded from UTF-8") from None
        return "text", tuple(samples)
    if any(is_text):
        raise TaskError("the task mixes texts and images: a task is of one modality")
    return "image", tuple(as_chw(s, where=f"sample {i}", check_size=budget.image) for i, s in enumerate(samples))


def _encode_labels(labels: list) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels taken as names: classes are the distinct names, sorted."""
    names = tuple(sorted({str(l) for l in labels}))
    index = {n: i for i, n in enumerate(names)}
    return np.asarray([index[str(l)] for l in labels], dtype=np.int64), names


def _encode_labels_into(labels: list, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as integers into `names`, or as its names; classes no sample uses are dropped."""
    y = _label_indices(labels, names)
    if y.min() < 0 or y.max() >= len(names):
        raise TaskError(f"integer labels must lie in 0..{len(names) - 1} to index label_names")
    used = sorted(set(y.tolist()))
    return np.searchsorted(used, y), tuple(names[i] for i in used)


def _label_indices(labels: list, names: tuple[str, ...]) -> np.ndarray:
    try:
        return np.asarray([int(l) for l in labels], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        pass  # not integers: they must be names
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(l) for l in labels} - set(index))
    if unknown:
        shown = unknown if len(unknown) <= 10 else unknown[:10] + ["..."]
        raise TaskError(f"labels {shown} are not in label_names {list(names)[:20]}")
    return np.asarray([index[str(l)] for l in labels], dtype=np.int64)


def _read_class_folders(folder: Path, budget: _Budget) -> tuple[list, list[str]]:
    """Samples and their labels (the sub-folder's name); files of other kinds are skipped. Classes and sample files
    are counted while listing, before any file is read."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    budget.classes(len(classes), f"{folder.name or folder} (one sub-folder per class)")
    files: list[tuple[Path, str]] = []
    for sub in classes:
        found = []
        for p in sub.iterdir():
            if p.suffix.lower() in TEXT_SUFFIXES | IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file():
                found.append(p)
                budget.samples(len(files) + len(found), f"{folder.name or folder}", more=True)
        files.extend((p, sub.name) for p in sorted(found))
    samples, labels = [], []
    for path, label in files:
        samples.append(_read_sample(path, budget))
        labels.append(label)
    return samples, labels


def _read_sample(path: Path, budget: _Budget) -> str | np.ndarray:
    if path.suffix.lower() in TEXT_SUFFIXES:
        return _read_text(path, budget)
    return _read_image(path, budget)


def _check_regular_file(path: Path, budget: _Budget) -> None:
    """A file that can be read to its end (not a pipe or a device) and within the bytes limit."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise TaskError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read {path}: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TaskError(f"{path} is not a regular file")
    budget.file(st.st_size, path.name)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except Exception as exc:  # BadZipFile, OSError, and what a malformed central directory makes zipfile raise
        raise TaskError(f"cannot read {path.name} as a zip file: {_one_line(exc)}") from None


def _extract_within(archive: zipfile.ZipFile, root: Path, name: str) -> None:
    """Extract into `root`, within the limits: the entry count and the declared sizes are checked first, the bytes
    written are counted while extracting (declared sizes can lie), and the whole archive is refused if any member
    would land outside `root` (zip slip)."""
    budget = _Budget()
    try:
        infos = archive.infolist()
    except Exception as exc:
        raise TaskError(f"cannot read {name} as a zip file: {_one_line(exc)}") from None
    if len(infos) > budget.max_zip_entries:
        _over(settings.MAX_ZIP_ENTRIES, budget.max_zip_entries, name, f"{len(infos):,} entries")
    declared = sum(i.file_size for i in infos)
    if declared > budget.max_expanded_bytes:
        _over(settings.MAX_EXPANDED_BYTES, budget.max_expanded_bytes, name, f"{declared:,} bytes declared")
    targets = []
    for info in infos:
        is_dir = info.filename.endswith("/")
        if not is_dir:
            budget.file(info.file_size, f"{name}: {info.filename}")
        targets.append((info, is_dir, _member_path(root, info.filename, name)))
    written = 0
    for info, is_dir, target in targets:
        try:
            if is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                size = 0
                while chunk := src.read(_COPY_BYTES):
                    size += len(chunk)
                    written += len(chunk)
                    if size > info.file_size:
                        raise TaskError(f"{name}: {info.filename} expands beyond the {info.file_size:,} bytes its "
                                        "entry declares; the zip is corrupt or crafted")
                    if written > budget.max_expanded_bytes:
                        _over(settings.MAX_EXPANDED_BYTES, budget.max_expanded_bytes, name,
                              f"more than {budget.max_expanded_bytes:,} bytes expanded")
                    dst.write(chunk)
        except TaskError:
            raise
        except Exception as exc:  # corrupt data, encryption, an unknown compression method, names that clash
            raise TaskError(f"cannot extract {info.filename!r} from {name}: {_one_line(exc)}") from None


def _member_path(root: Path, member: str, name: str) -> Path:
    if not member.strip("/"):
        raise TaskError(f"{name} holds an entry without a name")
    try:
        target = (root / member).resolve()
    except (OSError, ValueError) as exc:
        raise TaskError(f"{name} holds an entry that cannot be a file name: {member[:200]!r} ({exc})") from None
    if not target.is_relative_to(root):
        raise TaskError(f"{name} holds a path that leaves the archive: {member!r}")
    return target


def _class_folders_root(root: Path) -> Path:
    # a zip of a folder usually holds that folder as its single top-level entry
    top = [p for p in root.iterdir() if not p.name.startswith(("__", "."))]
    return top[0] if len(top) == 1 and top[0].is_dir() and _has_only_dirs(top[0]) else root


def _has_only_dirs(folder: Path) -> bool:
    return all(p.is_dir() for p in folder.iterdir() if not p.name.startswith("."))


def _read_text(path: Path, budget: _Budget) -> str:
    """The file's text, read no further than the limits allow: a UTF-8 character takes at most 4 bytes."""
    cap = min(budget.max_file_bytes, 4 * budget.max_text_chars + 4)
    try:
        with open(path, "rb") as f:
            budget.file(os.fstat(f.fileno()).st_size, path.name)
            data = f.read(cap + 1)
    except OSError as exc:
        raise TaskError(f"cannot read {path}: {exc}") from None
    if len(data) > cap:
        budget.file(len(data), path.name)  # a file that grew since it was measured
        _over(settings.MAX_TEXT_CHARS, budget.max_text_chars, path.name,
              f"a text of more than {budget.max_text_chars:,} characters")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(f"cannot read {path} as UTF-8 text: {exc}") from None
    budget.text(text, path.name)
    return text


_PIL_PIXELS = re.compile(r"\((\d+) pixels\)")


def _read_image(path: Path, budget: _Budget) -> np.ndarray:
    """The image's pixels; its size is checked from the header (Image.open reads only that) before decoding."""
    import warnings

    from PIL import Image

    _check_regular_file(path, budget)
    try:
        with warnings.catch_warnings():
            # PIL warns above its own bound; ours (checked below, before decoding) is what counts. Its warnings about
            # damaged metadata (EXIF, TIFF tags) say nothing the user can act on: the pixels decode, or a TaskError says
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path) as img:
                width, height = img.size
                budget.image(height, width, path.name)
                if img.mode == "F":  # 32-bit floats: as they are (as_chw refuses NaN)
                    return np.asarray(img)
                return np.asarray(img.convert("L" if img.mode in ("L", "1", "P", "LA", "I", "I;16") else "RGB"))
    except TaskError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's hard bound, twice Image.MAX_IMAGE_PIXELS, from the header
        claimed = _PIL_PIXELS.search(str(exc))
        found = f"an image of {int(claimed.group(1)):,} pixels" if claimed else "an image PIL takes for a bomb"
        _over(settings.MAX_IMAGE_PIXELS, budget.max_image_pixels, path.name, found)
    except Exception as exc:  # PIL's decoders raise many kinds (OSError, ValueError, SyntaxError, EOFError...)
        raise TaskError(f"cannot read {path} as an image: {_one_line(exc)}") from None


def _read_csv(path: Path, sep: str, columns: tuple[str, str], budget: _Budget) -> tuple[list[str], list[str]]:
    import pandas as pd

    options = dict(sep=sep, dtype=str, keep_default_na=False)
    header = list(pd.read_csv(path, nrows=0, **options).columns)
    _check_columns(path, columns, header)
    texts: list[str] = []
    labels: list[str] = []
    with pd.read_csv(path, usecols=list(dict.fromkeys(columns)), chunksize=TABLE_BATCH_ROWS, **options) as reader:
        for chunk in reader:
            _take_rows(path, chunk[columns[0]].tolist(), chunk[columns[1]].tolist(), texts, labels, budget)
    return texts, labels


def _read_parquet(path: Path, columns: tuple[str, str], budget: _Budget) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as table:
        _check_columns(path, columns, table.schema_arrow.names)
        meta = table.metadata
        budget.samples(meta.num_rows, path.name)
        expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if expanded > budget.max_expanded_bytes:
            _over(settings.MAX_EXPANDED_BYTES, budget.max_expanded_bytes, path.name, f"{expanded:,} bytes declared")
        texts: list[str] = []
        labels: list[str] = []
        for batch in table.iter_batches(batch_size=TABLE_BATCH_ROWS, columns=list(dict.fromkeys(columns))):
            _take_rows(path, batch.column(columns[0]).to_pylist(), batch.column(columns[1]).to_pylist(),
                       texts, labels, budget)
    return texts, labels


def _check_columns(path: Path, columns: tuple[str, str], found) -> None:
    missing = [c for c in columns if c not in found]
    if missing:
        shown = list(found)[:20] + (["..."] if len(found) > 20 else [])
        raise TaskError(f"{path.name} lacks column(s) {missing}; it has {shown}. "
                        "Name the columns with text_column= / label_column= (CLI: --text-column, --label-column)")


def _take_rows(path: Path, texts_in: list, labels_in: list, texts: list[str], labels: list[str],
               budget: _Budget) -> None:
    """Append one batch of rows, checking rows, characters and classes as they come."""
    budget.samples(len(texts) + len(texts_in), path.name, more=True)
    for t, l in zip(texts_in, labels_in):
        text = str(t)
        budget.text(text, f"{path.name}, row {len(texts) + 1}")
        texts.append(text)
        labels.append(str(l))
    budget.classes(len(set(labels)), path.name)
