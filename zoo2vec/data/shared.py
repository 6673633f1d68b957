"""Loaders for the public datasets in the shared data folder (ZOO2VEC_DATA; see its README).

Each returns a LabelledData (images (N, C, H, W) in [0, 1], or texts) with readable label names.
Large sets are subsampled, stratified and seeded, to at most MAX_SAMPLES, to keep builds on 2 cores.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from zoo2vec import settings
from zoo2vec.data.datasets import LabelledData, stratified_split
from zoo2vec.errors import ConfigError

MAX_SAMPLES = 6000


def _root(*parts):
    path = settings.shared_data().joinpath(*parts)
    if not path.exists():
        raise ConfigError(f"{path} not found: point ZOO2VEC_DATA at the shared data folder (see its README.md)")
    return path


def _make(name, x, y, names, source, license, max_samples=MAX_SAMPLES) -> LabelledData:
    y = np.asarray(y, dtype=np.int64)
    data = LabelledData(name, x if not isinstance(x, list) else list(x), y, tuple(names), source, license)
    if len(y) > max_samples:
        keep = stratified_split(y, [max_samples / len(y), 1.0], seed=0)[0]
        data = data.subset(keep)
    return data


def _idx(path) -> np.ndarray:
    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist():
    x = _idx(_root("images", "mnist", "t10k-images-idx3-ubyte.gz"))
    y = _idx(_root("images", "mnist", "t10k-labels-idx1-ubyte.gz"))
    return _make("mnist", (x[:, None] / 255.0).astype(np.float32), y, [str(i) for i in range(10)],
                 "MNIST test set", "cc-by-sa-3.0")


FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def fashion_mnist():
    from PIL import Image

    img = np.asarray(Image.open(_root("images", "fashion_mnist", "fashion-mnist-sprite.png")))
    tiles = img[..., 0].reshape(30, 28, 30, 28).transpose(0, 2, 1, 3).reshape(900, 28, 28)
    return _make("fashion-mnist", (tiles[:, None] / 255.0).astype(np.float32), np.repeat(np.arange(10), 90), FASHION,
                 "Fashion-MNIST sprite (900 images)", "mit")


def cifar10():
    from PIL import Image

    found = []
    with tarfile.open(_root("images", "cifar10", "test_jpg.tar.gz")) as tar:
        for m in tar:  # in archive order: seeking back in a .tar.gz decompresses it again
            if m.isfile() and m.name.endswith(".jpg"):
                with Image.open(io.BytesIO(tar.extractfile(m).read())) as im:
                    found.append((m.name, np.asarray(im.convert("RGB"))))
    found.sort(key=lambda t: t[0])
    classes = sorted({name.split("/")[-2] for name, _ in found})
    labels = [classes.index(name.split("/")[-2]) for name, _ in found]
    x = (np.stack([img for _, img in found]).transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
    return _make("cifar10", x, labels, classes, "CIFAR-10 test set (JPEG)", "unknown")


def _medmnist(name, classes):
    with np.load(_root("images", "medmnist", f"{name}.npz")) as z:
        x = np.concatenate([z[f"{s}_images"] for s in ("train", "val", "test")])
        y = np.concatenate([z[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    return _make(name, (x[:, None] / 255.0).astype(np.float32), y, classes, f"MedMNIST v2 {name}", "cc-by-4.0")


def breastmnist():
    return _medmnist("breastmnist", ("malignant", "normal or benign"))


def pneumoniamnist():
    return _medmnist("pneumoniamnist", ("normal", "pneumonia"))


def omniglot():
    """Omniglot background sets; a class is one character of one alphabet (20 drawings each), at 28x28."""
    from PIL import Image

    images, labels, names = [], [], []
    for part in ("images_background_small1.zip", "images_background_small2.zip"):
        with zipfile.ZipFile(_root("images", "omniglot", part)) as z:
            for member in sorted(n for n in z.namelist() if n.endswith(".png")):
                alphabet, character = member.split("/")[-3:-1]
                key = f"{alphabet}/{character}"
                if not names or names[-1] != key:
                    names.append(key)
                with Image.open(io.BytesIO(z.read(member))) as im:
                    # black strokes on white, 105x105: invert to MNIST polarity and shrink
                    images.append(255 - np.asarray(im.convert("L").resize((28, 28), Image.Resampling.BILINEAR)))
                labels.append(len(names) - 1)
    return _make("omniglot", (np.stack(images)[:, None] / 255.0).astype(np.float32), labels, names,
                 "Omniglot background small 1+2", "mit")


def _labelled_lines(path, names, sep=" ", label_first=True):
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        line = line.strip()
        if not line or sep not in line:
            continue
        if label_first:
            label, text = line.split(sep, 1)
        else:
            text, label = line.rsplit(sep, 1)
        texts.append(text.strip())
        labels.append(int(label))
    return texts, labels, names


def _sentences(name, files, names, source):
    texts, labels = [], []
    for f in files:
        t, l, _ = _labelled_lines(_root("text", "sentence_benchmarks", f), names)
        texts += t
        labels += l
    return _make(name, texts, labels, names, source, "academic-use")


def sst2():
    return _sentences("sst2", ["stsa.binary.train", "stsa.binary.dev", "stsa.binary.test"], ("negative", "positive"),
                      "SST-2 sentences")


def sst5():
    return _sentences("sst5", ["stsa.fine.train", "stsa.fine.dev", "stsa.fine.test"],
                      ("very negative", "negative", "neutral", "positive", "very positive"), "SST-5 sentences")


def trec():
    return _sentences("trec", ["TREC.train.all", "TREC.test.all"],
                      ("description", "entity", "abbreviation", "human", "location", "number"), "TREC questions")


def mr():
    return _sentences("mr", ["rt-polarity.all"], ("negative", "positive"), "MR movie review sentences")


def cr():
    return _sentences("cr", ["custrev.all"], ("negative", "positive"), "CR customer reviews")


def subj():
    return _sentences("subj", ["subj.all"], ("subjective", "objective"), "SUBJ subjectivity")


def mpqa():
    return _sentences("mpqa", ["mpqa.all"], ("negative", "positive"), "MPQA opinion phrases")


def ag_news():
    names = [c.strip() for c in _root("text", "ag_news", "classes.txt").read_text().splitlines() if c.strip()]
    texts, labels = [], []
    with open(_root("text", "ag_news", "test.csv"), newline="", encoding="utf-8") as f:
        for label, title, desc in csv.reader(f):
            texts.append(f"{title}. {desc}".replace("\\", " "))
            labels.append(int(label) - 1)
    return _make("ag-news", texts, labels, names, "AG News test set", "non-commercial")


def banking77():
    rows = []
    for split in ("train", "test"):
        with open(_root("text", "banking77", f"{split}.csv"), newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    names = sorted({r["category"] for r in rows})
    return _make("banking77", [r["text"] for r in rows], [names.index(r["category"]) for r in rows],
                 [n.replace("_", " ") for n in names], "BANKING77 intents", "cc-by-4.0")


def clinc150():
    data = json.loads(_root("text", "clinc150", "data_full.json").read_text())
    rows = [r for split in ("train", "val", "test") for r in data[split]]
    names = sorted({r[1] for r in rows})
    return _make("clinc150", [r[0] for r in rows], [names.index(r[1]) for r in rows],
                 [n.replace("_", " ") for n in names], "CLINC150 intents (in scope)", "cc-by-3.0")


def goemotions():
    names = [n.strip() for n in _root("text", "goemotions", "labels.txt").read_text().splitlines() if n.strip()]
    texts, labels = [], []
    for split in ("train", "dev", "test"):
        for line in _root("text", "goemotions", f"{split}.tsv").read_text(encoding="utf-8").split("\n"):
            parts = line.split("\t")
            if len(parts) == 3 and "," not in parts[1]:  # single-label examples only
                texts.append(parts[0])
                labels.append(int(parts[1]))
    return _make("goemotions", texts, labels, names, "GoEmotions (single-label)", "apache-2.0")


def sms_spam():
    texts, labels = [], []
    for line in _root("text", "sms_spam", "SMSSpamCollection").read_text(encoding="utf-8", errors="replace").split("\n"):
        if "\t" in line:
            label, text = line.split("\t", 1)
            texts.append(text)
            labels.append(int(label == "spam"))
    return _make("sms-spam", texts, labels, ("ham", "spam"), "SMS Spam Collection", "cc-by-4.0")


def _uci(source):
    def load():
        t, l, names = _labelled_lines(_root("text", "uci_sentiment_sentences", f"{source}_labelled.txt"),
                                      ("negative", "positive"), sep="\t", label_first=False)
        return _make(f"uci-{source.split('_')[0]}", t, l, names, f"UCI sentiment sentences ({source})", "cc-by-4.0")

    return load


SHARED: dict[str, tuple[str, Callable[[], LabelledData]]] = {
    "mnist": ("image", mnist), "fashion-mnist": ("image", fashion_mnist), "cifar10": ("image", cifar10),
    "breastmnist": ("image", breastmnist), "pneumoniamnist": ("image", pneumoniamnist), "omniglot": ("image", omniglot),
    "ag-news": ("text", ag_news), "sst2": ("text", sst2), "sst5": ("text", sst5), "trec": ("text", trec),
    "mr": ("text", mr), "cr": ("text", cr), "subj": ("text", subj), "mpqa": ("text", mpqa),
    "banking77": ("text", banking77), "clinc150": ("text", clinc150), "goemotions": ("text", goemotions),
    "sms-spam": ("text", sms_spam), "uci-amazon": ("text", _uci("amazon_cells")), "uci-imdb": ("text", _uci("imdb")),
    "uci-yelp": ("text", _uci("yelp")),
}


@lru_cache(maxsize=32)
def shared(name: str) -> LabelledData:
    if name not in SHARED:
        raise ConfigError(f"unknown shared dataset {name!r}. Available: {', '.join(SHARED)}")
    return SHARED[name][1]()
