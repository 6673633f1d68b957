"""Know2Vec-style encoders (VERSION know2vec-1): what a model knows, from its black-box outputs on a probe
set, and what a task asks, in terms that can be compared. Nothing here is trained.

Model side, from P (probe inputs x model classes) and the probe inputs' reference embeddings E:
  - decision structure: the centred kernel K = P~ P~^T the outputs induce on the probe set, sketched
    to SKETCH_DIM numbers z_k = u_k^T K v_k with fixed Gaussian u_k, v_k, so that the cosine of two
    sketches estimates their centred kernel alignment (CKA) without the n x n matrices;
  - concept prototypes: per class c, the mean of E weighted by P(c|x) (what the model calls c);
  - calibration: mean top probability and mean normalised entropy on the probe set.
Task side, from the query samples' reference embeddings: class prototypes, and a nearest-prototype
classifier applied to the probe set, whose outputs are sketched exactly like a model's; and each sample's
nearest probe inputs, through which a model's stored probe outputs stand in for its outputs on the samples
(surrogate outputs: a weighted mean of its outputs on the sample's NEIGHBOURS nearest probe inputs), so that
transferability scores (LEEP, NCE, LogME) can be computed without running the model.

The untrained score is (kernel alignment + concept match) / 2; the learned alignment (encoders.alignment)
scores these and more pair features instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

VERSION = "know2vec-1"  # know2vec-1: label-name embeddings stored with the concepts
SKETCH_DIM = 2048
TASK_TEMPERATURE = 0.05
NEIGHBOURS = 20  # probe inputs per sample for surrogate outputs (leave-one-dataset-out CV: 20 over 5 and 1)


@dataclass(frozen=True)
class ModelKnowledge:
    """What indexing extracts from one model's probe outputs, to be written to the catalog. Search reads it back
    in two parts: the kernel vector through FAISS, the rest as an index.catalog.ModelProfile (joined with the
    card's label names, label embeddings and input shape)."""

    kernel_vector: np.ndarray  # (SKETCH_DIM,), unit norm
    concepts: np.ndarray  # (n_classes, d) unit-norm concept prototypes
    concept_mass: np.ndarray  # (n_classes,) mean P(c|x) over the probe set
    confidence: float
    entropy: float
    outputs: np.ndarray  # (probe inputs, n_classes): the probabilities themselves, for surrogate transferability


@dataclass(frozen=True)
class TaskKnowledge:
    """The same for a task: its decisions on the probe set (sketched like a model's) and its class prototypes."""

    kernel_vector: np.ndarray
    prototypes: np.ndarray  # (n_task_classes, d)
    neighbours: np.ndarray  # (n_samples, NEIGHBOURS) each sample's nearest probe inputs
    weights: np.ndarray  # (n_samples, NEIGHBOURS) their weights (softmax of cosine / TASK_TEMPERATURE)
    labels: np.ndarray  # (n_samples,) the samples' classes

    def surrogate_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """A model's outputs on the task's samples, estimated from its outputs on the probe set (n_samples, classes)."""
        return np.einsum("nk,nkc->nc", self.weights, outputs[self.neighbours])

    def surrogate_outputs_side_by_side(self, outputs: list[np.ndarray]) -> np.ndarray:
        """surrogate_outputs of many models at once, side by side (n_samples, their classes together): only the probe
        rows some sample is near are gathered, and one sparse product weighs them."""
        from scipy.sparse import csr_matrix

        rows, where = np.unique(self.neighbours, return_inverse=True)
        n, k = self.neighbours.shape
        weigh = csr_matrix((self.weights.ravel(), (np.repeat(np.arange(n), k), where.ravel())), shape=(n, len(rows)))
        return np.asarray(weigh @ np.hstack([o[rows] for o in outputs]), dtype=np.float32)


@dataclass(frozen=True)
class ConceptMatch:
    task_class: str
    model_concept: str | None  # None: the model has no concept left for this class
    similarity: float
    margin: float = 0.0  # how clearly: similarity minus that of the class's next-closest model concept


@lru_cache(maxsize=8)
def _sketch_basis(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, SKETCH_DIM), dtype=np.float32),
            rng.standard_normal((n, SKETCH_DIM), dtype=np.float32))


