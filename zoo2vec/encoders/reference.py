"""Reference encoders: one fixed embedding space per modality in which probe inputs, query samples
and model concepts are compared. Vectors record the encoder's name and version.

pixels-v1   images resized to 16x16 grey, each standardised (zero mean, unit norm): cosine is the
            pixel correlation. A stand-in until the CLIP image tower arrives (see the method issue).
minilm-v1   all-MiniLM-L6-v2 sentence embeddings, normalised.
minilm-int8-v1
            the same MiniLM with int8 weights (zoo.fast_sentence): its space up to rounding, about 2x faster.
minilm-static-v1
            a static encoder distilled from the same MiniLM (zoo.fast_sentence): the mean of its tokens' distilled
            vectors, normalised; a 100-sample text task embeds in milliseconds instead of a second. Words (label names,
            text queries) are embedded in it too when a probe set names it.
minilm-student-v1
            a static encoder fitted so that the mean of its token vectors is MiniLM's sentence vector, on the
            meta-training datasets' texts (zoo.fast_sentence.student_encoder): as fast as minilm-static-v1, in
            MiniLM's 384 dimensions and much nearer its geometry.
clip-v1     the CLIP image tower (encoders.clip): local pretrained open_clip weights named by $ZOO2VEC_CLIP,
            else zoo2vec's self-trained small CLIP. Its identity names the weights, so new weights mean
            re-encoding (from cached probe outputs, no new forward passes).
hog-v1      training-free image features (encoders.image_features): HOG (hog-v1), or pixels-v1 and HOG side by
            side (pixels-hog-v1, the bench zoo's, chosen by cross-validation). Built in code, no weights file and
            no data, so the name is the identity. pixels-hog-colour-v1 adds where the colour is (image_features.colour),
            which the grey blocks cannot see.
"""

from __future__ import annotations

import numpy as np

from zoo2vec.errors import ConfigError

ENCODERS = {"minilm-v1": "text", "minilm-int8-v1": "text", "minilm-static-v1": "text", "minilm-student-v1": "text",
            "clip-v1": "image"}
TEXT_REFERENCE = "minilm-v1"  # the sentence space: text queries, card text and label names are embedded in it too
# training-free image encoders: name -> the image_features blocks concatenated (each block unit norm)
IMAGE_FEATURES = {"pixels-v1": ("pixels",), "hog-v1": ("hog",), "pixels-hog-v1": ("pixels", "hog"),
                  "pixels-hog-colour-v1": ("pixels", "hog", "colour")}
ENCODERS.update(dict.fromkeys(IMAGE_FEATURES, "image"))


def identity(name: str) -> str:
    """What exactly a reference encoder is: its name, and for CLIP which weights (path and file hash)."""
    if name != "clip-v1":
        return name
    from zoo2vec.encoders import clip

    return f"{name}:{clip.identity()}"


def embed(name: str, samples) -> np.ndarray:
    """Embed images ((C, H, W) arrays) or texts with the named reference encoder; rows are unit norm."""
    if name == "minilm-v1":
        from zoo2vec.zoo.sentence import reference_encoder

        return _unit(reference_encoder().encode(list(samples), memo=False))
    if name == "minilm-int8-v1":
        from zoo2vec.zoo.fast_sentence import int8_encoder

        return _unit(int8_encoder().encode(list(samples), memo=False))
    if name == "minilm-static-v1":
        from zoo2vec.zoo.fast_sentence import static_encoder

        return _unit(static_encoder().encode(list(samples), memo=False))
    if name == "minilm-student-v1":
        from zoo2vec.zoo.fast_sentence import student_encoder

        return _unit(student_encoder().encode(list(samples), memo=False))
    if name == "clip-v1":
        from zoo2vec.encoders import clip

        return clip.embed_images(list(samples))
    if name in IMAGE_FEATURES:
        from zoo2vec.encoders import image_features

        return image_features.combine(list(samples), IMAGE_FEATURES[name])
    raise ConfigError(f"unknown reference encoder {name!r}. Available: {', '.join(ENCODERS)}")


def embed_words(name: str, texts) -> np.ndarray | None:
    """Words embedded into the named reference encoder's space (MiniLM directly, CLIP through its text tower), so a
    sentence's classes can stand for samples there; None for an encoder words cannot reach (pixels)."""
    if name == "minilm-v1":
        return embed_text(texts, memo=True)
    if name in ("minilm-int8-v1", "minilm-static-v1", "minilm-student-v1"):
        return embed(name, texts)
    if name == "clip-v1":
        from zoo2vec.encoders import clip

        return clip.embed_texts(list(texts))
    return None


def embed_text(texts, *, memo: bool = False) -> np.ndarray:
    """Sentence embeddings for card text and text queries (MiniLM); memo=True for short strings that recur
    (label names), which are then embedded once per process."""
    from zoo2vec.zoo.sentence import reference_encoder

    return _unit(reference_encoder().encode(list(texts), memo=memo))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
