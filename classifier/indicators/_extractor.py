"""The indicator extractor: the only code in the library that reads message text.

Text in; a fixed-length vector of counts per indicator and numeric age evidence out.
The text is dropped here. Matching is spaCy's (blank tokenizer, ``PhraseMatcher`` for
literal phrases, ``Matcher`` for patterns with slots), behind the :class:`Prefilter`.

spaCy's ``StringStore`` would otherwise keep every new word it tokenises (unbounded
memory, and message words are substance); every tokenisation here runs inside
``nlp.memory_zone()``, which forgets those strings when the batch is done. Inside a zone
spaCy's tokenizer cache is off, so each word costs its full affix work every time: the
prefilter keeps tokenisation to the ~4% of messages that may hold an indicator, and
:func:`tokenise_chunks` gives each distinct whitespace-free chunk of a batch that work
once (spaCy's own result, message by message).
"""

from __future__ import annotations

import datetime as _dt
import functools
import itertools
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import Errors, InputTypeError
from ._catalogue import AgeRule, Catalogue, Indicator, load_catalogue
from ._matcher import TokenMatcher
from ._prefilter import Prefilter, join_lower

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
_TRAILING_DIGITS = re.compile(r"(?<=[a-z])[0-9]+$")
_WORDISH = re.compile(r"[^\W_]")  # a letter or a digit: a token made of neither is punctuation
_PRECEDING_WINDOW = 3
_PIECE = re.compile(r"\s+|\S+")  # runs of whitespace (str.isspace) and of the rest
_CHUNK_TEXT_CHARS = 1_000_000  # distinct chunks tokenised per tokenizer call, at most


class AgeKind(IntEnum):
    """What kind of age evidence a match gave."""

    DISCLOSED = 1  # a stated age or birth year
    SCHOOL = 2  # a school grade, year or level mapped to an age band
    CANDIDATE = 3  # a bare number: an age only if it answers the other party's age question
    CORRECTION = 4  # an age that replaces the speaker's earlier claims ("im actually 36")
    RETRACTION = 5  # an earlier claimed age withdrawn ("im not 17"): no number


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
    """The catalogue's matching rules on tokenised text: patterns, context conditions,
    one count per stretch of tokens, and age evidence. Shared by the extractor and the
    spaCy component.

    Parameters
    ----------
    catalogue : Catalogue
    """

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.n_features = len(catalogue.indicators)
        self.matcher = TokenMatcher(catalogue)
        self._number_words = {w.lower(): v for w, v in catalogue.number_words.items()}

    def match(self, doc: Any, reference_year: int) -> tuple[np.ndarray, tuple[AgeEvidence, ...]]:
        """Count indicator matches in a spaCy ``Doc``; returns (counts, age evidence)."""
        lowers = [t.lower_ for t in doc]
        return self.match_tokens(*_with_punct(lowers), reference_year)

    def match_tokens(self, lowers: Sequence[str], punct: Sequence[bool], reference_year: int,
                     allowed: Collection[int] | None = None,
                     ) -> tuple[np.ndarray, tuple[AgeEvidence, ...]]:
        """Count matches in a message's tokens (lower-cased, and whether each is space or
        punctuation). ``allowed``: only the patterns of these prefilter regexes."""
        counts = np.zeros(self.n_features, dtype=COUNT_DTYPE)
        found = self.matcher.find(lowers, allowed)
        if not found:
            return counts, ()
        by_indicator: dict[int, list[tuple[int, int]]] = {}
        for k, start, end in found:
            by_indicator.setdefault(k, []).append((start, end))
        ages: list[AgeEvidence] = []
        indicators = self.catalogue.indicators
        for k, spans in by_indicator.items():
            ind = indicators[k]
            kept = _longest_non_overlapping(s for s in spans
                                            if _context_ok(lowers, punct, s, ind))
            counts[k] = min(len(kept), _COUNT_MAX)
            if ind.age is not None:
                for start, end in kept:
                    ev = self._age_evidence(lowers[start:end], ind.age, k, reference_year)
                    if ev is not None:
                        ages.append(ev)
        if len(ages) > 1 and any(a.kind != AgeKind.CANDIDATE for a in ages):
            # a bare-number reading is only a fallback: a message with a stated age says more
            ages = [a for a in ages if a.kind != AgeKind.CANDIDATE]
        return counts, tuple(ages)

    def _age_evidence(self, span: Sequence[str], rule: AgeRule, k: int,
                      reference_year: int) -> AgeEvidence | None:
        if rule.kind == "band":
            return AgeEvidence(AgeKind.SCHOOL, rule.band[0], rule.band[1], k)
        if rule.kind == "retraction":
            return AgeEvidence(AgeKind.RETRACTION, math.nan, math.nan, k)
        number = None
        for lower in span:
            if lower in self._number_words:
                number = float(self._number_words[lower])
                break
            m = _LEADING_DIGITS.match(lower)
            if m is None and rule.kind == "number":  # a school stage: "s1", "jss2", "p7"
                m = _TRAILING_DIGITS.search(lower)
            if m:
                number = float(m.group())
                break
        if number is None:
            return None
        if rule.kind == "disclosed":
            return AgeEvidence(AgeKind.DISCLOSED, number, number, k)
        if rule.kind == "candidate":
            return AgeEvidence(AgeKind.CANDIDATE, number, number, k)
        if rule.kind == "correction":
            return AgeEvidence(AgeKind.CORRECTION, number, number, k)
        if rule.kind == "turning":
            return AgeEvidence(AgeKind.DISCLOSED, number - 1, number, k)
        if rule.kind == "decade":
            return AgeEvidence(AgeKind.DISCLOSED, number, number + 9, k)
        if rule.kind == "birth_year":
            age = reference_year - number
            if not 0 <= age <= 120:
                return None
            return AgeEvidence(AgeKind.DISCLOSED, age - 1, age, k)
        return AgeEvidence(AgeKind.SCHOOL, number + rule.offset[0], number + rule.offset[1], k)


