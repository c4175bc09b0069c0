"""Scope: what may be scanned at all, decided before any text is read.

This is the minimal rule set the scorer needs (DESIGN section 3); the guard issue grows it
into the full scan policy with the legal-basis calendar and byte metering.
"""

from __future__ import annotations

from ._conversation import Conversation

__all__ = ["refusal_reason"]


def refusal_reason(conversation: Conversation) -> str | None:
    """Why a conversation must not be scanned, or None.

    - ``e2ee``: end-to-end-encrypted communications are out of scope (Reg. 2026/1881);
    - ``protected_participant``: a helpline, counselling, medical or legal participant
      (recitals 26-27): the conversation is not scanned at all;
    - ``no_text``: nothing in it is text (audio is out of scope, Art 1(2)).
    """
    if conversation.e2ee:
        return "e2ee"
    if any(p.protected_role for p in conversation.participants):
        return "protected_participant"
    if not any(m.is_text for m in conversation.messages):
        return "no_text"
    return None
