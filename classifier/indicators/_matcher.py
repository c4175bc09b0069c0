"""Token matching of the catalogue's patterns, on plain data.

What spaCy's ``PhraseMatcher`` (``attr="LOWER"``) and ``Matcher`` did for the
catalogue, without building either: every template's compiled patterns (word sets and
slots, :func:`classifier.indicators._catalogue.compress`) and every raw token pattern are
indexed by their first token. Matching a tokenised message looks up each token in that
index and follows only the patterns that can start there, so its cost is proportional to
the message, not to the ~70,000 phrases the templates expand to. Building the index takes
milliseconds, so the extractor starts fast (no spaCy matcher to construct).

Semantics are spaCy's: a token matches ``{"LOWER": "w"}`` when its lower-case form is
``w``, ``{"LOWER": {"IN": [...]}}`` when it is one of them, ``{"LOWER": {"REGEX": r}}``
when ``re.search(r, lower)`` succeeds; ``OP`` ``?``, ``*`` and ``+`` as in spaCy; every
possible (start, end) of every pattern is returned. ``tests/test_matcher.py`` checks this
against spaCy's own matchers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ._catalogue import Catalogue

__all__ = ["TokenMatcher"]

# a compiled token test: (kind, value, op); kind 0: lower in a set, 1: regex search
_SET, _REGEX = 0, 1
Test = tuple[int, Any, str | None]


def _token_test(spec: Mapping[str, Any]) -> Test:
    value = spec["LOWER"]
    op = spec.get("OP")
    if isinstance(value, str):
        return (_SET, frozenset([value]), op)
    if "IN" in value:
        return (_SET, frozenset(str(w) for w in value["IN"]), op)
    return (_REGEX, re.compile(value["REGEX"]), op)


class TokenMatcher:
    """Finds every occurrence of every catalogue pattern in a list of lower-cased tokens.

    Parameters
    ----------
    catalogue : Catalogue

    Attributes
    ----------
    regex_owner : tuple of int
        For each prefilter regex (templates then raw patterns, indicator by indicator, the
        order of :meth:`Catalogue.prefilter_regexes`), the indicator it belongs to.

    Examples
    --------
    >>> from classifier.indicators import load_catalogue
    >>> m = TokenMatcher(load_catalogue())
    >>> [(k, s, e) for k, s, e in m.find(["are", "your", "parents", "home"])][:1]  # doctest: +SKIP
    [(40, 0, 4)]
    """

    def __init__(self, catalogue: Catalogue) -> None:
        slots = {name: _token_test(spec) for name, spec in catalogue.slots.items()}
        self.n_features = len(catalogue.indicators)
        patterns: list[tuple[int, int, tuple[Test, ...]]] = []
        owner: list[int] = []
        rx = 0
        for k, ind in enumerate(catalogue.indicators):
            for template in ind.templates:
                for p in template.patterns:
                    tests = tuple(slots[item[1]] if isinstance(item, tuple)
                                  else (_SET, item, None) for item in p)
                    patterns.append((k, rx, tests))
                owner.append(k)
                rx += 1
            for raw in ind.patterns:
                patterns.append((k, rx, tuple(_token_test(t) for t in raw)))
                owner.append(k)
                rx += 1
        self.regex_owner = tuple(owner)
        self._patterns = patterns
        # index by the first token: a word -> patterns that can start with it; patterns
        # whose first test is a regex or optional are tried at every token
        self._by_word: dict[str, list[int]] = {}
        self._anywhere: list[int] = []  # tried at every token
        self._digits: list[int] = []  # tried only at tokens that start with a digit
        for i, (_, _, tests) in enumerate(patterns):
            for test in _first_tests(tests):
                kind, value, _ = test
                if kind == _SET:
                    for w in value:
                        bucket = self._by_word.setdefault(w, [])
                        if not bucket or bucket[-1] != i:
                            bucket.append(i)
                elif _digits_only(value):
                    if i not in self._digits:
                        self._digits.append(i)
                elif i not in self._anywhere:
                    self._anywhere.append(i)
        self._simple = [all(op is None for _, _, op in tests) for _, _, tests in patterns]
        # per prefilter regex, its patterns and the words each can start with: a message
        # is matched only against the patterns of the regexes that hit it
        self._of_regex: list[list[int]] = [[] for _ in range(rx)]
        self._first_words: list[list[str]] = [[] for _ in patterns]
        for word, bucket in self._by_word.items():
            for i in bucket:
                self._first_words[i].append(word)
        for i, (_, r, _) in enumerate(patterns):
            self._of_regex[r].append(i)
        self._digit_set = frozenset(self._digits)
        self._anywhere_set = frozenset(self._anywhere)

    def find(self, lowers: Sequence[str], allowed: Collection[int] | None = None,
             ) -> list[tuple[int, int, int]]:
        """Every match as ``(indicator, start, end)``; ``allowed`` limits the search to
        the patterns of those prefilter regexes (the ones that hit the message)."""
        out: list[tuple[int, int, int]] = []
        n = len(lowers)
        patterns, simple = self._patterns, self._simple
        by_word, anywhere, digits = self._by_word, self._anywhere, self._digits
        if allowed is not None:
            # the index of the allowed patterns only, each bucket in pattern order (the
            # order of the full index, so matches come out in the same order); so are the
            # patterns tried at every token (a first slot such as "s1" or "jss2")
            mine = sorted(i for r in allowed for i in self._of_regex[r])
            by_word = {}
            for i in mine:
                for word in self._first_words[i]:
                    by_word.setdefault(word, []).append(i)
            digits = [i for i in mine if i in self._digit_set]
            anywhere = [i for i in mine if i in self._anywhere_set]
        for start in range(n):
            token = lowers[start]
            cands = by_word.get(token)
            if anywhere or (digits and token[:1].isdigit()):
                extra = anywhere + digits if token[:1].isdigit() else anywhere
                cands = list(dict.fromkeys((cands or []) + extra))
            if not cands:
                continue
            for i in cands:
                k, _, tests = patterns[i]
                if simple[i]:
                    end = start + len(tests)
                    if end <= n and all(_ok(t, lowers[start + j]) for j, t in enumerate(tests)):
                        out.append((k, start, end))
                else:
                    ends: set[int] = set()
                    _ends(tests, 0, start, lowers, ends)
                    out.extend((k, start, e) for e in sorted(ends) if e > start)
        return out


def _first_tests(tests: tuple[Test, ...]) -> list[Test]:
    """The tests a match can start with: the first, and past optional ones the next."""
    out = []
    for test in tests:
        out.append(test)
        if test[2] not in ("?", "*"):
            break
    return out


_PROBES = ("a", "x", "you", "ok", "\u00e9", "_", "?", "x1", "lol", "yo")


def _digits_only(rx: re.Pattern[str]) -> bool:
    """Whether a token regex can only match tokens that start with a digit (the number
    slots): it matches none of a set of probes that start otherwise, and it is anchored
    on a digit class. Such patterns are tried only at tokens that start with a digit."""
    src = rx.pattern
    digit_start = re.match(r"^\^(\(\?:)*(\[[0-9]|\d|[0-9])", src) is not None
    return digit_start and not any(rx.search(p) for p in _PROBES)


def _ok(test: Test, token: str) -> bool:
    kind, value, _ = test
    return token in value if kind == _SET else value.search(token) is not None


def _ends(tests: tuple[Test, ...], i: int, pos: int, lowers: Sequence[str],
          out: set[int]) -> None:
    """Every end position of ``tests[i:]`` matched from ``pos`` (spaCy's OP semantics)."""
    if i == len(tests):
        out.add(pos)
        return
    test = tests[i]
    op = test[2]
    n = len(lowers)
    if op is None:
        if pos < n and _ok(test, lowers[pos]):
            _ends(tests, i + 1, pos + 1, lowers, out)
        return
    if op in ("?", "*"):
        _ends(tests, i + 1, pos, lowers, out)  # zero occurrences
    limit = 1 if op == "?" else n
    k = 0
    while k < limit and pos + k < n and _ok(test, lowers[pos + k]):
        k += 1
        _ends(tests, i + 1, pos + k, lowers, out)