def _context_ok(lowers: Sequence[str], punct: Sequence[bool], span: tuple[int, int],
                ind: Indicator) -> bool:
    """The catalogue's context conditions: near-misses such as 'im 13 minutes away'."""
    start, end = span
    if ind.message_start and not all(punct[:start]):
        return False
    if ind.message_end and not all(punct[end:]):
        return False
    if ind.not_followed_by and end < len(lowers) and lowers[end] in ind.not_followed_by:
        return False
    if ind.not_preceded_by:
        for lower in lowers[max(0, start - _PRECEDING_WINDOW):start]:
            if lower in ind.not_preceded_by:
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
        if catalogue is None:
            catalogue = load_catalogue(language)
        elif not isinstance(catalogue, Catalogue):
            catalogue = load_catalogue(path=catalogue)
        self.catalogue = catalogue
        self.engine = MatchEngine(catalogue)
        self.prefilter = Prefilter(catalogue.prefilter_regexes()[0], engine=prefilter)
        self._index = {name: k for k, name in enumerate(catalogue.feature_names())}
        self.recogniser = catalogue.recogniser
        learned = [(k, ind.recogniser) for k, ind in enumerate(catalogue.indicators)
                   if ind.recogniser]
        if self.recogniser is not None:
            labels = list(self.recogniser.labels)
            self._learned = (np.array([k for k, _ in learned], dtype=np.int64),
                             np.array([labels.index(lab) for _, lab in learned], dtype=np.int64))
        else:
            self._learned = None
        self._nlp: Any = None
        self._special_pairs: frozenset[tuple[str, str]] = frozenset()

    @property
    def nlp(self) -> Any:
        """The blank spaCy pipeline whose tokenizer defines tokens (built on first use).

        Its vocabulary computes only the lower-case form of a new word (the one attribute
        matching reads): inside a memory zone every word of a message is a new lexeme,
        and spaCy's other ~20 lexical attributes cost a fifth of the tokenising time.
        Token boundaries do not depend on lexical attributes."""
        if self._nlp is None:
            import spacy
            from spacy.attrs import LOWER

            nlp = spacy.blank(self.catalogue.language)
            nlp.vocab.lex_attr_getters = {LOWER: nlp.vocab.lex_attr_getters[LOWER]}
            self._special_pairs = special_case_pairs(nlp)
            self._nlp = nlp
        return self._nlp

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
        # the batch lower-cased and joined once, for the prefilter and the recognisers
        lowered = _joined_lower(texts) if n > 1 else None
        mask, hits = self.prefilter.candidates(texts, lowered=lowered)
        rows = mask.nonzero()[0].tolist()
        counts = np.zeros((n, self.n_features), dtype=COUNT_DTYPE)
        ages: dict[int, tuple[AgeEvidence, ...]] = {}
        if rows:
            years = _years(reference_year, n)
            nlp = self.nlp
            match = self.engine.match_tokens
            candidates = [_encodable(texts[i]) for i in rows]
            with nlp.memory_zone():
                if self.prefilter.engine == "none":  # the full matcher, the reference:
                    # spaCy's tokenizer on each whole message
                    tokenised = [_with_punct([t.lower_ for t in doc])
                                 for doc in nlp.tokenizer.pipe(candidates)]
                else:
                    tokenised = tokenise_chunks(nlp, candidates, self._special_pairs)
            for row, (lowers, punct) in zip(rows, tokenised, strict=True):
                c, a = match(lowers, punct, years[row],
                             None if hits is None else hits.get(row, ()))
                counts[row] = c
                if a:
                    ages[row] = a
        if self._learned is not None and n:
            columns, labels = self._learned
            # (an ASCII batch holds no lone surrogate; otherwise the prefilter's joined
            # text is shared only when no message needed one replaced)
            safe = texts if lowered is not None and lowered.isascii() else \
                _all_encodable(texts)
            learned = self.recogniser.hits(safe, lowered=lowered if safe is texts else None)
            if np.count_nonzero(learned):  # (no template counts a learned column: zero)
                counts[:, columns] = learned[:, labels]
        return IndicatorBatch(counts, ages, len(rows))


