"""Loaders for the public datasets in the shared data folder (ZOO2VEC_DATA; see its README).

Each returns a LabelledData (images (N, C, H, W) in [0, 1], or texts) with readable label names.
Large sets are subsampled, stratified and seeded, to at most MAX_SAMPLES, to keep builds on 2 cores.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
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


def _make(name, x, y, names, source, license, max_samples=MAX_SAMPLES, groups=None) -> LabelledData:
    y = np.asarray(y, dtype=np.int64)
    groups = None if groups is None else np.asarray(groups, dtype=np.int64)
    data = LabelledData(name, x if not isinstance(x, list) else list(x), y, tuple(names), source, license, groups)
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


GTSRB = {1: "speed limit 30", 2: "speed limit 50", 4: "speed limit 70", 10: "no passing for trucks", 12: "priority road",
         13: "yield", 25: "road work", 38: "keep right"}  # GTSRB class id -> name


def gtsrb():
    """GTSRB traffic signs, 8 classes at 32x32 RGB. Each folder holds 12 tracks (file prefix TTTTT_) of 30 frames of
    one physical sign, near-duplicates of each other; only every 6th frame (00000, 00006, ...: 5 a track, 480 images)
    is kept so that near-duplicates are few. The 5 kept frames of a track still show the same sign: `groups` holds the
    track (class id * 1000 + track number), so splits keep each track on one side."""
    from PIL import Image

    images, labels, tracks = [], [], []
    for label, class_id in enumerate(GTSRB):
        for f in sorted(_root("images", "gtsrb32_subset", f"{class_id:05d}").glob("*.ppm")):
            if int(f.stem.split("_")[1]) % 6 == 0:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert("RGB")))
                labels.append(label)
                tracks.append(class_id * 1000 + int(f.stem.split("_")[0]))
    x = (np.stack(images).transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
    return _make("gtsrb", x, labels, GTSRB.values(), "GTSRB training tracks (8 classes, every 6th frame)",
                 "research-only", groups=tracks)


# words.txt is not in the folder (only wnids.txt, which lists all 200 classes); names as the README gives them
TINYIMAGENET = {"n01443537": "goldfish", "n02123045": "tabby cat", "n02814860": "lighthouse", "n03100240": "convertible",
                "n04254777": "sock", "n07747607": "orange", "n09256479": "coral reef", "n12267677": "acorn"}


def tinyimagenet():
    """Tiny ImageNet training images of 8 classes, 64x64 RGB (the 32 greyscale ones converted to RGB)."""
    from PIL import Image

    images, labels = [], []
    for label, wnid in enumerate(TINYIMAGENET):
        for f in sorted(_root("images", "tinyimagenet_subset8", "train", wnid, "images").glob("*.JPEG")):
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("RGB")))
            labels.append(label)
    x = (np.stack(images).transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
    return _make("tinyimagenet", x, labels, TINYIMAGENET.values(), "Tiny ImageNet train (8 classes)", "non-commercial")


def clickbait():
    texts, labels = [], []
    for label, part in enumerate(("non_clickbait_data.gz", "clickbait_data.gz")):
        with gzip.open(_root("text", "clickbait", part), "rt", encoding="utf-8") as f:
            lines = [line.strip() for line in f.read().split("\n")]
        texts += [line for line in lines if line]
        labels += [label] * sum(1 for line in lines if line)
    return _make("clickbait", texts, labels, ("news", "clickbait"), "Clickbait vs news headlines (Chakraborty 2016)",
                 "mit")


def reuters_r8():
    rows = []
    for split in ("train", "test"):
        lines = _root("text", "reuters_r8", f"r8-{split}-all-terms.txt").read_text(encoding="utf-8").split("\n")
        rows += [line.split("\t", 1) for line in lines[1:] if "\t" in line]  # lines[0] is the header
    names = sorted({r[0] for r in rows})
    return _make("reuters-r8", [r[1].strip() for r in rows], [names.index(r[0]) for r in rows], names,
                 "Reuters-21578 R8 (train + test, lower-cased)", "research-only")


PHRASEBANK = ("negative", "neutral", "positive")


def financial_phrasebank():
    texts, labels = [], []
    path = _root("text", "financial_phrasebank", "Sentences_50Agree.txt")
    for line in path.read_text(encoding="utf-8-sig").split("\n"):
        if "@" in line:
            text, label = line.strip().rsplit("@", 1)
            texts.append(text.strip())
            labels.append(PHRASEBANK.index(label))
    return _make("financial-phrasebank", texts, labels, PHRASEBANK, "Financial PhraseBank (50% agreement)",
                 "cc-by-nc-sa-3.0")


LIAR = ("pants-fire", "false", "barely-true", "half-true", "mostly-true", "true")


def liar():
    """LIAR statements with their six truthfulness labels; the metadata columns (speaker, party, credit history)
    are left out, as they would leak the label."""
    texts, labels = [], []
    for split in ("train", "valid", "test"):
        for line in _root("text", "liar", f"{split}.tsv").read_text(encoding="utf-8").split("\n"):
            parts = line.split("\t")
            if len(parts) > 2 and parts[1] in LIAR:
                texts.append(parts[2].strip())
                labels.append(LIAR.index(parts[1]))
    return _make("liar", texts, labels, LIAR, "LIAR (train + valid + test)", "research-only")


YOUTUBE = ("Youtube01-Psy", "Youtube02-KatyPerry", "Youtube03-LMFAO", "Youtube04-Eminem", "Youtube05-Shakira")


def youtube_spam():
    texts, labels = [], []
    for video in YOUTUBE:
        with open(_root("text", "youtube_spam", f"{video}.csv"), newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                texts.append(r["CONTENT"].replace("\ufeff", "").strip())  # most comments end in a stray U+FEFF
                labels.append(int(r["label"]))
    return _make("youtube-spam", texts, labels, ("not spam", "spam"), "YouTube Spam Collection (5 videos)",
                 "cc-by-4.0")


def enron_spam():
    """Enron-Spam "enron1": the "Subject:" word dropped (the subject text kept), whitespace collapsed, and each
    e-mail cut to its first 1000 characters. The 16 e-mails left empty (all spam: an empty text would give the label
    away) are skipped."""
    texts, labels = [], []
    for label, part in enumerate(("ham", "spam")):
        for f in sorted(_root("text", "enron1_spam", part).glob("*.txt")):
            text = " ".join(f.read_text(encoding="latin-1").removeprefix("Subject:").split())
            if text:
                texts.append(text[:1000])
                labels.append(label)
    return _make("enron-spam", texts, labels, ("ham", "spam"), "Enron-Spam enron1", "research-only")


NEWSGROUPS = {"comp.sys.mac.hardware": "mac hardware", "misc.forsale": "for sale", "rec.autos": "autos",
              "rec.sport.baseball": "baseball", "sci.electronics": "electronics", "sci.med": "medicine"}
# quoted lines and their attributions (the rule scikit-learn's fetch_20newsgroups(remove="quotes") uses)
_QUOTED = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")
# header lines of messages forwarded inside a post's body (one even names another newsgroup)
_HEADER = re.compile(r"^(From|Subject|Newsgroups|Organi[sz]ation|Lines|Path|Message-ID|Date|Reply-To|Sender|"
                     r"Article-I\.D\.|NNTP-Posting-Host|References|Followup-To|Distribution|Keywords|Summary|Xref|"
                     r"Expires|In-Reply-To|Originator|X-[\w-]+):", re.IGNORECASE)


def _newsgroup_body(raw: str) -> str:
    body = raw.partition("\n\n")[2]  # the headers (From, Subject, Newsgroups, Organization, ...) end at a blank line
    lines = [line.strip() for line in body.split("\n")]
    return "\n".join(line for line in lines if line and not _QUOTED.search(line) and not _HEADER.match(line))


def newsgroups20():
    """20 Newsgroups (bydate train + test), 6 groups. Headers, quoted lines and the header lines of forwarded
    messages are dropped (they name the group or the poster), blank lines too; posts left empty are skipped; the
    rest are cut to their first 1000 characters."""
    texts, labels = [], []
    for split in ("20news-bydate-train", "20news-bydate-test"):
        for label, group in enumerate(NEWSGROUPS):
            for f in sorted(p for p in _root("text", "20ng_subset6", split, group).iterdir() if p.is_file()):
                text = _newsgroup_body(f.read_text(encoding="utf-8", errors="replace"))
                if text:
                    texts.append(text[:1000])
                    labels.append(label)
    return _make("20newsgroups", texts, labels, NEWSGROUPS.values(), "20 Newsgroups bydate (6 groups)",
                 "research-only")


SHARED: dict[str, tuple[str, Callable[[], LabelledData]]] = {
    "mnist": ("image", mnist), "fashion-mnist": ("image", fashion_mnist), "cifar10": ("image", cifar10),
    "breastmnist": ("image", breastmnist), "pneumoniamnist": ("image", pneumoniamnist), "omniglot": ("image", omniglot),
    "ag-news": ("text", ag_news), "sst2": ("text", sst2), "sst5": ("text", sst5), "trec": ("text", trec),
    "mr": ("text", mr), "cr": ("text", cr), "subj": ("text", subj), "mpqa": ("text", mpqa),
    "banking77": ("text", banking77), "clinc150": ("text", clinc150), "goemotions": ("text", goemotions),
    "sms-spam": ("text", sms_spam), "uci-amazon": ("text", _uci("amazon_cells")), "uci-imdb": ("text", _uci("imdb")),
    "uci-yelp": ("text", _uci("yelp")),
    "gtsrb": ("image", gtsrb), "tinyimagenet": ("image", tinyimagenet), "clickbait": ("text", clickbait),
    "reuters-r8": ("text", reuters_r8), "financial-phrasebank": ("text", financial_phrasebank), "liar": ("text", liar),
    "youtube-spam": ("text", youtube_spam), "enron-spam": ("text", enron_spam), "20newsgroups": ("text", newsgroups20),
}


@lru_cache(maxsize=32)
def shared_half(name: str, part: str) -> LabelledData:
    """One of a shared dataset's two fixed halves: "zoo" (the benchmark's models train on it, probe sets may draw from
    it) or "tasks" (the benchmark's tasks). Near-duplicate groups (LabelledData.groups) stay whole."""
    if part not in ("zoo", "tasks"):
        raise ConfigError(f"unknown half {part!r}: use 'zoo' or 'tasks'")
    data = shared(name)
    halves = stratified_split(data.y, [0.5, 0.5], seed=1, groups=data.groups)
    return data.subset(halves[0 if part == "zoo" else 1])


@lru_cache(maxsize=32)
def shared(name: str) -> LabelledData:
    if name not in SHARED:
        raise ConfigError(f"unknown shared dataset {name!r}. Available: {', '.join(SHARED)}")
    return SHARED[name][1]()
