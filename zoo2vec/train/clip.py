"""Training zoo2vec's own small CLIP (`zoo2vec train-clip`) on image-caption pairs it is given.

A symmetric contrastive loss in which every identical caption of a batch counts as a positive (captions
repeat: one per class and template), AdamW with a one-cycle schedule; the weights go to the config's
checkpoint folder (encoders.clip.checkpoint_dir), where the serving side loads them, with a JSON sidecar.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np

from zoo2vec.encoders import clip
from zoo2vec.errors import ConfigError, require


def train(config_name: str, images: np.ndarray, captions: list[str], *, trained_on: dict | None = None,
          zero_shot: Callable[[str], dict] | None = None, rng: np.random.Generator | None = None,
          progress: Callable[[str], None] | None = None) -> dict:
    """Train the named CLIP config on `images` (N, 3, 32, 32), as encoders.clip.pixels gives them, and their
    `captions`; returns the sidecar written beside the weights.

    trained_on: provenance written into the sidecar (e.g. {"datasets": [...]}); zero_shot: a check run on the
    saved weights (given the config name), recorded as "zero_shot"; rng: orders the batches (default: seeded by
    the config's seed; pass the generator that drew the pairs to continue its stream)."""
    import torch
    import torch.nn.functional as F

    require("open_clip", "clip")
    from open_clip import tokenize

    cfg = clip.CONFIGS.get(config_name)
    if cfg is None:
        raise ConfigError(f"unknown CLIP config {config_name!r}. Available: {', '.join(clip.CONFIGS)}")
    if len(images) != len(captions) or not len(captions):
        raise ConfigError(f"CLIP training needs one caption per image, got {len(images)} images and "
                          f"{len(captions)} captions")
    started = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"]) if rng is None else rng
    tokens = tokenize(captions, context_length=cfg["model"]["text_cfg"]["context_length"])
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    model = clip.build(config_name)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.1)
    steps = cfg["epochs"] * -(-len(x) // cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps, pct_start=0.1)
    model.train()
    for epoch in range(cfg["epochs"]):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), cfg["batch_size"]):
            batch = order[start : start + cfg["batch_size"]]
            img, txt, scale = model(x[batch], tokens[batch])[:3]
            logits = scale * img @ txt.T
            # captions repeat (one per class and template): treat every identical caption in the batch as a positive
            same = (tokens[batch][:, None, :] == tokens[batch][None, :, :]).all(-1).float()
            target = same / same.sum(1, keepdim=True)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
        if progress:
            progress(f"epoch {epoch + 1}/{cfg['epochs']}: contrastive loss {total / len(x):.3f}")
    model.eval()
    out = clip.checkpoint_dir(config_name)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.tmp.pt"
    torch.save(model.state_dict(), tmp)
    tmp.replace(out / "model.pt")
    clip.forget()
    sidecar = {"config": config_name, "model": cfg["model"], **(trained_on or {}), "pairs": len(captions),
               "epochs": cfg["epochs"], "seconds": round(time.perf_counter() - started, 1)}
    if zero_shot is not None:
        sidecar["zero_shot"] = zero_shot(config_name)
    (out / "model.json").write_text(json.dumps(sidecar, indent=1))
    return sidecar
