"""Reliability: fuzz the ways a user's input enters zoo2vec, and count what happens to it.

Every input to an entry point must end in a result (a Task, a filter's model ids) or a zoo2vec error (a Zoo2VecError),
within a time bound, in bounded memory. `fuzz(entry_point, n, seed)` generates n inputs (valid ones, mutated ones and
hostile ones: bombs, lying sizes, paths that leave a zip, bytes that are not UTF-8, nan and infinite filter values),
feeds each to the entry point in a worker process and counts results, zoo2vec errors, tracebacks (any other
exception), crashes (the worker died) and hangs (no answer within `hang_s`), with the worker's peak resident memory
per input. `feed` runs one input in this process: the tests (tests/test_fuzz_inputs.py) drive it with Hypothesis.

Entry points: zip, csv, tsv, parquet (Task.from_path on a file of those bytes), image (an image file of those bytes in
a class folder), folder (a tree of class folders and files), where (the API's where dict, checked and run against a
real catalog), cli-where (the CLI's --where strings, parsed, checked and run likewise).
"""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

from zoo2vec.data.task import Task
from zoo2vec.errors import Zoo2VecError

ENTRY_POINTS = ("zip", "csv", "tsv", "parquet", "image", "folder", "where", "cli-where")
FILE_SUFFIX = {"zip": ".zip", "csv": ".csv", "tsv": ".tsv", "parquet": ".parquet"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


# --- one input -------------------------------------------------------------------------------------------------


def feed(entry_point: str, data: Any, workdir: Path) -> str:
    """Give one input to an entry point, with `workdir` (an empty folder) for its files: "result" or "error" (a
    Zoo2VecError); any other exception propagates, being what the fuzzing looks for."""
    workdir = Path(workdir)
    try:
        if entry_point in FILE_SUFFIX:
            path = workdir / f"task{FILE_SUFFIX[entry_point]}"
            path.write_bytes(data)
            Task.from_path(path)
        elif entry_point == "image":
            suffix, content = data
            root = _valid_image_folder(workdir / "task")
            (root / "b" / f"fuzzed{suffix}").write_bytes(content)
            Task.from_path(root)
        elif entry_point == "folder":
            root = workdir / "task"
            root.mkdir()
            write_tree(root, data)
            Task.from_path(root)
        elif entry_point in ("where", "cli-where"):
            _run_filters(entry_point, data)
        else:
            raise ValueError(f"unknown entry point {entry_point!r}; known: {', '.join(ENTRY_POINTS)}")
    except Zoo2VecError:
        return "error"
    return "result"


def write_tree(root: Path, tree: dict) -> None:
    """A folder from {name: bytes (a file) or dict (a folder)}."""
    for name, content in tree.items():
        if isinstance(content, dict):
            (root / name).mkdir(exist_ok=True)
            write_tree(root / name, content)
        else:
            (root / name).write_bytes(content)


def _valid_image_folder(root: Path) -> Path:
    from PIL import Image

    for label, value in (("a", 30), ("b", 200)):
        (root / label).mkdir(parents=True)
        Image.new("L", (6, 6), value).save(root / label / "0.png")
    return root


_CATALOGS: dict[str, Any] = {}


def _catalog():
    """A real catalog (zoo2vec's schema, DuckDB) holding three models, made once per process."""
    from zoo2vec.index.catalog import Catalog

    if "catalog" not in _CATALOGS:
        catalog = Catalog(Path(":memory:"))  # DuckDB's in-memory database: nothing written
        rows = [(0, "digits-cnn", "image", "mit", 120_000, "demo", ["digits", "cnn"], ["0", "1"]),
                (1, "news-bow", "text", "apache-2.0", 5_000, "recipes", ["news"], ["business", "sport"]),
                (2, "plain", "image", "", None, "", [], None)]
        for row in rows:
            catalog.con.execute(
                "INSERT INTO models (model_id, name, modality, license, params, source, tags, label_names, card, "
                "fingerprint, probe_set, encoder) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', 'f', 'p', 'e')", list(row))
        _CATALOGS["catalog"] = catalog
    return _CATALOGS["catalog"]


def _run_filters(entry_point: str, data: Any) -> None:
    """The API's path for `where` (checked up front, then run in the catalog), or the CLI's (parsed first)."""
    from zoo2vec.index import filters

    where = filters.parse(data) if entry_point == "cli-where" else data
    _catalog().allowed_ids(filters.checked(where))


# --- generated inputs ------------------------------------------------------------------------------------------

_WORDS = ["spam", "eggs", "ham", "a", "", " ", "label", "text", "0", "1", "-1", "1e309", "nan", "inf", "None",
          "NULL", "ümlaut", "日本語", "🙂", "\u200b", "\x00", "\ud800", "\t", "\n", "\r\n", '"', "'", ",", ";", "\\",
          "../", "/etc/passwd", "%s", "{}", "x" * 300]


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """`data` after a few random byte-level edits: flips, overwrites with extreme values, deletions, duplications,
    insertions and truncation."""
    out = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 8)):
        if not out:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            continue
        at = rng.randrange(len(out))
        kind = rng.randrange(7)
        if kind == 0:
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            out[at] = rng.choice((0, 0xFF, 0x7F, 0x80))
        elif kind == 2:
            del out[at:at + rng.randint(1, 64)]
        elif kind == 3:
            out[at:at] = out[at:at + rng.randint(1, 64)] * rng.randint(1, 4)
        elif kind == 4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 5 and len(out) >= at + 4:
            out[at:at + 4] = struct.pack("<I", rng.choice((0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 30)))
        else:
            del out[at:]
    return bytes(out)


