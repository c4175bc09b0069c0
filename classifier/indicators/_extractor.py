"""The indicator extractor: the only code in the library that reads message text.

Text in; a fixed-length vector of counts per indicator and numeric age evidence out.
The text is dropped here. Matching is spaCy's (blank tokenizer, ``PhraseMatcher`` for
literal phrases, ``Matcher`` for patterns with slots), behind the :class:`Prefilter`.

spaCy's ``StringStore`` would otherwise keep every new word it tokenises (unbounded
memory, and message words are substance); every tokenisation here runs inside
``nlp.memory_zone()``, which forgets those strings when the batch is done. (Inside a
zone spaCy's tokenizer cache is bypassed, about 3x slower per tokenised message; the
prefilter keeps that to the ~2% of messages that may hold an indicator.)
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import Errors, InputTypeError
from ._catalogue import Catalogue, Indicator, load_catalogue
from ._prefilter import Prefilter

__all__ = [
    "AgeEvidence",
    "AgeKind",
    "IndicatorBatch",
    "IndicatorExtractor",
    "MatchEngine",
    "MessageIndicators",
]

COUNT_DTYPE = np.uint16
_COUNT_MAX = np.iinfo(COUNT_DTYPE).max
_LEADING_DIGITS = re.compile(r"\d+")
_PRECEDING_WINDOW = 3


class AgeKind(IntEnum):
    """What kind of age evidence a match gave."""

    DISCLOSED = 1  # a stated age or birth year
    SCHOOL = 2  # a school grade, year or level mapped to an age band


@dataclass(frozen=True, slots=True)
class AgeEvidence:
    """An age interval ``[low, high]`` in years, and where it came from."""

    kind: AgeKind
    low: float
    high: float
    indicator: int  # index of the indicator in the catalogue


@dataclass(frozen=True)
class MessageIndicators:
    """The extractor's output for one message: numbers only."""

    counts: np.ndarray
    ages: tuple[AgeEvidence, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.counts.any())


@dataclass(frozen=True)
class IndicatorBatch:
    """The extractor's output for a batch.

    Attributes
    ----------
    counts : ndarray of shape (n_messages, n_indicators), uint16
        Matches per indicator (saturating at 65535).
    ages : mapping of row -> tuple of AgeEvidence
        Only rows with age evidence appear.
    n_candidates : int
        Messages the prefilter passed to spaCy.
    """

    counts: np.ndarray
    ages: Mapping[int, tuple[AgeEvidence, ...]]
    n_candidates: int

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def __getitem__(self, row: int) -> MessageIndicators:
        return MessageIndicators(self.counts[row], self.ages.get(row, ()))

    @functools.cached_property
    def age_rows(self) -> np.ndarray:
        """The rows with age evidence, sorted (to find those of a range of rows fast)."""
        return np.array(sorted(self.ages), dtype=np.int64)

    def ages_between(self, start: int, stop: int) -> dict[int, tuple[AgeEvidence, ...]]:
        """Age evidence of rows ``start <= row < stop``."""
        if not self.ages:
            return {}
        rows = self.age_rows
        lo, hi = np.searchsorted(rows, [start, stop])
        return {int(r): self.ages[int(r)] for r in rows[lo:hi]}


