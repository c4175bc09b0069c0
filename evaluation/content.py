"""The content rule, checked on data: no sexually explicit wording anywhere.

The project's evaluation data carries only early-stage grooming indicators in
non-explicit words. This scan is a guard rail over every corpus (the generator's and the
independent authors'); a hit names the conversation and the message, never the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from classifier import Conversation

__all__ = ["FORBIDDEN", "content_problems"]

# Clinical and plainly explicit terms that must never appear in the data.
FORBIDDEN = re.compile(r"\b(sex|sexual|sexy|nude|nudes|naked|porn\w*|undress\w*|genital\w*|"
                       r"intercourse|aroused|erotic\w*|lingerie|underwear|bra|kiss\w*|"
                       r"bed with|strip\w*|topless|explicit)\b")


def content_problems(conversations: Iterable[Conversation]) -> list[str]:
    """Where the content rule is broken: ``"<conversation id> message <i>"`` per hit."""
    out = []
    for conv in conversations:
        for i, m in enumerate(conv.messages):
            if m.is_text and FORBIDDEN.search(m.text.lower()):
                out.append(f"{conv.conversation_id} message {i}")
    return out
