"""timm image classifiers in timm's own Hugging Face folder format, and torchvision state dicts (the `timm` extra;
torchvision comes with it).

    {"kind": "timm", "file": "model.safetensors" | "pytorch_model.bin", "mean"?: [...], "std"?: [...]}
    {"kind": "torchvision", "arch": "resnet18", "file": "model.pth", "num_classes"?: 1000, "model_args"?: {...},
     "mean"?: [...], "std"?: [...]}

A timm folder is what `timm.models.save_for_hf(model, folder)` (and `push_to_hf_hub`) writes: config.json with the
architecture, num_classes, the arguments that rebuild the model (model_args), label_names and pretrained_cfg (input
size, mean, std), beside its weights. Without a card.json it says the card: input shape, labels (label_descriptions
when they name every class, else label_names; ImageNet's class list for a model of ImageNet's class count), params,
and license, tags and datasets from README.md's front matter.

torchvision has no metadata format of its own, so its card.json names the architecture (any name
`torchvision.models.get_model` knows) and the state dict (.pth/.pt/.bin read with torch.load(weights_only=True), or
.safetensors); the rest defaults to a 3x224x224 input with ImageNet's mean and std. A pickled module is refused here:
that is the `pickle` kind's job, which asks the caller to trust it. Both kinds give zoo2vec's [0, 1] images,
normalised with the mean and std, to the module and soft-max its logits.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from zoo2vec.errors import SkippedModel, ZooError, require
from zoo2vec.zoo.adapters import Inferred, ModelSource, inside, register, written_adapter
from zoo2vec.zoo.blackbox import TorchModel
from zoo2vec.zoo.hub_files import read_json, safetensors_params
from zoo2vec.zoo.layout import card_path

CONFIG = "config.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # what save_for_hf writes, the safe one first
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_INPUT = (3, 224, 224)
_WRAPPERS = ("state_dict", "model_state_dict", "model")  # training checkpoints keep the weights under one of these


def detect_timm(folder: Path) -> Inferred | None:
    """A timm folder's card: config.json says the architecture, input shape and labels, the safetensors header the
    parameter count, README.md's front matter license, tags and datasets; None without a timm config.json and
    weights."""
    folder = Path(folder)
    config = read_json(folder / CONFIG)
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        return None  # none, or another library's config.json (transformers writes "architectures", plural)
    weights = next((name for name in WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        return None
    arch = config["architecture"]
    pretrained = _pretrained_cfg(config)
    if config.get("num_classes", pretrained.get("num_classes")) == 0:
        raise SkippedModel(f"{CONFIG} says num_classes 0: a {arch} backbone without a classifier; zoo2vec indexes "
                           "classifiers")
    fields: dict[str, Any] = {"modality": "image", "adapter": {"kind": "timm", "file": weights},
                              "tags": [arch], "input_shape": list(_timm_input_shape(config, pretrained))}
    origin = {"modality": f"{CONFIG} architecture ({arch}, a timm image model)", "adapter": f"{CONFIG}, {weights}",
              "tags": f"{CONFIG} architecture", "input_shape": f"{CONFIG} pretrained_cfg.input_size, model_args"}
    labels, label_origin = _timm_labels(config, pretrained)
    if labels:
        fields["label_names"], origin["label_names"] = labels, label_origin
    fields["params"], origin["params"] = _params(folder / weights), f"{weights} tensors"
    if isinstance(pretrained.get("license"), str):
        fields["license"], origin["license"] = pretrained["license"], f"{CONFIG} pretrained_cfg.license"
    return Inferred(fields, origin)


@register("timm", detect=detect_timm, priority=45,
          expects="config.json with 'architecture' + model.safetensors/pytorch_model.bin (timm's save_for_hf)")
def load_timm(source: ModelSource) -> TorchModel:
    timm = require("timm", "timm")
    card, folder = source.card, source.folder
    config = read_json(folder / CONFIG)
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise ZooError(f"model {card.name!r}: a timm model needs the {CONFIG} timm writes beside its weights "
                       "(timm.models.save_for_hf), naming its architecture")
    arch = config["architecture"]
    pretrained = _pretrained_cfg(config)
    if config.get("num_classes", pretrained.get("num_classes")) == 0:
        raise SkippedModel(f"{CONFIG} says num_classes 0: a {arch} backbone without a classifier; zoo2vec indexes "
                           "classifiers")
    args = dict(config.get("model_args") or {})
    args["num_classes"] = int(config.get("num_classes") or pretrained.get("num_classes") or 1000)
    args.setdefault("in_chans", _timm_input_shape(config, pretrained)[0])
    try:
        module = timm.create_model(arch, pretrained=False, **args)
    except (RuntimeError, TypeError, ValueError) as exc:  # an unknown architecture (timm too old), a bad argument
        raise ZooError(f"model {card.name!r}: timm {timm.__version__} cannot build {arch!r} with {args}: {exc}") from None
    _load_weights(module, _state_dict(source.file(), card.name), card.name, f"timm {arch!r}")
    channels = card.input_shape[0] if card.input_shape else args["in_chans"]
    mean = source.spec.get("mean", pretrained.get("mean"))
    std = source.spec.get("std", pretrained.get("std"))
    return TorchModel(module, card, mean=_per_channel(mean, channels), std=_per_channel(std, channels))


def detect_torchvision(folder: Path) -> Inferred | None:
    """Fields of a folder whose card.json names the torchvision kind (a state dict says nothing else about itself):
    an image model, parameters counted in the state dict, a 3x224x224 input unless the card says otherwise."""
    folder = Path(folder)
    written = written_adapter(folder)
    if written.get("kind") != "torchvision":
        return None  # a bare state dict is no format one can recognise: only a card.json says what it is
    fields: dict[str, Any] = {"modality": "image", "input_shape": list(TORCHVISION_INPUT)}
    origin = {"modality": "torchvision (image classifiers)", "input_shape": "torchvision default (3, 224, 224)"}
    if isinstance(written.get("arch"), str):
        fields["tags"], origin["tags"] = [written["arch"]], f"{card_path(folder).name} adapter.arch"
    path = _state_dict_file(folder, written)
    if path is not None:
        fields["adapter"], origin["adapter"] = {"kind": "torchvision", "file": path.name}, f"{path.name}"
        params = _params(path)
        if params is not None:
            fields["params"], origin["params"] = params, f"{path.name} tensors"
    return Inferred(fields, origin)


@register("torchvision", detect=detect_torchvision,
          expects="a card.json naming kind 'torchvision', 'arch' and the state dict 'file'")
def load_torchvision(source: ModelSource) -> TorchModel:
    models = require("torchvision.models", "timm")
    card, spec = source.card, source.spec
    arch = spec.get("arch")
    known = models.list_models(module=models)
    if arch not in known:
        raise ZooError(f"model {card.name!r}: adapter 'torchvision' needs 'arch', one of torchvision's classifiers; "
                       f"got {arch!r}. Available: {', '.join(known)}")
    n_classes = int(spec.get("num_classes") or (len(card.label_names) if card.label_names else 1000))
    try:
        module = models.get_model(arch, weights=None, num_classes=n_classes, **dict(spec.get("model_args") or {}))
    except (TypeError, ValueError) as exc:
        raise ZooError(f"model {card.name!r}: torchvision cannot build {arch!r}: {exc}") from None
    _load_weights(module, _state_dict(source.file(), card.name), card.name, f"torchvision {arch!r} "
                  f"with {n_classes} classes")
    channels = card.input_shape[0] if card.input_shape else TORCHVISION_INPUT[0]
    imagenet = channels == len(IMAGENET_MEAN)
    mean = spec.get("mean", IMAGENET_MEAN if imagenet else None)
    std = spec.get("std", IMAGENET_STD if imagenet else None)
    return TorchModel(module, card, mean=_per_channel(mean, channels), std=_per_channel(std, channels))


def _state_dict(path: Path, model: str) -> dict:
    """The tensors of a state-dict file, read without running code; a training checkpoint's are unwrapped and a
    DataParallel 'module.' prefix dropped."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ZooError(
            f"model {model!r}: {path.name} is not a plain state dict but a pickle holding Python objects (e.g. a "
            "whole torch module), which can run arbitrary code when loaded. Use adapter kind 'pickle' and pass "
            "trust_pickle=True (CLI: --trust-pickle) if you trust its source, or save model.state_dict() instead."
        ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise ZooError(f"model {model!r}: {path.name} is not a readable torch file: {exc}") from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict) and not _tensors_only(state):
            state = state[key]
    if not isinstance(state, dict) or not _tensors_only(state):
        raise ZooError(f"model {model!r}: {path.name} holds a {type(state).__name__}, not a state dict of tensors "
                       f"(saved with torch.save(model.state_dict(), ...))")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_weights(module, state: dict, model: str, what: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:  # torch lists every missing key: a big model's would fill a screen
        reason = " ".join(str(exc).split())
        reason = reason if len(reason) <= 600 else reason[:600] + " ..."
        raise ZooError(f"model {model!r}: the weights do not fit {what}: {reason}") from None


def _tensors_only(state: dict) -> bool:
    import torch

    return bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


def _params(path: Path) -> int | None:
    """Number of values the weights file holds (buffers included, as in the safetensors header count)."""
    if path.suffix == ".safetensors":
        return safetensors_params(path)
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - a pickled module or a damaged file: the loader says which, and the fix
        return None
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        return None
    return sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))


