"""The extractor as a spaCy pipeline component, for providers who already run spaCy.

>>> import spacy
>>> import classifier.indicators  # registers the factory
>>> nlp = spacy.blank("en")
>>> _ = nlp.add_pipe("solicitation_indicators")
>>> doc = nlp("are your parents home")
>>> from classifier.indicators import load_catalogue
>>> names = load_catalogue().feature_names()
>>> int(doc._.indicator_counts[names.index("supervision_check.parents_home")])
1
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from ._catalogue import load_catalogue
from ._extractor import MatchEngine

__all__ = ["IndicatorComponent"]

if not Doc.has_extension("indicator_counts"):
    Doc.set_extension("indicator_counts", default=None)
if not Doc.has_extension("indicator_ages"):
    Doc.set_extension("indicator_ages", default=())


class IndicatorComponent:
    """Sets ``doc._.indicator_counts`` (uint16 vector) and ``doc._.indicator_ages``."""

    def __init__(self, nlp: Language, name: str, catalogue_path: str | None) -> None:
        lang = nlp.lang or "en"
        catalogue = (load_catalogue(path=catalogue_path) if catalogue_path
                     else load_catalogue(lang))
        self.name = name
        self.engine = MatchEngine(catalogue)
        self.recogniser = catalogue.recogniser
        self._learned = [(k, list(self.recogniser.labels).index(ind.recogniser))
                         for k, ind in enumerate(catalogue.indicators)
                         if ind.recogniser and self.recogniser is not None]

    def __call__(self, doc: Doc) -> Doc:
        counts, ages = self.engine.match(doc, _dt.datetime.now(_dt.UTC).year)
        if self._learned:
            hits = self.recogniser.hits([doc.text])[0]
            for k, j in self._learned:
                counts[k] = int(hits[j])
        doc._.indicator_counts = counts
        doc._.indicator_ages = ages
        return doc


@Language.factory("solicitation_indicators", default_config={"catalogue_path": None})
def make_indicator_component(nlp: Language, name: str, catalogue_path: Any) -> IndicatorComponent:
    return IndicatorComponent(nlp, name, catalogue_path)
