"""Training data for the learned recognisers, from the independent authors' annotations.

Risky turns of the offender that an author annotated (``{"stage": "flattery"}``) are
positives of their category; every turn of a hard negative, every plain reply of the
child in a positive and every turn of real benign chat is a benign turn. The offender's
unannotated turns are left out (an author may not annotate every risky turn), and so are
the child's annotated replies: "ok bet" after a request to move apps is a platform move
only in its context, and a recogniser that learned it would fire on every assent. The
generator is never a source: it was written by the same hand as the catalogue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from classifier import Conversation

from .authors import GENERATOR, TURN_CATEGORIES, load_author

__all__ = ["RECOGNISED", "author_turns", "build_recognisers"]

# the annotated labels that have a learned recogniser, and the category each one scores
RECOGNISED = {label: cats[0] for label, cats in TURN_CATEGORIES.items()
              if label != "age_disclosure"}


def author_turns(conversations: Iterable[Conversation], author: str,
                 ) -> list[tuple[str, str | None, str]]:
    """(text, category or None, author) for every usable turn (see module docs)."""
    out: list[tuple[str, str | None, str]] = []
    for conv in conversations:
        for m in conv.messages:
            if not m.is_text or not m.text.strip():
                continue
            label = (m.annotations or {}).get("stage")
            if conv.label == 1:
                if label in RECOGNISED and m.sender == conv.offender:
                    out.append((m.text, RECOGNISED[label], author))
                elif label is None and m.sender != conv.offender:
                    out.append((m.text, None, author))
            elif conv.label == 0:
                out.append((m.text, None, author))
    return out


def build_recognisers(author_ids: Sequence[str], benign: Sequence[Conversation] = (), *,
                      benign_hit_rate: float = 0.005) -> Any:
    """Recognisers trained on these authors (never the generator) and real benign chat."""
    from classifier.training import fit_recognisers

    turns: list[tuple[str, str | None, str]] = []
    digest = hashlib.sha256()
    for author in author_ids:
        if author == GENERATOR:
            continue
        convs = load_author(author)
        turns += author_turns(convs, author)
        digest.update(author.encode())
    turns += author_turns(benign, "real_benign")
    labels = sorted(set(RECOGNISED.values()))
    return fit_recognisers(turns, labels, benign_hit_rate=benign_hit_rate,
                           meta={"authors": [a for a in author_ids if a != GENERATOR],
                                 "real_benign_conversations": len(benign)})
