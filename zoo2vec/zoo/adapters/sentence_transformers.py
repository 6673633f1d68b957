"""A sentence encoder (by name or local folder) with a safetensors classification head over its embeddings.

    {"kind": "sentence-transformers", "encoder": "all-MiniLM-L6-v2", "head": "head.safetensors", "config": {...}}
"""

from __future__ import annotations

from zoo2vec.zoo import architectures
from zoo2vec.zoo.adapters import ModelSource, register
from zoo2vec.zoo.sentence import MINILM, SentenceHeadModel, sentence_encoder


@register("sentence-transformers")
def load(source: ModelSource) -> SentenceHeadModel:
    from safetensors.torch import load_file

    head = architectures.build("head", source.spec.get("config", {}))
    head.load_state_dict(load_file(str(source.file("head"))))
    return SentenceHeadModel(sentence_encoder(source.spec.get("encoder", MINILM)), head, source.card)
