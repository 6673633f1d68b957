"""Property-based fuzzing (Hypothesis) of every way a user's input enters zoo2vec: task files from bytes (zip, CSV,
TSV, Parquet, images, folders) and filters (the API's where dict, the CLI's --where strings).

Every generated input must end in a result or a zoo2vec error (a Zoo2VecError), never another exception, within a
few seconds. The seed is fixed (derandomize=True); ZOO2VEC_FUZZ_EXAMPLES (default 1,000) inputs per entry point.
Inputs come from Hypothesis' own strategies (raw bytes, text, nested values, shrunk on failure) and from
zoo2vec.eval.reliability's generators (valid, mutated and hostile files) seeded by Hypothesis.
"""

import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from zoo2vec import settings
from zoo2vec.eval import reliability

pytestmark = pytest.mark.fuzz

FUZZ = hypothesis_settings(max_examples=settings.FUZZ_EXAMPLES.get(), derandomize=True, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck), print_blob=True)
SECONDS_PER_INPUT = 10.0


def _ends_in_a_result_or_a_zoo2vec_error(entry_point: str, data) -> None:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        outcome = reliability.feed(entry_point, data, Path(folder))  # any other exception fails the test
        seconds = time.perf_counter() - started
    assert outcome in ("result", "error")
    assert seconds < SECONDS_PER_INPUT, f"{entry_point} took {seconds:.1f} s on one input"


def _generated(entry_point: str):
    """reliability's generator for the entry point, from a seed Hypothesis draws (one draw: the generators make
    many random choices, and a Hypothesis draw for each would cost more than the input's parsing)."""
    return st.integers(0, 2**32 - 1).map(lambda seed: reliability.generate(entry_point, random.Random(seed)))


@st.composite
def _mutated(draw, seeds):
    """A valid input's bytes after edits Hypothesis chooses (and shrinks): flips, cuts, insertions."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut":
            del data[at:at + draw(st.integers(1, 32))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:]
    return bytes(data)


_cells = st.one_of(st.text(max_size=20), st.sampled_from(['"', '""', "a,b", "a\tb", "x\ny", "\r", "\x00", " ", "nan"]))


def _table(sep: str):
    header = st.one_of(st.just(["text", "label"]), st.lists(st.text(max_size=8), max_size=4))
    rows = st.lists(st.lists(_cells, min_size=0, max_size=4), max_size=12)
    text = st.builds(lambda h, r: "\n".join(sep.join(row) for row in [h, *r]), header, rows)
    encoded = st.tuples(text, st.sampled_from(["utf-8", "utf-16", "latin-1"])).map(
        lambda pair: pair[0].encode(pair[1], errors="replace"))
    return st.one_of(encoded, _generated("csv" if sep == "," else "tsv"), _mutated(encoded), st.binary(max_size=512))


_zip = st.one_of(_generated("zip"), _mutated(_generated("zip")), st.binary(max_size=512))
_parquet = st.one_of(_generated("parquet"), _mutated(_generated("parquet")), st.binary(max_size=512))
_image = st.one_of(
    _generated("image"),
    st.tuples(st.sampled_from(reliability.IMAGE_SUFFIXES),
              st.one_of(_mutated(_generated("image").map(lambda pair: pair[1])), st.binary(max_size=256))))
_safe_names = st.text(st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/\\"), min_size=1,
                      max_size=12).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)
_files = st.dictionaries(
    st.tuples(_safe_names, st.sampled_from([".txt", ".png", ".jpg", ".csv", ".bin", ""])).map("".join),
    st.one_of(st.binary(max_size=128), _generated("image").map(lambda pair: pair[1]),
              st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass"))),
    max_size=4)
_folder = st.one_of(_generated("folder"), st.dictionaries(_safe_names, _files, max_size=4))

_filter_values = st.recursive(
    st.one_of(st.text(max_size=12), st.sampled_from(["\udcff", "mit\udc80", "2026-11-27", "2026-11-27T09:30+05:00"]),
              st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(), st.binary(max_size=4),
              st.datetimes(), st.dates()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(st.sampled_from(reliability._OPS[:8]), inner),
                            st.tuples(inner, inner), st.frozensets(st.text(max_size=4), max_size=3)),
    max_leaves=6)
_where = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(reliability._FIELDS), st.text(max_size=6)), _filter_values, max_size=4),
    _generated("where"), st.text(max_size=20), st.lists(st.text(max_size=10), max_size=2))
_cli_where = st.one_of(
    st.lists(st.builds("".join, st.tuples(st.sampled_from(reliability._FIELDS),
                                          st.sampled_from(["=", "<", "<=", ">", ">=", "!=", "~", " = ", ""]),
                                          st.text(max_size=16))), max_size=4),
    st.lists(st.text(max_size=24), max_size=3),
    _generated("cli-where"))


@FUZZ
@given(_zip)
def test_zip_files(data):
    _ends_in_a_result_or_a_zoo2vec_error("zip", data)


@FUZZ
@given(_table(","))
def test_csv_files(data):
    _ends_in_a_result_or_a_zoo2vec_error("csv", data)


@FUZZ
@given(_table("\t"))
def test_tsv_files(data):
    _ends_in_a_result_or_a_zoo2vec_error("tsv", data)


@FUZZ
@given(_parquet)
def test_parquet_files(data):
    _ends_in_a_result_or_a_zoo2vec_error("parquet", data)


@FUZZ
@given(_image)
def test_image_files(data):
    _ends_in_a_result_or_a_zoo2vec_error("image", data)


@FUZZ
@given(_folder)
def test_folders(data):
    _ends_in_a_result_or_a_zoo2vec_error("folder", data)


@FUZZ
@given(_where)
def test_api_where(data):
    _ends_in_a_result_or_a_zoo2vec_error("where", data)


@FUZZ
@given(_cli_where)
def test_cli_where_strings(data):
    _ends_in_a_result_or_a_zoo2vec_error("cli-where", data)
