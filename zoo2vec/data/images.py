"""Image arrays in zoo2vec's one layout: float32 (C, H, W) in [0, 1]; resizing and channel changes."""

from __future__ import annotations

import math

import numpy as np

from zoo2vec.errors import TaskError


def as_chw(image, where: str = "image", check_size=None) -> np.ndarray:
    """Bring one image (H, W), (H, W, C) or (C, H, W), any numeric range, to float32 (C, H, W) in [0, 1].

    `check_size(height, width, where)`, if given, may refuse the image (by raising) before it is converted."""
    x = _channels_first(_numeric_array(image, where), where)
    if check_size is not None:
        check_size(x.shape[1], x.shape[2], where)
    if min(x.shape[1:]) < 2:
        raise TaskError(f"{where} has shape {x.shape}: too small to resize (at least 2x2 pixels)")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise TaskError(f"{where} holds NaN or infinite pixel values")
    if image_is_8bit(x):
        x = x / 255.0
    return np.clip(x, 0.0, 1.0)


def _numeric_array(image, where: str) -> np.ndarray:
    try:
        x = np.asarray(image)
    except Exception as exc:  # arbitrary user objects
        raise TaskError(f"{where} cannot be read as an array: {exc}") from None
    if x.dtype.kind not in "biuf":
        raise TaskError(f"{where} has non-numeric dtype {x.dtype}; give pixel values")
    return x


def _channels_first(x: np.ndarray, where: str) -> np.ndarray:
    """(C, H, W) with 1 or 3 channels; an alpha channel is dropped."""
    if x.ndim == 2:
        return x[None]
    # a (3, H, 3) array reads as channels-last: the trailing axis wins a tie
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3, 4):
        return x
    if x.ndim == 3 and x.shape[-1] in (1, 3, 4):
        return np.moveaxis(x[..., :3] if x.shape[-1] == 4 else x, -1, 0)
    raise TaskError(
        f"{where} has shape {x.shape}, which is not an image: "
        "expected (H, W), (H, W, C) or (C, H, W) with 1 or 3 channels"
    )


def image_is_8bit(x: np.ndarray) -> bool:
    return float(x.max(initial=0.0)) > 1.0


def resize(images, shape) -> np.ndarray:
    """Resize a list of (C, H, W) images to `shape` (C, H, W), converting channels; returns (N, C, H, W)."""
    from PIL import Image

    c, h, w = shape
    out = np.empty((len(images), c, h, w), dtype=np.float32)
    for i, img in enumerate(images):
        if img.shape[0] != c:
            img = img.mean(axis=0, keepdims=True) if c == 1 else np.repeat(img.mean(axis=0, keepdims=True), c, axis=0)
        if img.shape[1:] != (h, w):
            img = np.stack([
                np.asarray(Image.fromarray(ch).resize((w, h), Image.Resampling.BILINEAR)) for ch in img
            ])
        out[i] = img
    return out


def square_shape(features: int | None) -> tuple[int, int, int] | None:
    """The image a flat input of `features` values holds: 784 -> (1, 28, 28), 3072 -> (3, 32, 32); None for a count
    that is no square (or three squares)."""
    if not features:
        return None
    for channels in (1, 3):
        side = math.isqrt(features // channels)
        if features % channels == 0 and side * side * channels == features:
            return channels, side, side
    return None


def laid_out(batch, *, scale: float = 1.0, mean=None, std=None, layout: str = "NCHW",
             flat_order: str = "CHW") -> np.ndarray:
    """A batch of zoo2vec's (N, C, H, W) [0, 1] images as a foreign model takes them: times `scale`, then
    (x - mean) / std (per-channel arrays shaped to broadcast, or None), in `layout`: NCHW, NHWC, NHW (one channel
    dropped) or flat (each image one row, its values in `flat_order`, CHW or HWC)."""
    x = np.asarray(batch, dtype=np.float32) * np.float32(scale)
    if mean is not None:
        x = x - mean
    if std is not None:
        x = x / std
    if layout == "NHWC" or (layout == "flat" and flat_order == "HWC"):
        x = x.transpose(0, 2, 3, 1)
    elif layout == "NHW":
        x = x[:, 0]
    return x.reshape(len(x), -1) if layout == "flat" else x