class MatchEngine:
    """spaCy matchers for a catalogue, bound to one vocab (shared with the spaCy component).

    Parameters
    ----------
    vocab : spacy.vocab.Vocab
    catalogue : Catalogue
    """

    def __init__(self, vocab: Any, catalogue: Catalogue) -> None:
        from spacy.matcher import Matcher, PhraseMatcher
        from spacy.tokens import Doc

        self.catalogue = catalogue
        self.n_features = len(catalogue.indicators)
        self._phrase = PhraseMatcher(vocab, attr="LOWER")
        self._matcher = Matcher(vocab, validate=True)
        self._key_to_index: dict[int, int] = {}
        for k, ind in enumerate(catalogue.indicators):
            key = f"indicator:{ind.id}"
            self._key_to_index[vocab.strings.add(key)] = k
            docs, slotted = [], []
            for template in ind.templates:
                for phrase in template.phrases:
                    if all(kind == "lit" for kind, _ in phrase):
                        docs.append(Doc(vocab, words=[v for _, v in phrase]))
                    else:
                        slotted.append(phrase)
            token_patterns = [
                [dict(catalogue.slots[item[1]]) if isinstance(item, tuple)
                 else {"LOWER": next(iter(item))} if len(item) == 1
                 else {"LOWER": {"IN": sorted(item)}} for item in pattern]
                for pattern in _compress(slotted)
            ]
            token_patterns.extend([dict(t) for t in p] for p in ind.patterns)
            if docs:
                self._phrase.add(key, docs)
            if token_patterns:
                self._matcher.add(key, token_patterns)
        self._number_words = {w.lower(): v for w, v in catalogue.number_words.items()}

    def match(self, doc: Any, reference_year: int, *, token_patterns: bool = True,
              ) -> tuple[np.ndarray, tuple[AgeEvidence, ...]]:
        """Count indicator matches in a tokenised doc; returns (counts, age evidence).

        ``token_patterns=False`` skips the ``Matcher`` (patterns with slots), for a doc
        the prefilter has shown cannot match any of them.
        """
        counts = np.zeros(self.n_features, dtype=COUNT_DTYPE)
        found = list(self._phrase(doc))
        if token_patterns:
            found += self._matcher(doc)
        if not found:
            return counts, ()
        by_indicator: dict[int, list[tuple[int, int]]] = {}
        for key, start, end in found:
            by_indicator.setdefault(self._key_to_index[key], []).append((start, end))
        ages: list[AgeEvidence] = []
        indicators = self.catalogue.indicators
        for k, spans in by_indicator.items():
            ind = indicators[k]
            kept = _longest_non_overlapping(s for s in spans if _context_ok(doc, s, ind))
            counts[k] = min(len(kept), _COUNT_MAX)
            if ind.age is not None:
                for start, end in kept:
                    ev = self._age_evidence(doc, start, end, ind, k, reference_year)
                    if ev is not None:
                        ages.append(ev)
        return counts, tuple(ages)

    def _age_evidence(self, doc: Any, start: int, end: int, ind: Indicator, k: int,
                      reference_year: int) -> AgeEvidence | None:
        rule = ind.age
        assert rule is not None
        if rule.kind == "band":
            return AgeEvidence(AgeKind.SCHOOL, rule.band[0], rule.band[1], k)
        number = None
        for token in doc[start:end]:
            lower = token.lower_
            if lower in self._number_words:
                number = float(self._number_words[lower])
                break
            m = _LEADING_DIGITS.match(lower)
            if m:
                number = float(m.group())
                break
        if number is None:
            return None
        if rule.kind == "disclosed":
            return AgeEvidence(AgeKind.DISCLOSED, number, number, k)
        if rule.kind == "birth_year":
            age = reference_year - number
            if not 0 <= age <= 120:
                return None
            return AgeEvidence(AgeKind.DISCLOSED, age - 1, age, k)
        return AgeEvidence(AgeKind.SCHOOL, number + rule.offset[0], number + rule.offset[1], k)


Item = frozenset[str] | tuple[str, str]


def _compress(phrases: Iterable[tuple[tuple[str, str], ...]]) -> list[tuple[Item, ...]]:
    """Merge expanded token sequences that differ at one literal position into IN-sets.

    Template expansion multiplies alternatives out; spaCy's Matcher cost grows with the
    number of patterns, so the product is folded back (exactly: the merged patterns
    match the same token sequences).
    """
    pats: set[tuple[Item, ...]] = {
        tuple(frozenset([v]) if kind == "lit" else ("slot", v) for kind, v in phrase)
        for phrase in phrases
    }
    changed = True
    while changed:
        changed = False
        for pos in range(max((len(p) for p in pats), default=0)):
            groups: dict[Any, list[tuple[Item, ...]]] = {}
            for p in pats:
                if pos < len(p) and isinstance(p[pos], frozenset):
                    key: Any = (p[:pos], p[pos + 1:])
                else:
                    key = p
                groups.setdefault(key, []).append(p)
            merged: set[tuple[Item, ...]] = set()
            for key, members in groups.items():
                if len(members) == 1:
                    merged.add(members[0])
                else:
                    prefix, suffix = key
                    union = frozenset().union(*(m[pos] for m in members))
                    merged.add((*prefix, union, *suffix))
                    changed = True
            pats = merged
    return sorted(pats, key=repr)


def _context_ok(doc: Any, span: tuple[int, int], ind: Indicator) -> bool:
    """The catalogue's context conditions: near-misses such as 'im 13 minutes away'."""
    start, end = span
    if ind.message_start and any(not (t.is_space or t.is_punct) for t in doc[:start]):
        return False
    if ind.not_followed_by and end < len(doc) and doc[end].lower_ in ind.not_followed_by:
        return False
    if ind.not_preceded_by:
        for t in doc[max(0, start - _PRECEDING_WINDOW):start]:
            if t.lower_ in ind.not_preceded_by:
                return False
    return True


