"""Wording coverage: does the catalogue recognise the risky turns independent authors wrote?

Authors annotate their risky turns (``{"stage": "isolation"}`` on a message). For each
author and each annotated label, coverage is the share of those turns that raise at least
one indicator of the catalogue categories meant to recognise them (an age disclosure also
counts when it yields age evidence); the benign hit rate is the share of turns in the
author's hard negatives that raise an indicator of those categories. Both are numbers per
(author, label): no text leaves this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from classifier import Conversation, IndicatorExtractor, TextBoundary

from .authors import TURN_CATEGORIES

__all__ = ["Coverage", "coverage"]


@dataclass
class Coverage:
    """Per label: annotated turns, recognised turns; per label: benign turns hit."""

    annotated: dict[str, int] = field(default_factory=dict)
    recognised: dict[str, int] = field(default_factory=dict)
    benign_turns: int = 0
    benign_hits: dict[str, int] = field(default_factory=dict)

    def rate(self, label: str) -> float:
        n = self.annotated.get(label, 0)
        return self.recognised.get(label, 0) / n if n else float("nan")

    def benign_rate(self, label: str) -> float:
        return self.benign_hits.get(label, 0) / self.benign_turns if self.benign_turns else 0.0

    @property
    def overall(self) -> float:
        n = sum(self.annotated.values())
        return sum(self.recognised.values()) / n if n else float("nan")

    def to_dict(self) -> dict[str, object]:
        return {"overall": self.overall, "benign_turns": self.benign_turns,
                "labels": {k: {"annotated": self.annotated[k],
                               "recognised": self.recognised.get(k, 0),
                               "coverage": self.rate(k),
                               "benign_hit_rate": self.benign_rate(k)}
                           for k in sorted(self.annotated)}}


def coverage(conversations: Sequence[Conversation], extractor: IndicatorExtractor | None = None,
             *, labels: Mapping[str, tuple[str, ...]] = TURN_CATEGORIES) -> Coverage:
    """Coverage of the annotated risky turns of ``conversations`` (see module docs)."""
    extractor = extractor or IndicatorExtractor()
    cats = extractor.catalogue.category_names()
    onehot = np.zeros((len(extractor.catalogue.indicators), len(cats)), dtype=bool)
    for k, ind in enumerate(extractor.catalogue.indicators):
        onehot[k, cats.index(ind.category)] = True
    want = {label: [cats.index(c) for c in wanted if c in cats]
            for label, wanted in labels.items()}
    out = Coverage()
    for conv, cols in zip(conversations, TextBoundary(extractor).extract(conversations),
                          strict=True):
        by_cat = (cols.counts > 0) @ onehot  # messages x categories
        for i, m in enumerate(conv.messages):
            label = (m.annotations or {}).get("stage")
            if conv.label == 0 and m.is_text:
                out.benign_turns += 1
                for name, columns in want.items():
                    if by_cat[i, columns].any():
                        out.benign_hits[name] = out.benign_hits.get(name, 0) + 1
            if conv.label != 1 or label not in want:
                continue
            out.annotated[label] = out.annotated.get(label, 0) + 1
            hit = bool(by_cat[i, want[label]].any())
            if label == "age_disclosure" and i in cols.ages:
                hit = True
            if hit:
                out.recognised[label] = out.recognised.get(label, 0) + 1
    return out
