"""A remote model behind an Open Inference Protocol v2 endpoint (KServe, Triton, MLServer); see zoo.remote.

    {"kind": "http", "url": "http://host:8080", "model"?: "name on the server", "timeout_s"?: 30}

timeout_s bounds each request whole (connect, send, every byte received), not each socket read.
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
    timeout = spec.get("timeout_s", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ZooError(f"model {source.card.name!r}: http adapter's timeout_s must be a positive number of seconds "
                       f"(the whole request's), got {timeout!r}")
    if not isinstance(spec["url"], str):
        raise ZooError(f"model {source.card.name!r}: http adapter's url must be a string, got {spec['url']!r}")
    return RemoteModel(spec["url"], source.card, model=spec.get("model"), timeout_s=float(timeout))