def _pretrained_cfg(config: dict) -> dict:
    """pretrained_cfg, or the whole config in timm's older single-dict layout."""
    cfg = config.get("pretrained_cfg")
    return cfg if isinstance(cfg, dict) else config


def _timm_input_shape(config: dict, pretrained: dict) -> tuple[int, int, int]:
    """(channels, height, width): pretrained_cfg.input_size, with the channels and image size the model was built
    with (model_args) over it, as timm reads a saved config."""
    c, h, w = (int(x) for x in pretrained.get("input_size") or (3, 224, 224))
    args = config.get("model_args") or {}
    if args.get("in_chans"):
        c = int(args["in_chans"])
    size = args.get("img_size")
    if isinstance(size, int):
        h = w = size
    elif isinstance(size, list | tuple) and len(size) == 2:
        h, w = int(size[0]), int(size[1])
    return c, h, w


def _timm_labels(config: dict, pretrained: dict) -> tuple[list[str] | None, str]:
    """Class names in output order: label_descriptions when they describe every label (ImageNet synsets read
    "tench, Tinca tinca"), else label_names; for a model without them, ImageNet's classes when num_classes is the
    size of one of ImageNet's class lists (timm's own guess)."""
    n = config.get("num_classes", pretrained.get("num_classes"))
    names = _indexed(config.get("label_names", pretrained.get("label_names")))
    if names and (n is None or len(names) == int(n)):
        descriptions = config.get("label_descriptions", pretrained.get("label_descriptions"))
        if isinstance(descriptions, dict) and all(name in descriptions for name in names):
            return [str(descriptions[name]) for name in names], f"{CONFIG} label_names, label_descriptions"
        return names, f"{CONFIG} label_names"
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset
    except ImportError:
        return None, ""
    subset = infer_imagenet_subset({"num_classes": n})
    if subset is None:
        return None, ""
    labels = ImageNetInfo(subset).label_descriptions()
    return list(labels), f"timm's {subset} class list (guessed from {CONFIG} num_classes={n})"


def _indexed(names) -> list[str] | None:
    """label_names as a list in index order (timm allows a list, or a dict id -> name when ids have gaps)."""
    if isinstance(names, list | tuple) and names:
        return [str(x) for x in names]
    if isinstance(names, dict) and names:
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            return None
        return [by_index[i] for i in range(len(by_index))] if sorted(by_index) == list(range(len(by_index))) else None
    return None


def _per_channel(value, channels: int) -> list[float] | None:
    """A mean or std for `channels`; three values for a one-channel model become their mean (as timm does)."""
    if value is None:
        return None
    values = [float(x) for x in (value if isinstance(value, list | tuple) else [value])]
    if len(values) == channels:
        return values
    return [sum(values) / len(values)] * channels


def _state_dict_file(folder: Path, written: dict) -> Path | None:
    if isinstance(written.get("file"), str):
        path = inside(folder, written["file"])
        return path if path is not None and path.is_file() else None
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in STATE_DICT_SUFFIXES]
    return found[0] if len(found) == 1 else None



