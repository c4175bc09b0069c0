"""Indicators: the closed catalogue and the extractor, the only code that reads text."""

from ._catalogue import AgeRule, Catalogue, Indicator, available_languages, load_catalogue
from ._extractor import (
    AgeEvidence,
    AgeKind,
    IndicatorBatch,
    IndicatorExtractor,
    MatchEngine,
    MessageIndicators,
)
from ._prefilter import ENGINES, Prefilter, hyperscan_available
from ._recogniser import WordRecogniser, tokens
from ._vectorizer import IndicatorVectorizer


def __getattr__(name: str) -> object:
    # the spaCy component imports spaCy's Language; load it only when asked for (spaCy
    # itself finds the factory through the `spacy_factories` entry point)
    if name == "IndicatorComponent":
        from ._component import IndicatorComponent

        return IndicatorComponent
    raise AttributeError(name)

__all__ = [
    "ENGINES",
    "AgeEvidence",
    "AgeKind",
    "AgeRule",
    "Catalogue",
    "Indicator",
    "IndicatorBatch",
    "IndicatorComponent",
    "IndicatorExtractor",
    "IndicatorVectorizer",
    "MatchEngine",
    "MessageIndicators",
    "Prefilter",
    "WordRecogniser",
    "available_languages",
    "hyperscan_available",
    "load_catalogue",
    "tokens",
]
