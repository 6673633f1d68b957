"""The loaders of the nine public datasets added to the shared folder: counts, classes, names, shapes, leaks."""

import re

import numpy as np
import pytest

from zoo2vec.data.shared import MAX_SAMPLES, SHARED, shared
from zoo2vec.errors import ConfigError

# name: (modality, samples (low, high), label names, image shape or None)
EXPECTED = {
    "gtsrb": ("image", (480, 480), ("speed limit 30", "speed limit 50", "speed limit 70", "no passing for trucks",
                                    "priority road", "yield", "road work", "keep right"), (3, 32, 32)),
    "tinyimagenet": ("image", (4000, 4000), ("goldfish", "tabby cat", "lighthouse", "convertible", "sock", "orange",
                                             "coral reef", "acorn"), (3, 64, 64)),
    "clickbait": ("text", (MAX_SAMPLES, MAX_SAMPLES), ("news", "clickbait"), None),  # 32,000, subsampled
    "reuters-r8": ("text", (MAX_SAMPLES, MAX_SAMPLES), ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship",
                                                        "trade"), None),  # 7,674, subsampled
    "financial-phrasebank": ("text", (4846, 4846), ("negative", "neutral", "positive"), None),
    "liar": ("text", (MAX_SAMPLES, MAX_SAMPLES), ("pants-fire", "false", "barely-true", "half-true", "mostly-true",
                                                  "true"), None),  # 12,836, subsampled
    "youtube-spam": ("text", (1956, 1956), ("not spam", "spam"), None),
    "enron-spam": ("text", (5100, 5172), ("ham", "spam"), None),  # 5,172 less the e-mails left empty
    "20newsgroups": ("text", (5800, 5896), ("mac hardware", "for sale", "autos", "baseball", "electronics",
                                            "medicine"), None),  # 5,896 less the posts that are all quotes
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", list(EXPECTED))
def test_loads_with_expected_counts_classes_and_names(name):
    modality, (low, high), names, shape = EXPECTED[name]
    data = shared(name)
    assert SHARED[name][0] == modality
    assert low <= len(data) <= high
    assert data.label_names == names
    assert data.y.dtype == np.int64 and len(data.y) == len(data.x)
    counts = np.bincount(data.y, minlength=len(names))
    assert len(counts) == len(names) and counts.min() > 0, dict(zip(names, counts))
    assert data.license and data.source
    if shape:
        assert data.x.shape == (len(data), *shape) and data.x.dtype == np.float32
        assert 0.0 <= data.x.min() and data.x.max() <= 1.0 and data.x.max() > 0.5
        assert data.x.std(axis=(1, 2, 3)).min() > 0  # no blank images
    else:
        assert isinstance(data.x, list) and all(isinstance(t, str) and t.strip() for t in data.x)


@pytest.mark.shared_data
def test_class_balance_matches_the_readme():
    assert np.bincount(shared("gtsrb").y).tolist() == [60] * 8  # 12 tracks x 5 frames a class
    assert np.bincount(shared("tinyimagenet").y).tolist() == [500] * 8
    assert np.bincount(shared("financial-phrasebank").y).tolist() == [604, 2879, 1363]
    assert np.bincount(shared("youtube-spam").y).tolist() == [951, 1005]
    assert np.bincount(shared("enron-spam").y)[0] == 3672
    assert abs(np.bincount(shared("clickbait").y)[0] - MAX_SAMPLES // 2) <= 2  # 16,001 news / 15,999 clickbait
    reuters = dict(zip(shared("reuters-r8").label_names, np.bincount(shared("reuters-r8").y)))
    assert reuters["earn"] > reuters["acq"] > reuters["grain"] > 0


@pytest.mark.shared_data
def test_gtsrb_colour_channels_are_not_all_equal():
    x = shared("gtsrb").x
    assert np.abs(x[:, 0] - x[:, 2]).mean() > 0.02  # RGB, not greyscale copied three times


@pytest.mark.shared_data
def test_20newsgroups_has_no_headers_or_quotes():
    texts = shared("20newsgroups").x
    header = re.compile(r"^(From|Subject|Newsgroups|Organization|Lines|Path|Message-ID):", re.IGNORECASE)
    for t in texts:
        assert len(t) <= 1000
        for line in t.split("\n"):
            assert not header.match(line), line
            assert not line.startswith((">", "|>")), line
            assert not line.startswith("In article"), line


@pytest.mark.shared_data
def test_enron_texts_are_cut_and_lose_the_subject_word():
    texts = shared("enron-spam").x
    assert max(len(t) for t in texts) == 1000
    assert not any(t.startswith("Subject:") for t in texts)
    assert "christmas tree farm pictures" in texts  # the first ham e-mail is its subject only


@pytest.mark.shared_data
def test_text_cleaning():
    assert not any("\ufeff" in t for t in shared("youtube-spam").x)
    assert not any("\ufeff" in t or "\r" in t or t.endswith(("@neutral", "@positive", "@negative"))
                   for t in shared("financial-phrasebank").x)
    assert "Example" not in shared("reuters-r8").x  # the header line is not a sample
    liar = shared("liar").x
    assert not any(t.endswith(".json") or "\t" in t for t in liar)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_missing_folder_is_a_config_error(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO2VEC_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match="ZOO2VEC_DATA"):
        SHARED[name][1]()  # the loader itself: shared() caches by name only