def _is_punct(lower: str) -> bool:
    """A token with neither a letter nor a digit (``[^\\W_]`` is exactly ``str.isalnum``
    per character, so an all-alphanumeric token skips the regex)."""
    return not lower.isalnum() and not _WORDISH.search(lower)


def _with_punct(lowers: list[str]) -> tuple[list[str], list[bool]]:
    return lowers, [_is_punct(w) for w in lowers]


def special_case_pairs(nlp: Any) -> frozenset[tuple[str, str]]:
    """Where a special case could match across two chunks: the (last character, first
    character) of every two adjacent tokens of spaCy's special cases tokenised without
    them, lower-cased.

    After splitting, spaCy matches its special cases (":)", "Dr.", ...) once more over
    the whole text's tokens, and a match may span two chunks: it changes nothing there,
    but it can win over a match inside a chunk and so keep that one from applying
    ("up:) )"). Such a match needs the last character of one chunk and the first of the
    next to be one of these pairs; a message where they are is tokenised whole."""
    from spacy.tokenizer import Tokenizer

    tok = nlp.tokenizer
    bare = Tokenizer(nlp.vocab, rules={}, prefix_search=tok.prefix_search,
                     suffix_search=tok.suffix_search, infix_finditer=tok.infix_finditer,
                     token_match=tok.token_match, url_match=tok.url_match)
    pairs: set[tuple[str, str]] = set()
    with nlp.memory_zone():
        for rule in tok.rules:
            orths = [t.orth_ for t in bare(rule)]
            pairs.update((a[-1].lower(), b[0].lower()) for a, b in itertools.pairwise(orths))
    return frozenset(pairs)


