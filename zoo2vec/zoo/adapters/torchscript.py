"""TorchScript archives, and pickled torch modules (refused unless the caller trusts them).

    {"kind": "torchscript" | "pickle", "file": "model.pt", "mean"?, "std"?, "outputs"?}

A `pickle` entry whose file is in fact a TorchScript archive is loaded as TorchScript (no code runs).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from zoo2vec.errors import UntrustedCheckpointError, ZooError
from zoo2vec.zoo.adapters import ModelSource, register
from zoo2vec.zoo.adapters.safetensors import torch_model
from zoo2vec.zoo.blackbox import TorchModel


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


@register("torchscript")
def load_torchscript(source: ModelSource) -> TorchModel:
    import torch

    path = source.file()
    if not is_torchscript(path):
        raise ZooError(f"model {source.card.name!r}: {path.name} is not a TorchScript archive")
    return torch_model(torch.jit.load(str(path), map_location="cpu"), source)


@register("pickle")
def load_pickle(source: ModelSource) -> TorchModel:
    import torch

    path = source.file()
    if is_torchscript(path):
        return torch_model(torch.jit.load(str(path), map_location="cpu"), source)
    if not source.trust_pickle:
        raise UntrustedCheckpointError(
            f"model {source.card.name!r}: {path.name} is a pickled checkpoint, which can run arbitrary code when "
            "loaded. Convert it to safetensors, or pass trust_pickle=True (CLI: --trust-pickle) if you trust its source."
        )
    return torch_model(torch.load(str(path), map_location="cpu", weights_only=False), source)
