"""A mixture-of-experts sentence encoder for words-to-model search.

After "Contrastive Learning and Mixture of Experts Enables Precise Vector Embeddings": the MiniLM backbone,
with the feed-forward block of its last layer(s) copied into one expert per domain (vision, language,
medical, general). A small router picks the expert from the hidden state at search time (the "general"
one when it is unsure); given domains enforce the routing. Before training every expert is the original
block, so the encoder starts exactly as MiniLM; train.moe learns experts and router (`zoo2vec train-text`).

This module builds the encoder, encodes, and loads a checkpoint: only what differs from MiniLM (experts and
router), under $ZOO2VEC_HOME/text/<config>/, with a JSON sidecar saying what trained it.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from zoo2vec import settings
from zoo2vec.errors import ConfigError

DOMAINS = ("vision", "language", "medical", "general")
GENERAL = DOMAINS.index("general")
CONFIGS = {
    "moe-minilm-v1": {"expert_layers": [4, 5], "steps": 200, "lr": 5e-5, "router_lr": 3e-3, "scale": 20.0, "general_share": 0.25,
                      "router_threshold": 0.6, "max_length": 64, "seed": 0},
}
DEFAULT = "moe-minilm-v1"


class _Route:
    """What one forward pass routes by: given domain ids (training), or the router's choice, made at the first expert layer."""

    ids = None  # (batch,) long tensor, or None: the router decides
    mask = None  # (batch, seq, 1) attention mask, for pooling the router's input
    logits = None  # the router's logits of the last pass
    router = None
    threshold = 0.0


class _Experts:
    """Replaces one BERT layer's feed-forward block by per-domain copies; rows go to their domain's copy."""

    def __init__(self, layer, route: _Route, first: bool):
        import torch

        self.route, self.first = route, first
        self.experts = torch.nn.ModuleList(
            torch.nn.ModuleList([copy.deepcopy(layer.intermediate), copy.deepcopy(layer.output)]) for _ in DOMAINS)

    def __call__(self, hidden):
        import torch

        route = self.route
        if self.first:  # the router reads the first expert layer's input, pooled over the real tokens
            route.logits = route.router((hidden * route.mask).sum(1) / route.mask.sum(1).clamp(min=1e-9))
            if route.ids is None:
                best, ids = route.logits.softmax(-1).max(-1)
                route.ids = torch.where(best < route.threshold, GENERAL, ids)
        out = torch.empty_like(hidden)
        for d in route.ids.unique().tolist():
            rows = route.ids == d
            intermediate, output = self.experts[d]
            out[rows] = output(intermediate(hidden[rows]), hidden[rows])
        return out


class MoEEncoder:
    """MiniLM with domain experts; encode(texts, domains=None) -> unit-norm embeddings."""

    def __init__(self, config_name: str = DEFAULT):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from zoo2vec.zoo.sentence import MINILM, encoder_path, quiet_loading

        if config_name not in CONFIGS:
            raise ConfigError(f"unknown text encoder config {config_name!r}. Available: {', '.join(CONFIGS)}")
        self.config_name, self.cfg = config_name, CONFIGS[config_name]
        path = encoder_path(MINILM)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        with quiet_loading():
            self.model = AutoModel.from_pretrained(str(path)).eval()
        self.route = _Route()
        # the general expert is the fallback, never a routing target
        self.route.router = torch.nn.Linear(self.model.config.hidden_size, len(DOMAINS) - 1)
        self.route.threshold = self.cfg["router_threshold"]
        self.layers = []
        for n, i in enumerate(self.cfg["expert_layers"]):
            layer = self.model.encoder.layer[i]
            experts = _Experts(layer, self.route, first=n == 0)
            object.__setattr__(layer, "feed_forward_chunk", experts)  # the instance's block, ahead of the class method
            layer.moe_experts = experts.experts  # registered, so .parameters() and state_dict() see them
            del layer.intermediate, layer.output
            self.layers.append(layer)

    def state(self) -> dict:
        state = {f"router.{k}": v for k, v in self.route.router.state_dict().items()}
        for i, layer in zip(self.cfg["expert_layers"], self.layers):
            state.update({f"layer{i}.{k}": v for k, v in layer.moe_experts.state_dict().items()})
        return state

    def load_state(self, state: dict):
        self.route.router.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("router.")})
        for i, layer in zip(self.cfg["expert_layers"], self.layers):
            prefix = f"layer{i}."
            layer.moe_experts.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def forward(self, texts, domains):
        """Mean-pooled unit embeddings (with gradients outside inference mode: the trainer's pass), the domain ids
        used and the router's logits; `domains` (a tensor of domain ids) enforce the routing, None lets the router route."""
        import torch.nn.functional as F

        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.cfg["max_length"],
                                return_tensors="pt")
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        self.route.ids, self.route.mask = domains, mask
        hidden = self.model(**tokens).last_hidden_state
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1), self.route.ids, self.route.logits

    def encode(self, texts, domains=None, *, batch_size: int = 64) -> np.ndarray:
        """Unit-norm embeddings; `domains` (names, one per text) enforce the routing, else the router routes."""
        return self.encode_routed(texts, domains, batch_size=batch_size)[0]

    def encode_routed(self, texts, domains=None, *, batch_size: int = 64) -> tuple[np.ndarray, list[str]]:
        """Embeddings and the domain each text went to."""
        import torch

        texts = [str(t) for t in texts]
        if domains is not None:
            unknown = sorted(set(domains) - set(DOMAINS))
            if unknown:
                raise ConfigError(f"unknown domains {unknown}: use {', '.join(DOMAINS)}")
        out, went = [np.zeros((0, self.model.config.hidden_size), dtype=np.float32)], []
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                ids = None if domains is None else torch.tensor([DOMAINS.index(d) for d in domains[s : s + batch_size]])
                emb, used, _ = self.forward(texts[s : s + batch_size], ids)
                out.append(emb.numpy())
                went += [DOMAINS[i] for i in used.tolist()]
        return np.concatenate(out).astype(np.float32), went


def checkpoint_dir(config_name: str = DEFAULT) -> Path:
    return settings.home() / "text" / config_name



@lru_cache(maxsize=2)
def load(path: str | None = None) -> MoEEncoder:
    """The trained encoder from a checkpoint folder (default: the data home's default config)."""
    from safetensors.torch import load_file

    folder = Path(path) if path else checkpoint_dir()
    if not (folder / "experts.safetensors").is_file():
        raise ConfigError(f"no trained text encoder in {folder}: run `zoo2vec train-text` first")
    sidecar = json.loads((folder / "model.json").read_text())
    enc = MoEEncoder(sidecar["config"])
    enc.load_state(load_file(str(folder / "experts.safetensors")))
    return enc
