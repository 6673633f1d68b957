"""A Hugging Face classifier saved with `save_pretrained`: config.json (id2label) beside its weights, run with the
folder's own tokenizer or image processor.

    {"kind": "transformers", "architecture": "BertForSequenceClassification", "max_length"?: 512, "batch_size"?: 32}

Text models get the strings tokenised with padding and truncation; image models get zoo2vec's [0, 1] images as
8-bit pixels (what a PIL image holds), so the processor resizes, crops, rescales and normalises them as it would a
photo. Outputs are the softmax of the logits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from zoo2vec.errors import SkippedModel, ZooError
from zoo2vec.zoo.adapters import Inferred, ModelSource, register
from zoo2vec.zoo.blackbox import device
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.hub_files import read_json, safetensors_params

CONFIG = "config.json"
PROCESSOR_CONFIG = "preprocessor_config.json"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")
MAX_TEXT_LENGTH = 512  # tokens; tokenizers saved without a model_max_length say 1e30
_HEAD = re.compile(r"For(Sequence|Image)Classification(WithTeacher)?$")  # DeiT's distilled head counts
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")
_NEEDS = "zoo2vec indexes *ForSequenceClassification (text) and *ForImageClassification (image) models"


def detect(folder: Path) -> Inferred | None:
    """A save_pretrained classifier's card: labels from id2label, modality from its head, params from the
    safetensors header, input shape from the image processor, the rest from README.md's front matter."""
    folder = Path(folder)
    config = read_json(folder / CONFIG)
    if not isinstance(config, dict) or not ("architectures" in config or "model_type" in config):
        return None  # no config.json, or one of another library (timm writes "architecture", singular)
    if not any((folder / name).is_file() for name in WEIGHTS):
        return None  # e.g. an ONNX or TensorFlow export: not loadable here, perhaps by another format
    architectures = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type", ""))
    head = next((a for a in architectures if _HEAD.search(a)), None)
    if head is None:
        what = ", ".join(architectures) or "no architectures"
        kind = " (a sentence-transformers encoder)" if (folder / "modules.json").is_file() else ""
        raise SkippedModel(f"{CONFIG} names {what}{kind}, a {model_type or 'transformers'} model "
                           f"without a classification head; {_NEEDS}")
    processor = read_json(folder / PROCESSOR_CONFIG)
    processor = processor if isinstance(processor, dict) else {}
    modality = "image" if "ImageClassification" in head else "text"
    if modality == "text" and _is_audio(folder, processor):
        raise SkippedModel(f"{head} classifies audio ({PROCESSOR_CONFIG} names a feature extractor "
                           "and there is no tokenizer); zoo2vec indexes text and image classifiers")

    fields: dict[str, Any] = {"modality": modality, "adapter": {"kind": "transformers", "architecture": head}}
    origin = {"modality": f"{CONFIG} architectures ({head})", "adapter": f"{CONFIG} architectures"}
    labels = _labels(config.get("id2label"))
    n_outputs = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    if n_outputs < 2:
        raise SkippedModel(f"{head} has {n_outputs} output (a regression head); zoo2vec indexes "
                           "classifiers of two or more labels")
    if labels and not all(_DEFAULT_LABEL.match(name) for name in labels):
        fields["label_names"], origin["label_names"] = labels, f"{CONFIG} id2label"
    params = _params(folder)
    if params is not None:
        fields["params"], origin["params"] = params
    if model_type:
        fields["tags"], origin["tags"] = [model_type], f"{CONFIG} model_type"
    if modality == "image":
        shape, where = _input_shape(folder, config, processor)
        if shape is not None:
            fields["input_shape"], origin["input_shape"] = shape, where
    return Inferred(fields, origin)


@register("transformers", detect=detect, priority=40,
          expects="config.json with id2label + model.safetensors/pytorch_model.bin (save_pretrained)")
def load(source: ModelSource) -> TransformersModel:
    import torch
    import transformers

    card, folder = source.card, source.folder
    image = card.modality == "image"
    if image and not (folder / PROCESSOR_CONFIG).is_file():
        raise ZooError(f"model {card.name!r}: an image classifier needs its image processor's {PROCESSOR_CONFIG} "
                       "beside it (processor.save_pretrained(folder)); zoo2vec preprocesses as the folder says")
    prepare = transformers.AutoImageProcessor if image else transformers.AutoTokenizer
    head = transformers.AutoModelForImageClassification if image else transformers.AutoModelForSequenceClassification
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a library prints nothing: no "Loading weights" bar
    try:
        preprocessor = prepare.from_pretrained(str(folder), local_files_only=True)
        module = head.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:  # missing files, an unknown model_type, custom code
        raise ZooError(f"model {card.name!r}: transformers cannot load {folder}: {exc}") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    return TransformersModel(module.to(device()).eval(), preprocessor, card, max_length=source.spec.get("max_length"),
                             batch_size=int(source.spec.get("batch_size", 32)))


