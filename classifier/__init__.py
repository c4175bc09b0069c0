"""solicitation-classifier: risk-factor detection of possible solicitation of children.

Message text enters exactly one component, the text boundary (:class:`TextBoundary`,
which calls :class:`IndicatorExtractor`); everything after it is numbers on a closed,
documented schema. :class:`Pipeline` is the one composition root: scope, text boundary,
state, risk factors, model, triage.

>>> from classifier import Pipeline, read_jsonl, sample_path
>>> results = Pipeline().score_many([r.conversation for r in read_jsonl(sample_path())])
>>> [r.flagged for r in results]
[True, False, False, False, False, False]
"""

from ._conversation import (
    Conversation,
    Message,
    Participant,
    ReadLimits,
    RecordResult,
    Relationship,
    conversation_from_dict,
    conversation_to_dict,
    read_jsonl,
    sample_path,
    write_jsonl,
)
from ._errors import (
    CatalogueError,
    ClassifierError,
    ConfigError,
    Errors,
    FirewallError,
    InputTypeError,
    MasterKeyError,
    MissingDependencyError,
    ModelError,
    NotFittedError,
    RecordError,
    StateError,
    StoreError,
    TableSchemaError,
)
from ._features import (
    FEATURE_NAMES,
    PEER_GATE,
    RISK_FACTORS,
    FactorContext,
    RiskFactorBuilder,
    gate,
    peer_gate,
)
from ._message_rows import MessageRow, RejectedRow, StreamMessage
from ._model import RiskModel
from ._pipeline import Explanation, FactorContribution, Pipeline, ScoreResult, conversation_state
from ._scope import LegalBasis, ScanDecision, ScanPolicy, refusal_reason
from ._scoring import ConversationStream, Scorer
from ._state import ConversationState, ParticipantState, merge_states
from ._stream import StreamFlag, StreamScorer
from ._text import EvidenceExcerpt, MessageColumns, TextBoundary
from .indicators import (
    Catalogue,
    IndicatorExtractor,
    IndicatorVectorizer,
    MessageIndicators,
    load_catalogue,
)

__version__ = "0.2.0"

__all__ = [
    "FEATURE_NAMES",
    "PEER_GATE",
    "RISK_FACTORS",
    "Catalogue",
    "CatalogueError",
    "ClassifierError",
    "ConfigError",
    "Conversation",
    "ConversationState",
    "ConversationStream",
    "Errors",
    "EvidenceExcerpt",
    "Explanation",
    "FactorContext",
    "FactorContribution",
    "FirewallError",
    "IndicatorExtractor",
    "IndicatorVectorizer",
    "InputTypeError",
    "LegalBasis",
    "MasterKeyError",
    "Message",
    "MessageColumns",
    "MessageIndicators",
    "MessageRow",
    "MissingDependencyError",
    "ModelError",
    "NotFittedError",
    "Participant",
    "ParticipantState",
    "Pipeline",
    "ReadLimits",
    "RecordError",
    "RecordResult",
    "RejectedRow",
    "Relationship",
    "RiskFactorBuilder",
    "RiskModel",
    "ScanDecision",
    "ScanPolicy",
    "ScoreResult",
    "Scorer",
    "StateError",
    "StoreError",
    "StreamFlag",
    "StreamMessage",
    "StreamScorer",
    "TableSchemaError",
    "TextBoundary",
    "__version__",
    "conversation_from_dict",
    "conversation_state",
    "conversation_to_dict",
    "gate",
    "load_catalogue",
    "merge_states",
    "peer_gate",
    "read_jsonl",
    "refusal_reason",
    "sample_path",
    "write_jsonl",
]
