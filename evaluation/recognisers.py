"""Training data for the learned recognisers, from the independent authors' annotations.

Risky turns of the offender that an author annotated (``{"stage": "flattery"}``) are
positives of their category; every turn of a hard negative, every plain reply of the
child in a positive and every turn of real benign chat is a benign turn. The offender's
unannotated turns are left out (an author may not annotate every risky turn), and so are
the child's annotated replies: "ok bet" after a request to move apps is a platform move
only in its context, and a recogniser that learned it would fire on every assent. The
generator is never a source: it was written by the same hand as the catalogue.

Two more recognisers score the speaker rather than a move: ``child_context`` and
``adult_context``, each trained against the other on whose turns they are, as the labels
tell it: the child's turns in a one-to-one positive and both sides of teenage peers' chat
are a minor's; the offender's turns, adult dating and the workplace are an adult's (an
offender who claims to be a teenager is an adult all the same). Only the authors'
conversations are fitted: with real benign chat on one side only, they would learn to
tell real chat from written chat. Each threshold lets through at most 0.5% of the other
group's turns; the child one also at most 10% of real benign chat's turns (adults, but
largely college students whose talk of classes and exams reads younger than written
adults: at 0.5% there it would reach 2% of a held-out author's children, at 10% a
third). One hit is weak evidence; the age estimate counts at most three context messages
of each kind (``classifier._features``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from classifier import Conversation

from .authors import GENERATOR, TURN_CATEGORIES, load_author

__all__ = ["RECOGNISED", "VOICE", "author_turns", "build_recognisers", "voice_turns"]

# the annotated labels that have a learned recogniser, and the category each one scores
RECOGNISED = {label: cats[0] for label, cats in TURN_CATEGORIES.items()
              if label != "age_disclosure"}
# the speaker's age group: a minor's turns (VOICE) learned against adults' turns (ADULT) and
# held below a hit rate on real benign chat too (REAL_ADULT, for the threshold only); and
# the adults' turns learned against the minors' (real chat's adults may all reach it)
VOICE, ADULT, REAL_ADULT = "child_context", "adult_context", "real_benign_voice"
# real chat between adults (largely US college students, who talk of classes and exams)
# reads younger than written adults: at 0.5% there the recogniser would reach almost no
# child, so there it may fire on one message in ten (a few weak hits per conversation)
REAL_CHAT_HIT_RATE = 0.10
_ADULT_SUBGROUPS = frozenset({"adult_dating", "workplace"})


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
        turns += author_turns(convs, author) + voice_turns(convs, author)
        digest.update(author.encode())
    turns += author_turns(benign, "real_benign")
    turns += [(text, REAL_ADULT, "real_benign") for text, _, _ in author_turns(benign, "")]
    labels = sorted(set(RECOGNISED.values()) | {VOICE, ADULT})
    return fit_recognisers(turns, labels, benign_hit_rate=benign_hit_rate,
                           contrasts={VOICE: ADULT, ADULT: VOICE},
                           also_below={VOICE: (REAL_ADULT, REAL_CHAT_HIT_RATE)},
                           meta={"authors": [a for a in author_ids if a != GENERATOR],
                                 "real_benign_conversations": len(benign)})


def voice_turns(conversations: Iterable[Conversation], author: str,
                ) -> list[tuple[str, str | None, str]]:
    """(text, VOICE or ADULT, author) for every turn whose speaker's age group the labels
    tell (see module docs)."""
    out: list[tuple[str, str | None, str]] = []
    for conv in conversations:
        ids = {p.id for p in conv.participants}
        for m in conv.messages:
            if not m.is_text or not m.text.strip():
                continue
            voice = None
            if conv.subgroup in _ADULT_SUBGROUPS:
                voice = ADULT
            elif conv.subgroup == "teen_peers":
                voice = VOICE
            elif conv.label == 1:
                if m.sender == conv.offender:
                    voice = ADULT
                elif len(ids) == 2:
                    voice = VOICE
            if voice is not None:
                out.append((m.text, voice, author))
    return out
