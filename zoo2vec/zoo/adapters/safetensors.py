"""safetensors weights of one of zoo2vec's architectures (`zoo2vec.zoo.architectures`).

    {"kind": "safetensors", "file": "model.safetensors", "arch": "cnn", "config": {...},
     "mean"?: [...], "std"?: [...], "outputs"?: "logits" | "probabilities"}

`save_model` writes such a folder (or a `sentence-transformers` one for the "head" architecture).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from zoo2vec.errors import ZooError
from zoo2vec.zoo import architectures
from zoo2vec.zoo.adapters import ModelSource, inside, register
from zoo2vec.zoo.blackbox import TorchModel
from zoo2vec.zoo.card import ModelCard
from zoo2vec.zoo.hub_files import safetensors_params


def torch_model(module, source: ModelSource) -> TorchModel:
    """A torch module as a black box, with the adapter entry's normalisation and output kind."""
    spec = source.spec
    return TorchModel(module, source.card, mean=spec.get("mean"), std=spec.get("std"),
                      outputs=spec.get("outputs", "logits"))


def count_params(folder: Path, adapter: dict) -> tuple[int, str] | None:
    """The tensors' sizes in the weight file's JSON header: what the model holds, without building it."""
    path = inside(folder, adapter.get("file") or "")
    if path is None or not path.is_file() or path.suffix != ".safetensors":
        return None
    return safetensors_params(path), f"{path.name} header"


@register("safetensors", params=count_params)
def load(source: ModelSource) -> TorchModel:
    from safetensors.torch import load_file

    path = source.file(suffix=".safetensors")
    arch = source.spec.get("arch", "")
    module = architectures.build(arch, source.spec.get("config", {}))
    try:
        module.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError) as exc:
        raise ZooError(f"model {source.card.name!r}: weights do not fit architecture {arch!r}: {exc}") from None
    return torch_model(module, source)


def save_model(folder: Path, module, card: ModelCard, *, arch: str, config: dict, mean=None, std=None) -> Path:
    """Write a safetensors model folder; the card's adapter entry is filled in here."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    if arch == "head":
        save_file(state, str(folder / "head.safetensors"))
        config = dict(config)
        adapter = {"kind": "sentence-transformers", "encoder": config.pop("encoder"), "head": "head.safetensors",
                   "config": config}
    else:
        save_file(state, str(folder / "model.safetensors"))
        adapter = {"kind": "safetensors", "file": "model.safetensors", "arch": arch, "config": config}
        if mean is not None:
            adapter.update(mean=list(mean), std=list(std))
    replace(card, adapter=adapter).save(folder)
    return folder