def kernel_vector(p: np.ndarray) -> np.ndarray:
    """Sketch of the centred kernel P~ P~^T; cos(kernel_vector(a), kernel_vector(b)) ~ CKA(a, b)."""
    p = np.asarray(p, dtype=np.float32)
    centred = p - p.mean(axis=0, keepdims=True)
    u, v = _sketch_basis(p.shape[0])
    z = ((centred.T @ u) * (centred.T @ v)).sum(axis=0)
    norm = np.linalg.norm(z)
    return (z / norm if norm > 0 else z).astype(np.float32)


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Exact centred kernel alignment of two output matrices on the same inputs (for checking the sketch)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    cross = np.linalg.norm(a.T @ b) ** 2
    denom = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(cross / denom) if denom > 0 else 0.0


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)).astype(np.float32)


def encode_model(probs: np.ndarray, probe_embeddings: np.ndarray) -> ModelKnowledge:
    probs = np.asarray(probs, dtype=np.float32)
    weights = probs / np.maximum(probs.sum(axis=0, keepdims=True), 1e-8)
    concepts = _unit_rows(weights.T @ probe_embeddings)
    n_classes = probs.shape[1]
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1) / np.log(n_classes)
    return ModelKnowledge(
        kernel_vector=kernel_vector(probs),
        concepts=concepts,
        concept_mass=probs.mean(axis=0),
        confidence=float(probs.max(axis=1).mean()),
        entropy=float(entropy.mean()),
        outputs=probs,
    )


def encode_task(sample_embeddings: np.ndarray, labels: np.ndarray, probe_embeddings: np.ndarray) -> TaskKnowledge:
    n_classes = int(labels.max()) + 1
    prototypes = _unit_rows(np.stack([sample_embeddings[labels == c].mean(axis=0) for c in range(n_classes)]))
    logits = probe_embeddings @ prototypes.T / TASK_TEMPERATURE
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return TaskKnowledge(kernel_vector(probs), prototypes, *_neighbours(sample_embeddings, probe_embeddings), labels)


def _neighbours(samples: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sims = samples @ probes.T
    k = min(NEIGHBOURS, probes.shape[0])
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(sims, idx, axis=1) / TASK_TEMPERATURE
    weights = np.exp(near - near.max(axis=1, keepdims=True))
    return idx, (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def concept_match(
    task: TaskKnowledge, task_labels, concepts: np.ndarray, concept_labels
) -> tuple[float, list[ConceptMatch]]:
    """Match each task class to a distinct model concept (best total similarity).

    The score is the mean matched similarity over task classes, a class left without a concept
    counting 0: a model that knows fewer concepts than the task has classes is penalised.
    """
    from scipy.optimize import linear_sum_assignment

    sims = task.prototypes @ concepts.T
    rows, cols = linear_sum_assignment(-sims)
    matched = dict(zip(rows.tolist(), cols.tolist()))
    # the best concept other than the matched one: the second best when the match is (tied for) the best, else the best
    ranked = np.sort(sims, axis=1)
    matches = []
    for i, name in enumerate(task_labels):
        j = matched.get(i)
        if j is None:
            matches.append(ConceptMatch(str(name), None, 0.0))
            continue
        if sims.shape[1] == 1:
            margin = float(sims[i, j])
        else:
            margin = float(sims[i, j] - (ranked[i, -2] if sims[i, j] >= ranked[i, -1] else ranked[i, -1]))
        matches.append(ConceptMatch(str(name), str(concept_labels[j]), float(sims[i, j]), margin))
    score = float(np.mean([max(m.similarity, 0.0) for m in matches]))
    return score, matches
