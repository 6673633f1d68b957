"""Task inputs are bounded before the work they cost, and hostile ones end in a one-line zoo2vec error.

The crafted cases of issue 14 are here as regression tests: each is small on disk, takes seconds, and ends in a
TaskLimitError (or TaskError / FilterError) that names the limit, what was found and the setting that raises it.
"""

import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import zoo2vec
from zoo2vec import ConfigError, FilterError, Task, TaskError, settings
from zoo2vec.cli import main
from zoo2vec.errors import TaskLimitError


def _png(path: Path, width: int, height: int, *, pixels: bool = True) -> Path:
    """A grey PNG of width x height written row block by row block (never whole in memory); with pixels=False only
    its header (the IHDR that claims the size), as a decompression bomb's would."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))]
    if pixels:
        packer = zlib.compressobj(9)
        rows = 64
        block = (b"\x00" + b"\x80" * width) * rows
        data = [packer.compress(block) for _ in range(height // rows)]
        data.append(packer.compress((b"\x00" + b"\x80" * width) * (height % rows)) + packer.flush())
        parts.append(chunk(b"IDAT", b"".join(data)))
    parts.append(chunk(b"IEND", b""))
    path.write_bytes(b"".join(parts))
    return path


def _image_task(root: Path, odd: Path | None = None) -> Path:
    """Two classes of small real images; `odd` (a file) joins class b."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8), 40 * i + (label == "b") * 100, np.uint8)).save(root / label / f"{i}.png")
    if odd is not None:
        odd.rename(root / "b" / odd.name)
    return root


def _names_the_limit(exc: pytest.ExceptionInfo, setting: str, found: str):
    message = str(exc.value)
    assert isinstance(exc.value, TaskLimitError) and exc.value.setting == setting
    assert setting in message and found in message and "\n" not in message, message