def tokenise_chunks(nlp: Any, texts: Sequence[str],
                    special_pairs: Collection[tuple[str, str]],
                    ) -> list[tuple[list[str], list[bool]]]:
    """spaCy's tokens of each message (lower-cased, and whether each is punctuation or
    space), with each distinct whitespace-free chunk of the batch tokenised once.

    spaCy's tokenizer splits a text at whitespace first and tokenises every chunk on its
    own (prefixes, suffixes, infixes, special cases); a run of whitespace is one token,
    less a single space that follows a chunk. Inside a memory zone its cache of chunks is
    off (chunks are message words), so a chat batch repeats the same affix work thousands
    of times. Here the batch's distinct chunks go through the tokenizer once, in one
    text, one per line (a line break token between chunks: no special case matches
    across it), and each message is put together from them; a message where a special
    case could match across two chunks (:func:`special_case_pairs`) is tokenised whole.
    The result is spaCy's own tokenisation of each message (``tests/test_extractor.py``
    checks it against the tokenizer on whole messages); the chunks are forgotten when
    the batch is done.
    """
    layouts: list[list[str]] = []
    chunks: dict[str, int] = {}
    for text in texts:
        layout: list[str] = []
        after_chunk = False
        for piece in _PIECE.findall(text):
            if piece[0].isspace():
                if after_chunk and piece[0] == " ":
                    piece = piece[1:]  # a single space after a chunk is not a token
                if piece:
                    layout.append(piece)
                after_chunk = False
            else:
                chunks.setdefault(piece, len(chunks))
                layout.append(piece)
                after_chunk = True
        layouts.append(layout)
    # a chunk that is no special case and has no prefix, suffix or infix is one token
    # (spaCy's own tests, in Python); only the others go through the tokenizer
    tok = nlp.tokenizer
    rules, prefix, suffix, infixes = tok.rules, tok.prefix_search, tok.suffix_search, \
        tok.infix_finditer
    # each chunk's tokens and whether each is punctuation, worked out once per batch
    by_chunk: dict[str, tuple[list[str], list[bool]]] = {}
    hard: list[str] = []
    for chunk in chunks:
        if (chunk in rules or prefix(chunk) is not None or suffix(chunk) is not None
                or next(infixes(chunk), None) is not None):
            hard.append(chunk)
        else:
            lower = chunk.lower()
            by_chunk[chunk] = ([lower], [_is_punct(lower)])
    for group in _groups(hard, _CHUNK_TEXT_CHARS):
        per_chunk: list[list[str]] = [[]]
        for token in tok("\n".join(group)):
            lower = token.lower_
            if lower == "\n":  # the line between two chunks (a chunk holds no whitespace)
                per_chunk.append([])
            else:
                per_chunk[-1].append(lower)
        if len(per_chunk) != len(group):  # cannot happen: a chunk holds no line break
            raise AssertionError("chunk tokenisation out of step")
        by_chunk.update((chunk, _with_punct(lowers))
                        for chunk, lowers in zip(group, per_chunk, strict=True))
    out = []
    for text, layout in zip(texts, layouts, strict=True):
        lowers: list[str] = []
        punct: list[bool] = []
        last = ""  # the last character of the previous chunk, lower-cased
        whole = False
        for piece in layout:
            got = by_chunk.get(piece)
            if got is None:
                lowers.append(piece)  # whitespace: one token, never a chunk
                punct.append(True)
                continue
            if last and (last, piece[0].lower()) in special_pairs:
                whole = True
                break
            lowers.extend(got[0])
            punct.extend(got[1])
            last = piece[-1].lower()
        out.append(_with_punct([t.lower_ for t in nlp.tokenizer(text)]) if whole
                   else (lowers, punct))
    return out


def _groups(chunks: list[str], max_chars: int) -> Iterator[list[str]]:
    """Consecutive groups of chunks whose joined text stays under ``max_chars`` (spaCy
    refuses a text of 2**30 characters; a huge batch of distinct chunks could reach it)."""
    group: list[str] = []
    size = 0
    for chunk in chunks:
        if group and size + len(chunk) + 1 > max_chars:
            yield group
            group, size = [], 0
        group.append(chunk)
        size += len(chunk) + 1
    if group:
        yield group


def _joined_lower(texts: Sequence[str]) -> str | None:
    """:func:`join_lower` of a batch, or None when an item is no str (the prefilter then
    raises the coded error that names it)."""
    try:
        return join_lower(texts)[0]
    except TypeError:
        return None


def _encodable(text: str) -> str:
    """spaCy cannot hash lone surrogates; replace them (only those) before tokenising."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _all_encodable(texts: Sequence[str]) -> Sequence[str]:
    """:func:`_encodable` of every message: one check of the whole batch in the common
    case (no lone surrogate anywhere), message by message only when there is one."""
    joined = "".join(texts)
    if joined.isascii():
        return texts
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return [_encodable(t) for t in texts]
    return texts


def _years(reference_year: int | Sequence[int] | None, n: int) -> Sequence[int]:
    if reference_year is None:
        return [_this_year()] * n
    if isinstance(reference_year, int):
        return [reference_year] * n
    return reference_year


def _rebuild_extractor(path: str, engine: str) -> IndicatorExtractor:
    return IndicatorExtractor(catalogue=path, prefilter=engine)