class TransformersModel:
    """A transformers classifier and its tokenizer or image processor, as a black box."""

    def __init__(self, module, preprocessor, card: ModelCard, *, max_length: int | None = None, batch_size: int = 32):
        self.module = module
        self.preprocessor = preprocessor
        self.card = card
        self.batch_size = batch_size
        limits = [MAX_TEXT_LENGTH, getattr(preprocessor, "model_max_length", None),
                  getattr(module.config, "max_position_embeddings", None), max_length]
        self.max_length = min(int(n) for n in limits if n)
        if getattr(preprocessor, "pad_token", "") is None and getattr(preprocessor, "eos_token", None):
            preprocessor.pad_token = preprocessor.eos_token  # GPT-style tokenizers have none; batches need one
            if getattr(module.config, "pad_token_id", None) is None:  # and their head looks for it to find the end
                module.config.pad_token_id = preprocessor.eos_token_id

    def predict(self, batch) -> np.ndarray:
        import torch

        outs = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                inputs = self._images(chunk) if self.card.modality == "image" else self._texts(chunk)
                inputs = {key: value.to(self.module.device) for key, value in inputs.items()}
                outs.append(self.module(**inputs).logits.float().softmax(dim=-1).cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=np.float32)

    def _texts(self, texts) -> dict:
        return self.preprocessor([str(t) for t in texts], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")

    def _images(self, images) -> dict:
        """zoo2vec's (N, C, H, W) floats in [0, 1] as the (H, W, C) uint8 arrays a PIL image turns into: processors
        are made for 8-bit pixels (the PIL backend round-trips float arrays through uint8 anyway), so the result is
        what the processor makes of the same picture as a PIL image. A grayscale model is not turned to RGB, and
        when its processor normalises three channels it gets their mean and std averaged (exact when they agree)."""
        x = np.asarray(images, dtype=np.float32)
        pixels = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        options: dict[str, Any] = {"return_tensors": "pt", "input_data_format": "channels_last"}
        if pixels.shape[-1] == 1:
            options["do_convert_rgb"] = False
            for key in ("image_mean", "image_std"):
                value = getattr(self.preprocessor, key, None)
                if isinstance(value, list | tuple) and len(value) > 1:
                    options[key] = [float(np.mean(value))]
        return {"pixel_values": self.preprocessor(list(pixels), **options)["pixel_values"]}



def _is_audio(folder: Path, processor: dict) -> bool:
    has_tokenizer = any((folder / name).is_file() for name in TOKENIZER_FILES)
    return "feature_extractor_type" in processor and not has_tokenizer


def _labels(id2label) -> list[str] | None:
    """id2label's names in index order; None unless its keys are exactly 0..n-1."""
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_index) != list(range(len(by_index))):
        return None
    return [by_index[i] for i in range(len(by_index))]


def _params(folder: Path) -> tuple[int, str] | None:
    """Parameter count from the safetensors headers (one file, or the shards an index names), and where."""
    single = folder / "model.safetensors"
    if single.is_file():
        return safetensors_params(single), "model.safetensors header"
    index = read_json(folder / "model.safetensors.index.json")
    if isinstance(index, dict) and isinstance(index.get("weight_map"), dict):
        shards = sorted(set(index["weight_map"].values()))
        if shards and all((folder / s).is_file() for s in shards):
            return sum(safetensors_params(folder / s) for s in shards), "safetensors shard headers"
    return None


def _input_shape(folder: Path, config: dict, processor: dict) -> tuple[list[int], str]:
    """(channels, height, width) the model sees: the processor's crop when it crops, else its resize target."""
    channels = int(config.get("num_channels") or 3)
    if processor.get("do_center_crop") and processor.get("crop_size"):
        side = _side(processor["crop_size"])
        if side:
            return [channels, *side], f"{CONFIG} num_channels, {PROCESSOR_CONFIG} crop_size"
    side = _side(processor.get("size"))
    if side:
        return [channels, *side], f"{CONFIG} num_channels, {PROCESSOR_CONFIG} size"
    size = config.get("image_size")
    if isinstance(size, int) or (isinstance(size, list) and len(size) == 2):
        return [channels, *_side(size)], f"{CONFIG} num_channels, image_size"
    return None, ""  # neither the processor nor the config says: the card must (ModelCard asks for input_shape)


def _side(size) -> tuple[int, int] | None:
    """(height, width) of an image processor's size: {"height", "width"}, {"shortest_edge"} (a square of it, which
    is what a square image becomes), an int or a [height, width] pair."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, list) and len(size) == 2:
        return int(size[0]), int(size[1])
    if isinstance(size, dict):
        if size.get("height") and size.get("width"):
            return int(size["height"]), int(size["width"])
        if size.get("shortest_edge"):
            return int(size["shortest_edge"]), int(size["shortest_edge"])
    return None
