"""Training the mixture-of-experts text encoder (`zoo2vec train-text`) on (query, card, domain, group) pairs.

Each text is routed to its domain's expert (enforced routing; a share goes to the general expert) and the
experts learn by the multiple-negatives ranking loss, the other pairs of a batch being the negatives; the router
learns the same domains from the hidden state. Only experts and router are saved (encoders.moe loads them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoo2vec.encoders import moe
from zoo2vec.errors import ConfigError


def _parameter_groups(enc: moe.MoEEncoder, lr: float, router_lr: float) -> list[dict]:
    """The experts fine-tune from MiniLM's block, the router learns from scratch (faster)."""
    experts = [p for layer in enc.layers for p in layer.moe_experts.parameters()]
    return [{"params": experts, "lr": lr}, {"params": list(enc.route.router.parameters()), "lr": router_lr}]


def train(pairs: list[tuple[str, str, str, str]], config_name: str = moe.DEFAULT, *, out: Path | None = None,
          steps: int | None = None, trained_on: dict | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Learn the experts and the router from (query, positive, domain, group) pairs; returns the sidecar.
    steps overrides the config's number of training steps.

    A batch takes at most one pair per group (e.g. per dataset), so no in-batch negative is secretly a positive.
    """
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    groups: dict[str, list[int]] = {}
    for i, (*_, group) in enumerate(pairs):
        groups.setdefault(group, []).append(i)
    if len(groups) < 2:
        raise ConfigError("the text encoder needs pairs from at least two groups (in-batch negatives)")
    unknown = sorted({d for _, _, d, _ in pairs} - set(moe.DOMAINS[:moe.GENERAL]))
    if unknown:
        raise ConfigError(f"pairs name unknown domains {unknown}: use {', '.join(moe.DOMAINS[:moe.GENERAL])}")
    started = time.perf_counter()
    enc = moe.MoEEncoder(config_name)
    cfg = enc.cfg
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    opt = torch.optim.AdamW(_parameter_groups(enc, cfg["lr"], cfg["router_lr"]))
    enc.model.train()
    names = sorted(groups)
    running = []
    steps = cfg["steps"] if steps is None else steps
    for step in range(steps):
        batch = [pairs[groups[g][rng.integers(len(groups[g]))]] for g in names]
        domains = torch.tensor([moe.DOMAINS.index(d) for _, _, d, _ in batch])
        routed = torch.where(torch.from_numpy(rng.random(len(batch)) < cfg["general_share"]), moe.GENERAL, domains)
        q, _, q_logits = enc.forward([b[0] for b in batch], routed)
        p, _, p_logits = enc.forward([b[1] for b in batch], routed)
        mnrl = F.cross_entropy(cfg["scale"] * q @ p.T, torch.arange(len(batch)))
        router = (F.cross_entropy(q_logits, domains) + F.cross_entropy(p_logits, domains)) / 2
        loss = mnrl + router
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(mnrl.item())
        if progress and (step + 1) % 50 == 0:
            progress(f"step {step + 1}/{steps}: ranking loss {np.mean(running[-50:]):.3f}")
    enc.model.eval()
    out = Path(out) if out else moe.checkpoint_dir(config_name)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "experts.tmp.safetensors"
    save_file({k: v.contiguous() for k, v in enc.state().items()}, str(tmp))
    tmp.replace(out / "experts.safetensors")
    sidecar = {"config": config_name, "settings": {**cfg, "steps": steps}, "pairs": len(pairs), "groups": names,
               "seconds": round(time.perf_counter() - started, 1), "final_ranking_loss": float(np.mean(running[-50:])) if running else None,
               "trained_on": trained_on or {}}
    (out / "model.json").write_text(json.dumps(sidecar, indent=1))
    moe.load.cache_clear()  # a path loaded before now holds other weights
    return sidecar
