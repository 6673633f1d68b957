"""What a search returns: SearchResult (one ranked model, its score and where the score came from) and
SearchResults (a printable list of them, with .to_pandas())."""

from __future__ import annotations

import dataclasses
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

WIDTH = 100  # what SearchResults prints fits a terminal this wide


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
    logme: float | None = None  # with verify=n: LogME of its outputs on the task's samples (what verified models are ordered by)
    verify_error: str | None = None  # with verify=n: why the model could not be measured

    def __str__(self) -> str:
        checked = f" measured {self.measured:.3f}" if self.measured is not None else (
            " measured: failed" if self.verify_error else "")
        return f"{self.rank:>2}. {self.name:<28} score {self.score:.3f}{checked}  {self.why}"

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready values (numbers, text, lists, None for unknown or NaN); `model` is the
        name, and the card's modality, license and params are repeated at the top level."""
        return _plain({
            "rank": self.rank, "model": self.name, "score": self.score, "measured": self.measured, "logme": self.logme,
            "verify_error": self.verify_error, "modality": self.card.get("modality"),
            "license": self.card.get("license"), "params": self.card.get("params"),
            "kernel_alignment": self.kernel_alignment, "concept_match": self.concept_match,
            "text_similarity": self.text_similarity, "words_score": self.words_score, "shares": self.shares,
            "why": self.why, "matches": [_match(m) for m in self.matches],
            "features": self.features, "card": self.card})


def _match(match: Any) -> dict[str, Any]:
    """A class-to-concept match (know2vec.ConceptMatch, or a (class, concept, similarity) tuple) as a dict."""
    if dataclasses.is_dataclass(match):
        return dataclasses.asdict(match)
    return dict(zip(("task_class", "model_concept", "similarity"), match))


def _plain(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers, tuples as lists and NaN/inf as None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def params_shown(params: Any) -> str:
    """A parameter count in four or five characters: 650, 12.3k, 4.1M, 1.1B; '?' when unknown."""
    if params is None or isinstance(params, float) and math.isnan(params):
        return "?"
    n = float(params)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.1f}{suffix}" if n < 100 * limit else f"{n / limit:.0f}{suffix}"
    return str(int(n))


def _cut(text: Any, width: int) -> str:
    """One line of at most `width` characters: whitespace collapsed, an ellipsis where it was cut."""
    text = " ".join(str(text if text is not None else "").split())
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


class SearchResults(list):
    """A list of SearchResult, printable, with .to_pandas()."""

    def __str__(self) -> str:
        return self.table()

    def table(self, *, width: int = WIDTH, long: bool = False) -> str:
        """The results as a table that fits `width` columns: rank, model, predicted score (and after verify the
        measured accuracy and the LogME the verified models are ordered by), modality, license, params and the start
        of the explanation; with `long`, each row is
        followed by its whole explanation (and why verification failed), wrapped to the width."""
        if not self:
            return "(no models matched)"
        verified = any(r.measured is not None or r.verify_error for r in self)
        name_width = min(max(5, *(len(r.name) for r in self)), 26)
        columns = [("#", 2, ">"), ("model", name_width, "<"), ("score", 5, ">")]
        if verified:
            columns += [("measured", 8, ">"), ("logme", 6, ">")]
        columns += [("modality", 8, "<"), ("license", 10, "<"), ("params", 6, ">")]
        used = sum(w for _, w, _ in columns) + 2 * len(columns)
        columns.append(("why", max(width - used, 10), "<"))

        def line(cells):
            return "  ".join(f"{_cut(c, w):{a}{w}}" for c, (_, w, a) in zip(cells, columns)).rstrip()

        lines = [line([c for c, _, _ in columns])]
        for r in self:
            cells = [r.rank, r.name, f"{r.score:.3f}"]
            if verified:
                cells.append(f"{r.measured:.3f}" if r.measured is not None else ("failed" if r.verify_error else "-"))
                cells.append(f"{r.logme:.3f}" if r.logme is not None else "-")
            cells += [r.card.get("modality", ""), r.card.get("license", ""), params_shown(r.card.get("params")), r.why]
            lines.append(line(cells))
            if long:
                indent = " " * 4
                lines += textwrap.wrap(" ".join(r.why.split()), width, initial_indent=indent, subsequent_indent=indent)
                if r.verify_error:
                    lines += textwrap.wrap(f"verify failed: {' '.join(r.verify_error.split())}", width,
                                           initial_indent=indent, subsequent_indent=indent)
        return "\n".join(lines)

    def to_pandas(self):
        import pandas as pd

        rows = []
        for r in self:
            rows.append({"rank": r.rank, "model": r.name, "score": r.score, "measured": r.measured, "logme": r.logme,
                         "kernel_alignment": r.kernel_alignment, "words_score": r.words_score,
                         "concept_match": r.concept_match, "text_similarity": r.text_similarity,
                         "modality": r.card.get("modality"), "license": r.card.get("license"),
                         "params": r.card.get("params"), "verify_error": r.verify_error, "why": r.why})
        return pd.DataFrame(rows, columns=["rank", "model", "score", "measured", "logme", "kernel_alignment", "concept_match",
                                           "words_score", "text_similarity", "modality", "license", "params",
                                           "verify_error", "why"])