# --- the crafted cases of issue 14 -----------------------------------------------------------------------------


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_an_image_header_claiming_20000_by_20000_pixels_is_refused(tmp_path):
    """PIL's DecompressionBombError escaped as a traceback: only OSError was caught."""
    root = _image_task(tmp_path / "task", _png(tmp_path / "bomb.png", 20_000, 20_000, pixels=False))
    assert (root / "b" / "bomb.png").stat().st_size < 100
    with pytest.raises(TaskError) as exc:
        Task.from_path(root)
    _names_the_limit(exc, "ZOO2VEC_MAX_IMAGE_PIXELS", "400,000,000 pixels")


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_12000_by_12000_png_is_refused_by_its_header_before_decoding(tmp_path):
    """A 140 KB PNG of 144 Mpixels went through at 2 GB; its header is enough to refuse it."""
    root = _image_task(tmp_path / "task", _png(tmp_path / "big.png", 12_000, 12_000))
    assert (root / "b" / "big.png").stat().st_size < 300_000
    started = time.perf_counter()
    with pytest.raises(TaskError) as exc:
        Task.from_path(root)
    assert time.perf_counter() - started < 2
    _names_the_limit(exc, "ZOO2VEC_MAX_IMAGE_PIXELS", "12,000 x 12,000 = 144,000,000 pixels")


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_csv_with_one_50_mb_cell_is_refused_quickly_in_little_memory(tmp_path):
    """One 50 MB cell took 69 s and 8.4 GB; it is refused by the characters-per-text limit, in a child process whose
    peak memory is measured."""
    path = tmp_path / "cell.csv"
    with open(path, "w") as f:
        f.write("text,label\nshort,a\n")
        f.write("x" * 50_000_000)
        f.write(",b\n")
    # the child's own peak is VmHWM, its address space's high-water mark; ru_maxrss is no measure here, since Linux
    # carries over the RSS the child had when forked from the suite's (GBs) pytest process across exec
    script = ("import sys\nfrom zoo2vec import Task, TaskError\ntry:\n    Task.from_path(sys.argv[1])\n"
              "except TaskError as exc:\n    print(exc)\n"
              "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])\n")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.strip().splitlines()[-1]) / 1024
    assert "ZOO2VEC_MAX_TEXT_CHARS" in done.stdout and "50,000,000 characters" in done.stdout, done.stdout
    assert seconds < 20 and peak_mb < 1500, (seconds, peak_mb)


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_zip_of_300_mb_is_refused_before_extracting(tmp_path):
    """A 306 KB zip expanding to 300 MB of text did not finish in 75 s: its declared sizes refuse it at once."""
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("task/b/0.txt", "a short text")
        with z.open("task/a/0.txt", "w", force_zip64=True) as member:
            block = b"spam " * 200_000  # 1 MB
            for _ in range(300):
                member.write(block)
    assert path.stat().st_size < 500_000  # deflate expands at most ~1,000-fold
    started = time.perf_counter()
    with pytest.raises(TaskError) as exc:
        Task.from_path(path)
    assert time.perf_counter() - started < 1
    _names_the_limit(exc, "ZOO2VEC_MAX_FILE_BYTES", "a file of 300,000,000 bytes")
    with pytest.raises(TaskError) as exc:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ZOO2VEC_MAX_FILE_BYTES", "1e9")
            env.setenv("ZOO2VEC_MAX_EXPANDED_BYTES", "1e8")
            Task.from_path(path)
    _names_the_limit(exc, "ZOO2VEC_MAX_EXPANDED_BYTES", "300,000,012 bytes declared")


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_zip_whose_entries_understate_their_size_is_refused(tmp_path):
    """Declared sizes can lie: a member says 1,000 bytes and holds 10 MB; extraction stops at what it declared."""
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("task/a/0.txt", "x" * 10_000_000)
        z.writestr("task/b/0.txt", "a short text")
    data = bytearray(path.read_bytes())
    real = struct.pack("<I", 10_000_000)
    assert data.count(real) == 2  # the local header's and the central directory's uncompressed size
    path.write_bytes(bytes(data).replace(real, struct.pack("<I", 1_000)))
    started = time.perf_counter()
    with pytest.raises(TaskError, match="0.txt"):
        Task.from_path(path)
    assert time.perf_counter() - started < 2


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_csv_of_a_million_rows_stops_at_the_row_limit(tmp_path):
    """A 34 MB CSV of 10^6 rows did not finish in 75 s: it is read in batches and refused at the limit."""
    path = tmp_path / "rows.csv"
    path.write_text("text,label\n" + "".join(f"row {i},{i % 3}\n" for i in range(1_000_000)))
    started = time.perf_counter()
    with pytest.raises(TaskError) as exc:
        Task.from_path(path)
    assert time.perf_counter() - started < 3
    _names_the_limit(exc, "ZOO2VEC_MAX_SAMPLES", "more than 100,000 samples")


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_zip_of_csv_with_millions_of_samples_is_refused(tmp_path):
    """A zip of CSV parsed into 18 million samples (2.5 GB); two million rows compress to a few KB."""
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("data/task.csv", "w") as member:
            member.write(b"text,label\n")
            block = b"spam,a\neggs,b\n" * 50_000
            for _ in range(20):
                member.write(block)
    assert path.stat().st_size < 100_000
    started = time.perf_counter()
    with pytest.raises(TaskError) as exc:
        Task.from_path(path)
    assert time.perf_counter() - started < 3
    _names_the_limit(exc, "ZOO2VEC_MAX_SAMPLES", "more than 100,000 samples")
    with zipfile.ZipFile(tmp_path / "tables.zip", "w") as z:  # several tables: none is taken as the task
        for i in range(30):
            z.writestr(f"part{i}.csv", "text,label\nspam,a\neggs,b\n")
    with pytest.raises(TaskError, match="holds no samples"):
        Task.from_path(tmp_path / "tables.zip")


