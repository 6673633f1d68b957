"""The learned alignment: one score per (task, model) from what Know2Vec measures between them.

Pair features (all from stored model knowledge and the encoded task; no model is run at query time):
  kernel_alignment  CKA of the model's and the task's decisions on the probe set (sketched)
  concept_match     mean similarity of each task class to a distinct model concept
  concept_min       the worst-matched task class
  coverage          share of task classes the model has a concept for
  surplus           log(model classes / task classes): a 10-class model asked a 2-class question
  confidence        the model's mean top probability on the probe set
  entropy           its mean normalised entropy there
  balance           how evenly it spreads its classes over the probe set (normalised entropy of concept mass)
  label_match       mean similarity of each task label name to a distinct model label name (sentence embeddings)
  has_labels        1 when the model names its labels (else label_match is 0 and says nothing)
  input_match       the task's images have the model's input channels (half) and size (half); 1 for text
  surrogate_leep    LEEP of the model's surrogate outputs on the task's samples against their labels (the model's stored
                    outputs on each sample's nearest probe inputs stand in for running it: know2vec.TaskKnowledge)
  surrogate_nce     NCE of the same surrogate outputs (how well the model's hard decisions there predict the labels)

A scorer is a linear layer on standardised features (hidden = 0, what leave-one-dataset-out CV chose;
a small MLP with hidden > 0 overfits the 45 meta-training tasks), trained by
`zoo2vec train-align` (train.alignment.fit) on meta-training tasks with a listwise loss (ListNet: the
measured accuracies' softmax against the scores') plus a contrastive one (the truly best model against
the rest). Its output is mapped to a predicted accuracy (TEMPERATURE * s + offset), so scores read as
accuracies. This module only computes features, loads checkpoints and scores.

The words scorer ("words-2", `zoo2vec train-words`) is the same kind of scorer for a sentence instead of
labelled samples: one score per (query, model) from WORD_FEATURES, trained on sentences made from the
meta-training tasks against the same ground truth. Its features group into the components a result's
shares report: the card, the concepts probing found (and the label names), the model's decisions (the
named classes, embedded where the words reach the probe space, become a pseudo-task whose decisions on
the probe set are compared with the model's by kernel alignment), and a prior (how the model behaves on
the probe set, how many classes it has).

"untrained" is the score of know2vec-0: the mean of kernel alignment and concept match. A trained scorer may
be blended with it (`blend` = w in the checkpoint, train.alignment.blended): both scores z-normalised over the
models scored together (a search's candidates), then (1 - w) * learned + w * untrained, mapped back onto the
learned scores' mean and spread so the result still reads as a predicted accuracy. A blended score depends on
the list it was computed in; its order within that list is what it is for.
Checkpoints are JSON, versioned, and record what trained them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from zoo2vec.errors import ConfigError

FEATURES = ("kernel_alignment", "concept_match", "concept_min", "coverage", "surplus", "confidence", "entropy", "balance",
            "label_match", "has_labels", "input_match", "surrogate_leep", "surrogate_nce")
GROUPS = {  # knowledge components, for the ablation
    "decision structure (kernel)": ("kernel_alignment",),
    "concept prototypes": ("concept_match", "concept_min", "coverage", "surplus"),
    "calibration": ("confidence", "entropy", "balance"),
    "label names": ("label_match", "has_labels"),
    "input contract": ("input_match",),
    "surrogate transferability": ("surrogate_leep", "surrogate_nce"),
}
WORD_FEATURES = ("card", "label_match", "has_labels", "concept_words", "concept_query", "is_text", "kernel_classes",
                 "kernel_phrases", "coverage", "surplus", "confidence", "entropy", "balance")
WORD_COMPONENTS = {"card": ("card",),
                   "concepts": ("label_match", "has_labels", "concept_words", "concept_query", "is_text"),
                   "decisions": ("kernel_classes", "kernel_phrases"),
                   "prior": ("coverage", "surplus", "confidence", "entropy", "balance")}
TEMPERATURE = 0.05  # accuracy gap that counts as one unit of score in the listwise target
# align-3: align-2's features (surrogate transferability included) fitted on the plain meta-training tasks, its score
# blended 1:3 with the untrained one: the design leave-one-domain-out cross-validation chose (bench/RESULTS.md)
# align-4: the same design refitted on bench-2 (traffic signs in meta-training, so colour inputs vary) with the image
# probe set CV chose there (image-v3-synth: grey and colour probes, pixels + HOG + colour; bench/IMAGE_SPACE.md)
DEFAULT = "align-4"
WORDS = "words-2"
UNTRAINED = "untrained"
UNTRAINED_FEATURES = ("kernel_alignment", "concept_match")  # what the untrained score is the mean of


def input_match(task_shape: tuple | None, model_shape: tuple | None) -> float:
    """1 when the task's samples have the model's input channels and size, 0.5 for one of the two, 0 for neither."""
    if task_shape is None or model_shape is None:
        return 1.0
    return ((task_shape[0] == model_shape[0]) + (tuple(task_shape[1:]) == tuple(model_shape[1:]))) / 2


def label_match(task_vectors: np.ndarray, label_vectors: np.ndarray | None) -> float:
    """Mean similarity of each task label name to a distinct model label name (0 when the model names none)."""
    from scipy.optimize import linear_sum_assignment

    if label_vectors is None or not len(label_vectors):
        return 0.0
    sims = task_vectors @ label_vectors.T
    rows, cols = linear_sum_assignment(-sims)
    return float(np.clip(sims[rows, cols], 0.0, None).sum() / len(task_vectors))


def surrogate_scores(surrogate: np.ndarray | None, labels: np.ndarray) -> dict[str, float]:
    """LEEP and NCE of a model's surrogate outputs on the task's samples (zeros when the index kept no outputs)."""
    from zoo2vec.encoders.transferability import leep, nce

    if surrogate is None:
        return {"surrogate_leep": 0.0, "surrogate_nce": 0.0}
    return {"surrogate_leep": leep(surrogate, labels), "surrogate_nce": nce(surrogate, labels)}


def surrogate_scores_side_by_side(knowledge, outputs: list[np.ndarray | None], labels: np.ndarray) -> list[dict[str, float]]:
    """surrogate_scores of many models' probe outputs at once (what computing each alone gives), for a
    know2vec.TaskKnowledge; a model whose outputs the index did not keep gets zeros."""
    from zoo2vec.encoders.transferability import leep_nce_side_by_side

    out = [surrogate_scores(None, labels) for _ in outputs]
    kept = [i for i, o in enumerate(outputs) if o is not None]
    if kept:
        theta = knowledge.surrogate_outputs_side_by_side([outputs[i] for i in kept])
        leeps, nces = leep_nce_side_by_side(theta, [outputs[i].shape[1] for i in kept], labels)
        for i, leep, nce in zip(kept, leeps.tolist(), nces.tolist()):
            out[i] = {"surrogate_leep": leep, "surrogate_nce": nce}
    return out


def pair_features(kernel_alignment: float, similarities: list[float], n_model_classes: int, n_task_classes: int,
                  confidence: float, entropy: float, mass: np.ndarray, *, label_match: float = 0.0,
                  has_labels: bool = False, input_match: float = 1.0,
                  surrogate: dict[str, float] | None = None) -> dict[str, float]:
    """Features of one (task, model) pair; `similarities` are the matched task-class similarities (0 when unmatched);
    `surrogate`: surrogate_scores()."""
    sims = np.clip(np.asarray(similarities, dtype=np.float64), 0.0, None)
    mass = np.clip(np.asarray(mass, dtype=np.float64), 1e-12, None)
    mass = mass / mass.sum()
    balance = float(-(mass * np.log(mass)).sum() / np.log(len(mass))) if len(mass) > 1 else 0.0
    return {
        "kernel_alignment": float(kernel_alignment),
        "concept_match": float(sims.mean()),
        "concept_min": float(sims.min()),
        "coverage": min(n_model_classes, n_task_classes) / n_task_classes,
        "surplus": float(np.log(n_model_classes / n_task_classes)),
        "confidence": float(confidence),
        "entropy": float(entropy),
        "balance": balance,
        "label_match": float(label_match),
        "has_labels": float(has_labels),
        "input_match": float(input_match),
        **(surrogate or surrogate_scores(None, np.zeros(0))),
    }


def classes_named(text: str) -> list[str]:
    """The classes a sentence lists after its last colon ("filter junk texts: spam, ham" -> [spam, ham]); [] if none."""
    import re

    head, colon, tail = text.rpartition(":")
    if not colon or not head.strip():
        return []
    items = [i.strip(" .") for i in re.split(r",|;|\bor\b|\band\b", tail)]
    items = [i for i in items if i and len(i.split()) <= 5]
    return items if len(items) >= 2 else []


def word_features(card: float, class_vectors: np.ndarray, query_vector: np.ndarray, n_model_classes: int,
                  confidence: float, entropy: float, mass: np.ndarray, *, label_vectors: np.ndarray | None,
                  text_prototypes: np.ndarray | None, kernels: tuple[float, float] = (0.0, 0.0)) -> dict[str, float]:
    """Features of one (sentence, model) pair. class_vectors: the classes the sentence names (or the sentence itself),
    embedded; text_prototypes: a text model's concept prototypes (same sentence space), None for other models;
    kernels: kernel alignment of the model's decisions on the probe set with those of the pseudo-tasks whose samples
    are the class names and the phrases "<purpose>: <class>" (0 where words cannot reach the model's probe space)."""
    calibration = pair_features(0.0, [0.0], n_model_classes, len(class_vectors), confidence, entropy, mass)
    words, query = 0.0, 0.0
    if text_prototypes is not None:
        words = label_match(class_vectors, text_prototypes)  # the named classes against what the model was found to know
        query = float(np.max(text_prototypes @ query_vector))
    return {"card": float(card), "label_match": label_match(class_vectors, label_vectors),
            "has_labels": float(label_vectors is not None), "concept_words": words, "concept_query": query,
            "is_text": float(text_prototypes is not None), "kernel_classes": float(kernels[0]),
            "kernel_phrases": float(kernels[1]),
            **{k: calibration[k] for k in ("coverage", "surplus", "confidence", "entropy", "balance")}}


def shares(scorer: Alignment, row: dict[str, float], components: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Each component's share of a linear scorer's score: |sum of its features' weighted standardised values|,
    normalised; a component the scorer has no feature of is left out."""
    if scorer.untrained or len(scorer.layers) != 1:
        return {}
    w = scorer.layers[0][0][:, 0]
    z = (scorer.matrix([row])[0] - scorer.mean) / scorer.scale
    parts = {name: abs(sum(w[scorer.features.index(f)] * z[scorer.features.index(f)] for f in names if f in scorer.features))
             for name, names in components.items() if any(f in scorer.features for f in names)}
    total = sum(parts.values()) or 1.0
    return {name: v / total for name, v in parts.items()}


@dataclass(frozen=True)
class Alignment:
    """A scorer: features (n, F) -> predicted accuracy (n,)."""

    version: str
    features: tuple[str, ...] = FEATURES
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    layers: tuple = ()  # ((W, b), ...) applied with ReLU between them
    offset: float = 0.0
    trained_on: dict = field(default_factory=dict, compare=False)
    blend: float = 0.0  # weight of the untrained score, mixed in within the scored list (module docstring)

    def __post_init__(self):
        if not 0.0 <= self.blend <= 1.0:
            raise ConfigError(f"alignment {self.version}: blend {self.blend} is not a weight in [0, 1]")
        if self.blend and (self.untrained or not set(UNTRAINED_FEATURES) <= set(self.features)):
            raise ConfigError(f"alignment {self.version}: a blend with the untrained score needs a trained scorer "
                              f"whose features include {list(UNTRAINED_FEATURES)}")

    @property
    def untrained(self) -> bool:
        return self.version == UNTRAINED

    def matrix(self, rows: list[dict[str, float]]) -> np.ndarray:
        return np.asarray([[r[f] for f in self.features] for r in rows], dtype=np.float64).reshape(len(rows), len(self.features))

    def score(self, rows: list[dict[str, float]]) -> np.ndarray:
        return self.score_matrix(self.matrix(rows))

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        """Scores of feature rows laid out in self.features order."""
        if self.untrained and "card" in self.features:  # the untrained words score: the card's similarity alone
            return x[:, self.features.index("card")]
        if self.untrained:
            return self._untrained(x)
        h = (x - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        learned = TEMPERATURE * h[:, 0] + self.offset
        if not self.blend:
            return learned
        mixed = (1 - self.blend) * _z(learned) + self.blend * _z(self._untrained(x))
        spread = float(learned.std())
        return learned.mean() + (spread if spread > 0 else TEMPERATURE) * mixed

    def _untrained(self, x: np.ndarray) -> np.ndarray:
        return (x[:, self.features.index("kernel_alignment")] + x[:, self.features.index("concept_match")]) / 2

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "features": list(self.features), "mean": self.mean.tolist(),
                           "scale": self.scale.tolist(), "layers": [[w.tolist(), b.tolist()] for w, b in self.layers],
                           "offset": self.offset, "temperature": TEMPERATURE, "trained_on": self.trained_on,
                           **({"blend": self.blend} if self.blend else {})}, indent=1)

    def save(self, path: Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def from_json(cls, text: str, source: str = "") -> Alignment:
        try:
            d = json.loads(text)
            unknown = sorted(set(d["features"]) - set(FEATURES) - set(WORD_FEATURES))
            if unknown:
                raise ConfigError(f"alignment checkpoint {source} uses features {unknown} this zoo2vec does not compute")
            return cls(version=d["version"], features=tuple(d["features"]), mean=np.asarray(d["mean"]),
                       scale=np.asarray(d["scale"]),
                       layers=tuple((np.asarray(w), np.asarray(b)) for w, b in d["layers"]),
                       offset=float(d["offset"]), trained_on=d.get("trained_on", {}), blend=float(d.get("blend", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"alignment checkpoint {source} is not readable ({exc}): train one with `zoo2vec train-align`") from None


def _z(v: np.ndarray) -> np.ndarray:
    """Scores z-normalised over the list (zeros where they do not vary)."""
    spread = v.std()
    return (v - v.mean()) / spread if spread > 1e-12 else np.zeros_like(v)


def untrained() -> Alignment:
    return Alignment(version=UNTRAINED)


# the two kinds of scorer: (setting, packaged default, command that trains one, what it is called)
_KINDS = {False: ("ZOO2VEC_ALIGN", DEFAULT, "train-align", "alignment"),
          True: ("ZOO2VEC_WORDS", WORDS, "train-words", "words scorer")}


def load(name: str | None = None, *, words: bool = False) -> Alignment:
    """The alignment named (a path to a checkpoint, 'untrained', or a packaged version); default $ZOO2VEC_ALIGN, else
    align-4. words=True: the words scorer, default $ZOO2VEC_WORDS, else words-2 ('untrained' is the card's similarity)."""
    setting, default, command, called = _KINDS[words]
    name = name or os.environ.get(setting) or default
    if name == UNTRAINED:
        return Alignment(version=UNTRAINED, features=WORD_FEATURES) if words else untrained()
    packaged = resources.files(__package__).joinpath("alignments").joinpath(f"{name}.json")
    if packaged.is_file():
        return Alignment.from_json(packaged.read_text(), name)
    path = Path(name).expanduser()
    if path.is_file():
        return Alignment.from_json(path.read_text(), str(path))
    raise ConfigError(f"no {called} checkpoint {name!r}: give a path to one written by `zoo2vec {command}`, "
                      f"'{UNTRAINED}', or a packaged version ({default})")
