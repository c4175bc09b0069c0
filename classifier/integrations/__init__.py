"""Integrations with data platforms; each sits on top of the library and has its extra.

- :mod:`classifier.integrations.spark` (extra ``[spark]``): score a DataFrame of
  messages, and flag conversations in a Structured Streaming query.

The platform-neutral part, :func:`score_rows`, turns one conversation's message rows
plus its prior numeric state into a score; an integration with another engine (Flink,
Beam, a queue consumer) calls it the same way.
"""

from .._message_rows import conversation_from_rows, conversation_rows
from ._rows import PriorState, RowsScore, score_rows, score_rows_many, scorer_for

__all__ = ["PriorState", "RowsScore", "conversation_from_rows", "conversation_rows",
           "score_rows", "score_rows_many", "scorer_for"]
