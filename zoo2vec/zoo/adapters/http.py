"""A remote model behind an Open Inference Protocol v2 endpoint (KServe, Triton, MLServer); see zoo.remote.

    {"kind": "http", "url": "http://host:8080", "model"?: "name on the server", "timeout_s"?: 30}
"""

from __future__ import annotations

from zoo2vec.errors import ZooError
from zoo2vec.zoo.adapters import ModelSource, register
from zoo2vec.zoo.remote import RemoteModel


@register("http")
def load(source: ModelSource) -> RemoteModel:
    spec = source.spec
    if "url" not in spec:
        raise ZooError(f"model {source.card.name!r}: http adapter needs a 'url'")
    return RemoteModel(spec["url"], source.card, model=spec.get("model"), timeout_s=float(spec.get("timeout_s", 30)))