def _longest_non_overlapping(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Greedy: earliest start first, longest first; one count per stretch of tokens."""
    kept: list[tuple[int, int]] = []
    last_end = -1
    for start, end in sorted(spans, key=lambda s: (s[0], s[0] - s[1])):
        if start >= last_end:
            kept.append((start, end))
            last_end = end
    return kept


def _this_year() -> int:
    return _dt.datetime.now(_dt.UTC).year


class IndicatorExtractor:
    """Extract indicator counts and age evidence from message text.

    Parameters
    ----------
    language : str, default "en"
        Language of the bundled catalogue.
    catalogue : Catalogue or path-like, optional
        A catalogue of your own (overrides ``language``).
    prefilter : {"auto", "hyperscan", "re", "none"}, default "auto"
        Engine of the prefilter; ``"none"`` runs the full matcher on every message.

    Examples
    --------
    >>> ext = IndicatorExtractor()
    >>> hits = ext.extract("r u home alone? im 13 btw")
    >>> int(hits.counts[ext.index("supervision_check.alone")])
    1
    >>> [(a.low, a.high) for a in hits.ages]
    [(13.0, 13.0)]
    """

    def __init__(self, *, language: str = "en", catalogue: Catalogue | str | Path | None = None,
                 prefilter: str = "auto") -> None:
        import spacy

        if catalogue is None:
            catalogue = load_catalogue(language)
        elif not isinstance(catalogue, Catalogue):
            catalogue = load_catalogue(path=catalogue)
        self.catalogue = catalogue
        self.nlp = spacy.blank(catalogue.language)
        self.engine = MatchEngine(self.nlp.vocab, catalogue)
        regexes, needs_matcher = [], []
        for ind in catalogue.indicators:
            for template in ind.templates:
                regexes.append(template.regex)
                needs_matcher.append(any(kind == "slot" for p in template.phrases
                                         for kind, _ in p))
            regexes.extend(ind.pattern_regexes)
            needs_matcher.extend([True] * len(ind.pattern_regexes))
        self.prefilter = Prefilter(regexes, engine=prefilter, flagged=needs_matcher)
        self._index = {name: k for k, name in enumerate(catalogue.feature_names())}

    @property
    def n_features(self) -> int:
        return self.engine.n_features

    def feature_names(self) -> tuple[str, ...]:
        return self.catalogue.feature_names()

    def index(self, indicator_id: str) -> int:
        """Column of an indicator id in the count vector."""
        return self._index[indicator_id]

    def __repr__(self) -> str:
        return (f"IndicatorExtractor(language={self.catalogue.language!r}, "
                f"version={self.catalogue.version!r}, prefilter={self.prefilter.engine!r})")

    def __reduce__(self) -> Any:
        # rebuild from the catalogue: never pickle the vocab (it may hold message words)
        return (_rebuild_extractor, (self.catalogue.path, self.prefilter.engine))

    def extract(self, text: str, *, reference_year: int | None = None) -> MessageIndicators:
        """Extract one message. See :meth:`extract_batch`."""
        return self.extract_batch([text], reference_year=reference_year)[0]

    def extract_batch(self, texts: Sequence[str], *,
                      reference_year: int | Sequence[int] | None = None) -> IndicatorBatch:
        """Extract a batch of messages.

        Parameters
        ----------
        texts : sequence of str
        reference_year : int or sequence of int, optional
            The year each message was sent, to turn a birth year into an age
            (default: the current year).

        Raises
        ------
        InputTypeError
            If an item is not a str; the error names its index, never its value.
        """
        if isinstance(texts, str):
            raise InputTypeError(Errors.E001.format(type_name="str (pass a list of messages)",
                                                    record="batch"))
        texts = texts if isinstance(texts, (list, tuple)) else list(texts)
        n = len(texts)
        mask, needs_matcher = self.prefilter.candidates(texts)
        rows = np.flatnonzero(mask)
        counts = np.zeros((n, self.n_features), dtype=COUNT_DTYPE)
        ages: dict[int, tuple[AgeEvidence, ...]] = {}
        if rows.size:
            years = _years(reference_year, n)
            with self.nlp.memory_zone():
                docs = self.nlp.tokenizer.pipe(_encodable(texts[i]) for i in rows)
                for row, doc in zip(rows.tolist(), docs, strict=True):
                    c, a = self.engine.match(doc, years[row],
                                             token_patterns=bool(needs_matcher[row]))
                    counts[row] = c
                    if a:
                        ages[row] = a
        return IndicatorBatch(counts, ages, int(rows.size))


def _encodable(text: str) -> str:
    """spaCy cannot hash lone surrogates; replace them (only those) before tokenising."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _years(reference_year: int | Sequence[int] | None, n: int) -> Sequence[int]:
    if reference_year is None:
        return [_this_year()] * n
    if isinstance(reference_year, int):
        return [reference_year] * n
    return reference_year


def _rebuild_extractor(path: str, engine: str) -> IndicatorExtractor:
    return IndicatorExtractor(catalogue=path, prefilter=engine)