def test_a_parquet_file_is_refused_by_its_row_count_before_reading(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": ["spam", "eggs"] * 100_001, "label": ["a", "b"] * 100_001}), path)
    with pytest.raises(TaskError) as exc:
        Task.from_path(path)
    _names_the_limit(exc, "ZOO2VEC_MAX_SAMPLES", "200,002 samples")


# --- each limit, its setting, and where it holds -----------------------------------------------------------------


def test_every_limit_has_a_default_and_a_setting_that_raises_it(monkeypatch):
    names = {limit.setting for limit in settings.LIMITS}
    assert len(names) == len(settings.LIMITS) and all(n.startswith("ZOO2VEC_MAX_") for n in names)
    assert settings.MAX_SAMPLES.get() == 100_000
    monkeypatch.setenv("ZOO2VEC_MAX_SAMPLES", "2e5")
    assert settings.MAX_SAMPLES.get() == 200_000
    monkeypatch.setenv("ZOO2VEC_MAX_SAMPLES", "1_000")
    assert settings.MAX_SAMPLES.get() == 1000
    for bad in ("lots", "0", "-3", "nan", "inf", "2.5"):
        monkeypatch.setenv("ZOO2VEC_MAX_SAMPLES", bad)
        with pytest.raises(ConfigError, match="ZOO2VEC_MAX_SAMPLES.*positive whole number"):
            Task.from_arrays(["a", "b"], ["x", "y"])


def test_samples_classes_and_characters_of_arrays(monkeypatch):
    monkeypatch.setenv("ZOO2VEC_MAX_SAMPLES", "10")
    with pytest.raises(TaskLimitError, match="11 samples"):
        Task.from_arrays(["t"] * 11, list(range(11)))
    endless = (f"text {i}" for i in range(10**9))  # never listed whole
    with pytest.raises(TaskLimitError, match="more than 10 samples"):
        Task.from_arrays(endless, [0, 1])
    monkeypatch.setenv("ZOO2VEC_MAX_CLASSES", "3")
    with pytest.raises(TaskLimitError, match="4 classes.*ZOO2VEC_MAX_CLASSES"):
        Task.from_arrays(["a", "b", "c", "d"], ["w", "x", "y", "z"])
    monkeypatch.setenv("ZOO2VEC_MAX_TEXT_CHARS", "5")
    with pytest.raises(TaskLimitError, match="sample 1: a text of 6 characters.*ZOO2VEC_MAX_TEXT_CHARS"):
        Task.from_arrays(["short", "longer"], ["x", "y"])
    monkeypatch.setenv("ZOO2VEC_MAX_TASK_CHARS", "9")
    with pytest.raises(TaskLimitError, match="ZOO2VEC_MAX_TASK_CHARS"):
        Task.from_arrays(["abcde", "fghij"], ["x", "y"])
    assert len(Task.from_arrays(["abcd", "efgh"], ["x", "y"])) == 2


def test_pixels_of_arrays_are_checked_before_conversion(monkeypatch):
    monkeypatch.setenv("ZOO2VEC_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(TaskLimitError, match="sample 1: an image of 11 x 10 = 110 pixels"):
        Task.from_arrays([np.zeros((10, 10)), np.zeros((10, 11, 3), np.uint8)], ["x", "y"])
    monkeypatch.setenv("ZOO2VEC_MAX_TASK_PIXELS", "150")
    with pytest.raises(TaskLimitError, match="ZOO2VEC_MAX_TASK_PIXELS"):
        Task.from_arrays([np.zeros((10, 10)), np.zeros((10, 10))], ["x", "y"])


def test_folders_are_counted_before_they_are_read(tmp_path, monkeypatch):
    root = _image_task(tmp_path / "task")
    (root / "c").mkdir()
    (root / "c" / "0.txt").write_text("x" * 50)
    monkeypatch.setenv("ZOO2VEC_MAX_CLASSES", "2")
    with pytest.raises(TaskLimitError, match="3 classes"):
        Task.from_path(root)
    monkeypatch.delenv("ZOO2VEC_MAX_CLASSES")
    monkeypatch.setenv("ZOO2VEC_MAX_SAMPLES", "4")
    with pytest.raises(TaskLimitError, match="more than 4 samples"):
        Task.from_path(root)
    monkeypatch.delenv("ZOO2VEC_MAX_SAMPLES")
    texts = tmp_path / "texts"
    for label in ("a", "b"):
        (texts / label).mkdir(parents=True)
        (texts / label / "0.txt").write_text(f"{label} " * 20)
    monkeypatch.setenv("ZOO2VEC_MAX_TEXT_CHARS", "10")  # 40 characters: refused once read
    with pytest.raises(TaskLimitError, match="0.txt: a text of 40 characters"):
        Task.from_path(texts)
    monkeypatch.setenv("ZOO2VEC_MAX_TEXT_CHARS", "5")  # more bytes than 5 characters could take: never decoded
    with pytest.raises(TaskLimitError, match="0.txt: a text of more than 5 characters"):
        Task.from_path(texts)
    monkeypatch.setenv("ZOO2VEC_MAX_FILE_BYTES", "30")
    with pytest.raises(TaskLimitError, match="0.txt: a file of 40 bytes.*ZOO2VEC_MAX_FILE_BYTES"):
        Task.from_path(texts)


def test_zip_entries_and_files(tmp_path, monkeypatch):
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(6):
            z.writestr(f"{'ab'[i % 2]}/{i}.txt", f"text number {i}")
    assert len(Task.from_path(path)) == 6
    monkeypatch.setenv("ZOO2VEC_MAX_ZIP_ENTRIES", "5")
    with pytest.raises(TaskLimitError, match="t.zip: 6 entries.*ZOO2VEC_MAX_ZIP_ENTRIES"):
        Task.from_path(path)
    monkeypatch.setenv("ZOO2VEC_MAX_FILE_BYTES", "100")
    with pytest.raises(TaskLimitError, match=r"t.zip: a file of \d+ bytes"):  # the zip itself, before it is opened
        Task.from_path(path)


def test_a_symlink_to_a_pipe_or_device_is_no_task_file(tmp_path):
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    with pytest.raises(TaskError, match="not a regular file"):
        Task.from_path(tmp_path / "zero.csv")


def test_the_cli_says_which_limit_in_one_line(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label\n" + "spam,a\neggs,b\n" * 6)
    result = CliRunner().invoke(main, ["search", "--task", str(path)], env={"ZOO2VEC_MAX_SAMPLES": "10"})
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "more than 10 samples" in lines[0] and "ZOO2VEC_MAX_SAMPLES" in lines[0], lines


def test_the_api_applies_the_same_limits(tiny_zoo_master, tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    path.write_text("text,label\n" + "spam,a\neggs,b\n" * 6)
    monkeypatch.setenv("ZOO2VEC_MAX_SAMPLES", "10")
    with pytest.raises(TaskLimitError, match="ZOO2VEC_MAX_SAMPLES"):
        zoo2vec.open(tiny_zoo_master).search(task=path)


def test_the_apps_upload_goes_through_the_same_checks(tiny_zoo_master, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ZOO2VEC_ZOO", str(tiny_zoo_master))
    app = AppTest.from_file(str(Path(zoo2vec.__file__).parent / "ui" / "app.py"), default_timeout=120)
    app.run()
    monkeypatch.setenv("ZOO2VEC_MAX_SAMPLES", "10")
    app.file_uploader[0].set_value(("rows.csv", b"text,label\n" + b"spam,a\neggs,b\n" * 6, "text/csv"))
    app.button[0].click().run()
    assert not app.exception
    assert "more than 10 samples" in app.error[0].value and "ZOO2VEC_MAX_SAMPLES" in app.error[0].value
    bomb = _image_task(tmp_path / "task", _png(tmp_path / "bomb.png", 20_000, 20_000, pixels=False))
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w") as z:
        for f in bomb.rglob("*.png"):
            z.write(f, f.relative_to(tmp_path))
    app.file_uploader[0].set_value(("bomb.zip", (tmp_path / "bomb.zip").read_bytes(), "application/zip"))
    app.button[0].click().run()
    assert not app.exception and "ZOO2VEC_MAX_IMAGE_PIXELS" in app.error[0].value
    monkeypatch.setenv("ZOO2VEC_MAX_FILE_BYTES", "100")
    app.file_uploader[0].set_value(("rows.csv", b"text,label\n" + b"spam,a\neggs,b\n" * 20, "text/csv"))
    app.button[0].click().run()
    assert not app.exception and "an upload of 291 bytes" in app.error[0].value


# --- no traceback: filters ---------------------------------------------------------------------------------------


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
@pytest.mark.parametrize("where, message", [
    ("license='mit'", r"must be a dict of field -> value.*not \"license='mit'\".*filters.parse"),
    ({"license": "\udcff"}, "not valid UTF-8"),
    ({"params": ("<", float("nan"))}, "finite number"),
    ({"params": ("<", "nan")}, "finite number"),
    ({"params": (">", float("inf"))}, "finite number"),
    ({"params": 10**400}, "needs a number"),
    ({"params": ("contains", 5)}, "is a number"),
])
def test_the_api_refuses_bad_filters_with_a_filter_error(tiny_zoo_master, where, message):
    zoo = zoo2vec.open(tiny_zoo_master)
    with pytest.raises(FilterError, match=message):
        zoo.search(text="digits", where=where)


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_params_below_nan_no_longer_matches_every_model(tiny_zoo_master):
    from zoo2vec.index.filters import parse

    with pytest.raises(FilterError, match="finite number"):
        zoo2vec.open(tiny_zoo_master).search(text="digits", where=parse(["params<nan"]))


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
@pytest.mark.parametrize("value", [b"license=\xff\xfe", b"params<nan", b"params<-inf"])
def test_the_cli_answers_a_bad_filter_in_one_line_with_exit_2(tiny_zoo_master, value):
    """A filter value that is not UTF-8 reached duckdb (InvalidInputException); argv as the shell gives it."""
    exe = Path(sys.executable).parent / "zoo2vec"
    done = subprocess.run([str(exe).encode(), b"search", b"--zoo", str(tiny_zoo_master).encode(), b"--text", b"digits",
                           b"--where", value], capture_output=True, timeout=120)
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode(errors="replace")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "not valid UTF-8" in err or "finite number" in err


@pytest.mark.regression  # issue 14's crafted case: failed before its fix
def test_a_card_or_zoo_json_that_is_not_utf8_is_a_one_line_error(tmp_path):
    """A card.json of bytes that are not UTF-8 was a UnicodeDecodeError traceback at `zoo2vec card`."""
    from zoo2vec import ZooError
    from zoo2vec.zoo.layout import ZooLayout

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "card.json").write_bytes(b"\xff\xfe{}")
    result = CliRunner().invoke(main, ["card", str(tmp_path / "model")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert "card.json is not valid JSON" in result.output and len(result.output.strip().splitlines()) == 1
    (tmp_path / "zoo.json").write_bytes(b"\xff")
    with pytest.raises(ZooError, match="zoo.json is not valid JSON"):
        ZooLayout(tmp_path).manifest()
