"""What a search returns: SearchResult (one ranked model, its score and where the score came from) and
SearchResults (a printable list of them, with .to_pandas())."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SearchResult:
    """One ranked model. `score` is what the ranking uses; the parts say where it came from."""

    rank: int
    name: str
    score: float
    kernel_alignment: float | None  # CKA of the model's and the task's decisions on the probe set
    concept_match: float | None  # mean similarity of each task class to a distinct model concept
    text_similarity: float | None  # cosine of the query text and the model card (MiniLM)
    card: dict[str, Any]
    why: str
    matches: tuple = field(default=(), repr=False)  # (task class, model concept, similarity) per task class
    shares: dict = field(default_factory=dict)  # each component's share of the score: task, card, concepts, prior
    words_score: float | None = None  # with text: the words scorer's predicted accuracy from the sentence alone
    features: dict = field(default_factory=dict, repr=False)  # the pair features the alignment scored (see encoders.alignment)
    measured: float | None = None  # with verify=n: the model's measured accuracy on the task (quick linear probe)
    verify_error: str | None = None  # with verify=n: why the model could not be measured

    def __str__(self) -> str:
        checked = f" measured {self.measured:.3f}" if self.measured is not None else (
            " measured: failed" if self.verify_error else "")
        return f"{self.rank:>2}. {self.name:<28} score {self.score:.3f}{checked}  {self.why}"


class SearchResults(list):
    """A list of SearchResult, printable, with .to_pandas()."""

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self) if self else "(no models matched)"

    def to_pandas(self):
        import pandas as pd

        rows = []
        for r in self:
            rows.append({"rank": r.rank, "model": r.name, "score": r.score, "measured": r.measured,
                         "kernel_alignment": r.kernel_alignment, "words_score": r.words_score,
                         "concept_match": r.concept_match, "text_similarity": r.text_similarity,
                         "modality": r.card.get("modality"), "license": r.card.get("license"),
                         "params": r.card.get("params"), "why": r.why})
        return pd.DataFrame(rows, columns=["rank", "model", "score", "measured", "kernel_alignment", "concept_match",
                                           "words_score", "text_similarity", "modality", "license", "params", "why"])