def _text(rng: random.Random) -> str:
    if rng.random() < 0.005:
        return rng.choice(_WORDS[:3]) * rng.randint(20_000, 60_000)  # past the characters-per-text limit
    if rng.random() < 0.6:
        return " ".join(rng.choice(_WORDS[:4]) for _ in range(rng.randint(1, 4)))  # plain: the reading goes deeper
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 5)))


def _encode(text: str, rng: random.Random) -> bytes:
    encoding = rng.choice(("utf-8", "utf-8", "utf-8", "utf-16", "latin-1"))
    return text.encode(encoding, errors="surrogatepass" if encoding == "utf-8" else "replace")


def table_text(rng: random.Random, sep: str) -> str:
    """A CSV/TSV text: usually the text and label columns, cells with quotes, separators, newlines and odd unicode."""
    header = ["text", "label"] if rng.random() < 0.8 else [_text(rng) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        header.insert(rng.randint(0, len(header)), rng.choice(("id", "text", "extra")))
    lines = [sep.join(header)]
    for _ in range(rng.randint(0, 25)):
        cells = [_text(rng) for _ in range(len(header) + rng.choice((0, 0, 0, -1, 1)))]
        cells = [f'"{c}"' if rng.random() < 0.2 else c for c in cells]
        lines.append(sep.join(cells))
    if rng.random() < 0.005:
        lines.extend(f"row {i}{sep}{i % 3}" for i in range(100_001))  # past the row limit (at its default)
    return rng.choice(("\n", "\r\n")).join(lines) + rng.choice(("", "\n"))


def table_bytes(rng: random.Random, sep: str) -> bytes:
    data = _encode(table_text(rng, sep), rng)
    return mutate(data, rng) if rng.random() < 0.2 else data


def parquet_bytes(rng: random.Random) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = rng.randint(0, 20)
    columns = {}

    def text() -> str:  # Arrow strings are UTF-8: no lone surrogates
        return _text(rng).encode("utf-8", "replace").decode("utf-8")

    for name in rng.sample(["text", "label", "extra", "text", "label"], rng.randint(1, 4)):
        kind = rng.randrange(6)
        if kind == 0:
            values = pa.array([text() for _ in range(n)])
        elif kind == 1:
            values = pa.array([rng.randint(-3, 3) for _ in range(n)])
        elif kind == 2:
            values = pa.array([rng.choice((0.5, float("nan"), float("inf"), None)) for _ in range(n)])
        elif kind == 3:
            values = pa.array([_text(rng).encode("utf-8", "surrogatepass") for _ in range(n)])
        elif kind == 4:
            values = pa.array([[text()] * rng.randint(0, 2) for _ in range(n)])
        else:
            values = pa.array([None] * n, type=pa.string())
        columns[name] = values
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, compression=rng.choice(("snappy", "gzip", "zstd", "none")),
                   row_group_size=rng.randint(1, 10))
    data = buf.getvalue()
    return mutate(data, rng) if rng.random() < 0.4 else data


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only a header claiming width x height: what a decompression bomb shows first."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def image_bytes(rng: random.Random) -> tuple[str, bytes]:
    """(suffix, bytes) of a small image in a random format and mode, a header claiming a huge size, or junk."""
    import numpy as np
    from PIL import Image

    roll = rng.random()
    if roll < 0.05:
        return ".png", png_header(rng.choice((1, 20_000, 2**31 - 1)), rng.choice((20_000, 65_535, 2**31 - 1)))
    if roll < 0.08:
        return rng.choice(IMAGE_SUFFIXES), bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    suffix = rng.choice(IMAGE_SUFFIXES)
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF",
               ".tiff": "TIFF", ".webp": "WEBP"}
    pixels = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (rng.randint(1, 12), rng.randint(1, 12), 3))
    image = Image.fromarray(pixels.astype(np.uint8), "RGB").convert(
        rng.choice(("L", "RGB", "RGBA", "P", "1", "I", "F", "LA", "CMYK", "I;16")))
    buf = io.BytesIO()
    try:
        image.save(buf, formats[suffix])
    except (OSError, ValueError, KeyError):  # a mode the format cannot hold
        buf = io.BytesIO()
        image.convert("RGB").save(buf, formats[suffix])
    data = buf.getvalue()
    return suffix, mutate(data, rng) if rng.random() < 0.6 else data


