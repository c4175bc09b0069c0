"""solicitation-classifier: risk-factor detection of possible solicitation of children.

Message text enters exactly one component, :class:`IndicatorExtractor`; everything after
it is numbers on a closed, documented schema.
"""

from ._conversation import (
    Conversation,
    Message,
    Participant,
    RecordResult,
    conversation_from_dict,
    conversation_to_dict,
    read_jsonl,
    write_jsonl,
)
from ._errors import (
    CatalogueError,
    ClassifierError,
    Errors,
    InputTypeError,
    RecordError,
    StateError,
)
from ._state import ConversationState, ParticipantState, merge_states
from .indicators import (
    Catalogue,
    IndicatorExtractor,
    IndicatorVectorizer,
    MessageIndicators,
    load_catalogue,
)

__version__ = "0.1.0"

__all__ = [
    "Catalogue",
    "CatalogueError",
    "ClassifierError",
    "Conversation",
    "ConversationState",
    "Errors",
    "IndicatorExtractor",
    "IndicatorVectorizer",
    "InputTypeError",
    "Message",
    "MessageIndicators",
    "Participant",
    "ParticipantState",
    "RecordError",
    "RecordResult",
    "StateError",
    "__version__",
    "conversation_from_dict",
    "conversation_to_dict",
    "load_catalogue",
    "merge_states",
    "read_jsonl",
    "write_jsonl",
]