def _member(rng: random.Random, kind: str = "mixed") -> tuple[str, bytes]:
    """(suffix, bytes) of one file of a task: a text, an image, a table or junk (`kind`: text or image mostly)."""
    if kind == "text" and rng.random() < 0.9:
        return ".txt", _encode(_text(rng) or "x", rng) if rng.random() < 0.2 else _text(rng).encode("utf-8", "replace")
    if kind == "image" and rng.random() < 0.9:
        return image_bytes(rng)
    roll = rng.random()
    if roll < 0.4:
        return ".txt", _encode(_text(rng) or "x", rng)
    if roll < 0.7:
        return image_bytes(rng)
    if roll < 0.8:
        return ".csv", table_bytes(rng, ",")
    return rng.choice((".bin", ".TXT", "", ".md")), bytes(rng.randrange(256) for _ in range(rng.randint(0, 32)))


def _name(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(("cat", "dog", "bird"))
    return rng.choice(("0", "1", "ümlaut", "日本", "a b", "-x", "__MACOSX", ".hidden", "x" * 100))


def zip_bytes(rng: random.Random) -> bytes:
    """A zip of class folders or of a table, with odd names (.., absolute, duplicates), every compression method,
    sometimes sizes that lie, or mutated bytes."""
    buf = io.BytesIO()
    methods = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
        warnings.simplefilter("ignore")  # duplicate names are the point
        prefix = rng.choice(("", "", "", "task/", "task/", "../", "/abs/", "a/../../", "./"))
        kind = rng.choice(("text", "image", "mixed"))
        for _ in range(rng.randint(0, 8)):
            suffix, content = _member(rng, kind)
            name = f"{prefix}{_name(rng)}/{rng.randint(0, 3)}{suffix}" if rng.random() < 0.85 else f"{prefix}t.csv"
            if rng.random() < 0.1:
                name = f"{prefix}{_name(rng)}/"
                content = b""
            z.writestr(zipfile.ZipInfo(name), content, compress_type=rng.choice(methods))
    data = buf.getvalue()
    if rng.random() < 0.15:
        data = _understate_sizes(data, rng)
    return mutate(data, rng) if rng.random() < 0.3 else data


def _understate_sizes(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the declared uncompressed sizes (central directory and local headers) to smaller or bigger ones."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        at = out.find(signature)
        while at != -1 and at + offset + 4 <= len(out):
            out[at + offset:at + offset + 4] = struct.pack("<I", rng.choice((0, 1, 10, 0xFFFFFFFE)))
            at = out.find(signature, at + 4)
    return bytes(out)


def folder_tree(rng: random.Random) -> dict:
    tree: dict = {}
    kind = rng.choice(("text", "image", "mixed"))
    for _ in range(rng.randint(0, 4)):
        files = {}
        for i in range(rng.randint(0, 4)):
            suffix, content = _member(rng, kind)
            files[f"{rng.choice(('', '.'))}{i}{suffix}"] = content
        if rng.random() < 0.1:
            files["nested"] = {"0.txt": b"deeper"}
        tree[_name(rng)] = files
    if rng.random() < 0.2:
        tree["README.txt"] = b"a file beside the classes"
    return tree


_FIELDS = ["name", "modality", "license", "params", "source", "tags", "labels", "indexed_at", "colour", "", "Params"]
_OPS = ["=", "!=", "<", "<=", ">", ">=", "in", "contains", "~", "==", "", None, 3]


def filter_value(rng: random.Random, depth: int = 0) -> Any:
    import datetime as dt

    choices = [lambda: rng.choice(_WORDS), lambda: rng.randint(-(10**20), 10**20), lambda: 10**rng.randint(300, 400),
               lambda: rng.choice((0.5, -1e308, float("nan"), float("inf"), -float("inf"), 5e6)),
               lambda: rng.choice((True, False, None)), lambda: b"\xff\xfe",
               lambda: dt.datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28)),
               lambda: dt.date(rng.randint(1, 9999), 1, 1),
               lambda: rng.choice(("2026-11-27", "2026-11-27T09:30", "2026-11-27T09:30+05:00", "2026-13-45", "9999")),
               lambda: {"nested": 1}]
    if depth < 2:
        choices += [lambda: [filter_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
                    lambda: (rng.choice(_OPS), filter_value(rng, depth + 1)),
                    lambda: set(rng.choice(_WORDS) for _ in range(rng.randint(0, 3))),
                    lambda: tuple(filter_value(rng, depth + 1) for _ in range(rng.randint(0, 3)))]
    return rng.choice(choices)()


def where_dict(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice(("license='mit'", ["license=mit"], 42, None, {}, ("license", "mit")))
    return {rng.choice(_FIELDS) if rng.random() < 0.95 else rng.choice((1, None, ("a",))): filter_value(rng)
            for _ in range(rng.randint(0, 4))}


def cli_where(rng: random.Random) -> list[str]:
    out = []
    for _ in range(rng.randint(0, 4)):
        value = rng.choice([*_WORDS, "mit,apache-2.0", "5e6", "1e309", "-inf", "nan", "2026-11-01", "x,", ",",
                            "\udcff\udcfe", "mit\udc80"])
        out.append(f"{rng.choice(_FIELDS)}{rng.choice(('=', '<', '<=', '>', '>=', '!=', '~', ' = ', '', '=='))}{value}")
    return out


GENERATORS = {
    "zip": zip_bytes,
    "csv": lambda rng: table_bytes(rng, ","),
    "tsv": lambda rng: table_bytes(rng, "\t"),
    "parquet": parquet_bytes,
    "image": image_bytes,
    "folder": folder_tree,
    "where": where_dict,
    "cli-where": cli_where,
}


def generate(entry_point: str, rng: random.Random) -> Any:
    """One generated input for an entry point."""
    return GENERATORS[entry_point](rng)


# --- the fuzz loop ---------------------------------------------------------------------------------------------


def fuzz(entry_point: str, n: int, seed: int = 0, *, hang_s: float = 30.0) -> dict:
    """Feed n generated inputs (fixed by `seed`) to an entry point in a worker process and count what happened.

    Returns {"entry_point", "inputs", "results", "errors", "crashes", "tracebacks", "hangs", "peak_rss_mb",
    "max_seconds", "examples"}: `errors` are zoo2vec errors (the right end for a bad input), `tracebacks` any other
    exception, `crashes` a worker that died, `hangs` an input not done in `hang_s` seconds (the worker is then
    replaced); `peak_rss_mb` is the largest resident memory the worker reached while reading one input;
    `examples` the first few failures (kind, input's index, what was raised)."""
    if entry_point not in GENERATORS:
        raise ValueError(f"unknown entry point {entry_point!r}; known: {', '.join(ENTRY_POINTS)}")
    rng = random.Random(f"{entry_point}:{seed}")
    counts = {"entry_point": entry_point, "inputs": 0, "results": 0, "errors": 0, "crashes": 0, "tracebacks": 0,
              "hangs": 0, "peak_rss_mb": 0.0, "max_seconds": 0.0, "examples": []}
    worker = _Worker()
    try:
        for i in range(n):
            data = generate(entry_point, rng)
            kind, seconds, rss_mb, detail = worker.run(entry_point, data, hang_s)
            counts["inputs"] += 1
            counts[{"result": "results", "error": "errors", "traceback": "tracebacks", "crash": "crashes",
                    "hang": "hangs"}[kind]] += 1
            counts["peak_rss_mb"] = max(counts["peak_rss_mb"], rss_mb)
            counts["max_seconds"] = max(counts["max_seconds"], seconds)
            if kind in ("traceback", "crash", "hang") and len(counts["examples"]) < 5:
                counts["examples"].append({"kind": kind, "input": i, "detail": detail})
    finally:
        worker.close()
    counts["peak_rss_mb"] = round(counts["peak_rss_mb"], 1)
    counts["max_seconds"] = round(counts["max_seconds"], 3)
    return counts


class _Worker:
    """A process that feeds inputs one at a time; replaced when it dies or hangs."""

    def __init__(self):
        self.process = None

    def _start(self):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        child.close()

    def run(self, entry_point: str, data: Any, hang_s: float) -> tuple[str, float, float, str]:
        if self.process is None or not self.process.is_alive():
            self._start()
        started = time.monotonic()
        try:
            self.conn.send((entry_point, data))
            if self.conn.poll(hang_s):
                return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.close()
            return "crash", time.monotonic() - started, 0.0, f"the worker died (exit code {self.process_exit})"
        self.close()
        return "hang", time.monotonic() - started, 0.0, f"no answer within {hang_s:g} s"

    process_exit = None

    def close(self):
        if self.process is not None:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
            self.process_exit = self.process.exitcode
            self.process = None


def _serve(conn) -> None:
    """The worker: each input in a fresh folder, its seconds and peak resident memory measured."""
    import traceback

    base = Path(tempfile.mkdtemp(prefix="zoo2vec-fuzz-"))
    try:
        while True:
            try:
                entry_point, data = conn.recv()
            except EOFError:
                return
            workdir = base / "input"
            workdir.mkdir()
            _reset_peak_rss()
            started = time.monotonic()
            try:
                kind, detail = feed(entry_point, data, workdir), ""
            except Exception as exc:  # what the fuzzing looks for: anything but a result or a zoo2vec error
                kind = "traceback"
                detail = f"{type(exc).__name__}: {exc}"[:300] + " | " + traceback.format_exc(limit=-3)[-700:]
            conn.send((kind, time.monotonic() - started, _peak_rss_mb(), detail))
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 resets the peak resident set size (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(counts: list[dict]) -> dict:
    """The counts of several entry points added up, as bench/results.json's "reliability" / "fuzz" holds them."""
    total = {key: sum(c[key] for c in counts) for key in ("inputs", "crashes", "tracebacks", "hangs")}
    total["peak_rss_mb"] = max((c["peak_rss_mb"] for c in counts), default=0.0)
    return total


if __name__ == "__main__":  # python -m zoo2vec.eval.reliability [n]: a quick look at every entry point
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(json.dumps([fuzz(e, size) for e in ENTRY_POINTS], indent=1))
