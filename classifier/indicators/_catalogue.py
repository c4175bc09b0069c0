"""The indicator catalogue: a closed, versioned list of indicators kept as data.

One JSON Lines file per language (``data/<lang>.jsonl``). The first line is the header
(catalogue name, language, version, the closed lists of categories and risk factors,
the token *slots* used by templates, and number words); every other line is one
indicator. The file is validated whole at load time; every error names the file, the
entry and the problem (codes E100-E119 in :mod:`classifier._errors`).

Templates
---------
An indicator lists *templates*, a compact way to write many token patterns::

    (are|r) (your|ur) (parents|mom) (home|around)?  -> 2 x 2 x 2 x 3 phrases
    im <AGE> (yo|years old)?                         -> token patterns with a slot

Words are separated by spaces; ``(a|b c)`` is a group of alternatives (an alternative
may hold several words), ``(...)?`` makes a group optional, ``<NAME>`` is a slot from the
header (one spaCy token pattern, for example a number range), and ``\\?`` is a literal
``?``. Each expanded phrase is tokenised with spaCy's tokenizer, so ``dont`` in a
template matches the tokens ``do`` ``nt`` exactly as in a message. Raw spaCy token
patterns may be given under ``patterns`` and are checked with spaCy's validator.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._cache import read_entry, write_entry
from .._errors import CatalogueError, Errors

__all__ = [
    "AgeRule",
    "Catalogue",
    "Indicator",
    "Item",
    "Template",
    "available_languages",
    "load_catalogue",
]

DATA_DIR = Path(__file__).parent / "data"
MAX_EXPANSION = 10000
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_SLOT_RE = re.compile(r"^<([A-Z][A-Z0-9_]*)>$")
_HEADER_KEYS = ("catalogue", "language", "version", "description", "categories",
                "risk_factors", "slots", "number_words")
_ENTRY_KEYS = ("id", "category", "risk_factor", "description", "templates", "patterns", "age",
               "not_followed_by", "not_preceded_by", "message_start", "message_end",
               "recogniser", "examples", "counterexamples")
_OPTIONAL_HEADER_KEYS = ("recogniser",)
_ENTRY_REQUIRED = ("id", "category", "risk_factor", "description")
_TOKEN_ATTRS = ("LOWER", "OP")
_OPS = ("?", "*", "+")
# disclosed: the number is an age; birth_year: a year of birth; number: the number plus
# `offset` is an age band (school grades); band: a fixed band; candidate: a bare number that
# becomes a disclosed age only when it answers the other party's age question (the state
# decides); turning: "turning N" / "N in march" (between N-1 and N); correction: an age that
# replaces the speaker's earlier claims ("im actually 36"); retraction: an earlier claimed
# age is withdrawn ("im not 17"); decade: "in my thirties" (N to N+9)
AGE_KINDS = ("disclosed", "birth_year", "number", "band", "candidate", "turning", "correction",
             "retraction", "decade")


@dataclass(frozen=True)
class AgeRule:
    """How a match of an indicator becomes numeric age evidence.

    ``disclosed``: the number in the match is an age; ``birth_year``: it is a year of
    birth; ``number``: the number plus ``offset`` gives an age band (school grades);
    ``band``: a fixed age band.
    """

    kind: str
    offset: tuple[float, float] = (0.0, 0.0)
    band: tuple[float, float] = (0.0, 0.0)


# An item of a compiled token pattern: a set of lower-cased words (one token, any of
# them) or ("slot", NAME), a token pattern from the header's slots.
Item = frozenset[str] | tuple[str, str]


@dataclass(frozen=True)
class Template:
    """One parsed template: its source, its token patterns and its prefilter regex.

    ``patterns`` is the template's expansion folded back into few patterns (sequences that
    differ at one position merge into a set of words there); they match exactly the
    token sequences of the ``n_phrases`` expanded phrases.
    """

    source: str
    patterns: tuple[tuple[Item, ...], ...]
    regex: str  # a superset regex over lower-cased text (for the prefilter)
    n_phrases: int = 0

    @property
    def has_slots(self) -> bool:
        """Whether a pattern holds a slot (a number or word-class token)."""
        return any(isinstance(item, tuple) for p in self.patterns for item in p)


@dataclass(frozen=True)
class Indicator:
    """One catalogue entry (the unit the extractor counts)."""

    id: str
    category: str
    risk_factor: str
    description: str
    templates: tuple[Template, ...]
    patterns: tuple[tuple[Mapping[str, Any], ...], ...]
    pattern_regexes: tuple[str, ...]
    age: AgeRule | None = None
    not_followed_by: frozenset[str] = frozenset()
    not_preceded_by: frozenset[str] = frozenset()
    message_start: bool = False
    message_end: bool = False
    recogniser: str | None = None  # a learned recogniser's category label (no templates)
    examples: tuple[str, ...] = ()
    counterexamples: tuple[str, ...] = ()
    line: int = 0

    @property
    def n_patterns(self) -> int:
        """Number of concrete patterns (expanded template phrases plus raw patterns)."""
        return sum(t.n_phrases for t in self.templates) + len(self.patterns)

    @property
    def regexes(self) -> tuple[str, ...]:
        return tuple(t.regex for t in self.templates) + self.pattern_regexes


@dataclass(frozen=True)
class Catalogue:
    """A validated indicator catalogue.

    Examples
    --------
    >>> cat = load_catalogue("en")
    >>> cat.language, len(cat) >= 40
    ('en', True)
    >>> cat.feature_names()[0]
    'age_question.how_old'
    """

    name: str
    language: str
    version: str
    description: str
    path: str
    sha256: str
    categories: Mapping[str, Mapping[str, Any]]
    risk_factors: Mapping[str, str]
    slots: Mapping[str, Mapping[str, Any]]
    number_words: Mapping[str, int]
    indicators: tuple[Indicator, ...] = field(default=())
    recogniser_file: str | None = None
    # the learned recognisers (WordRecogniser), when the file is present
    recogniser: Any = field(default=None, repr=False, compare=False)
    text_sha256: str = ""  # the JSONL file alone; sha256 covers the recognisers too

    def __len__(self) -> int:
        return len(self.indicators)

    def with_recogniser(self, recogniser: Any) -> Catalogue:
        """This catalogue with other learned recognisers (its sha256 changes with them).

        Raises
        ------
        CatalogueError
            If an indicator names a recogniser label the recognisers do not have.
        """
        from dataclasses import replace

        text_sha = self.text_sha256 or self.sha256
        if recogniser is None:
            return replace(self, recogniser=None, sha256=text_sha, text_sha256=text_sha)
        missing = sorted({i.recogniser for i in self.indicators if i.recogniser}
                         - set(recogniser.labels))
        if missing:
            raise CatalogueError(Errors.E120.format(
                file=self.path, entry="recogniser",
                problem=f"no learned recogniser for {', '.join(missing)}"))
        sha = hashlib.sha256(f"{text_sha}:{recogniser.sha256}".encode()).hexdigest()
        return replace(self, recogniser=recogniser, sha256=sha, text_sha256=text_sha)

    def feature_names(self) -> tuple[str, ...]:
        """Indicator ids in vector order."""
        return tuple(ind.id for ind in self.indicators)

    def category_names(self) -> tuple[str, ...]:
        """Category names in header order (the state's category order)."""
        return tuple(self.categories)

    @property
    def n_patterns(self) -> int:
        return sum(ind.n_patterns for ind in self.indicators)

    def prefilter_regexes(self) -> tuple[tuple[str, ...], tuple[bool, ...]]:
        """The prefilter's superset regexes, indicator by indicator (templates, then raw
        patterns), and whether each needs token tests beyond words (slots, raw patterns)."""
        regexes: list[str] = []
        slotted: list[bool] = []
        for ind in self.indicators:
            for template in ind.templates:
                regexes.append(template.regex)
                slotted.append(template.has_slots)
            regexes.extend(ind.pattern_regexes)
            slotted.extend([True] * len(ind.pattern_regexes))
        return tuple(regexes), tuple(slotted)


def available_languages() -> tuple[str, ...]:
    """Languages with a bundled catalogue."""
    return tuple(sorted(p.stem for p in DATA_DIR.glob("*.jsonl")))


_TOKENIZERS: dict[str, Any] = {}
_FRAGMENTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
# Between the tokens of a spaCy match the text holds nothing or one plain space (other
# white space becomes a token of its own), so the superset regexes join tokens with:
_GAP = "[ ]?"
# Word edges for the superset regexes: a match must start after a non-alphanumeric
# character (or the start of the text) and end before one (or the end of the text).
# Hyperscan has no look-around, so the edges consume a character; the `re` engine swaps
# them for look-arounds (see RE_EDGES), as its non-overlapping search would otherwise
# lose a match whose edge character the previous match took.
LEFT_EDGE = "(?:^|[^a-z0-9])"
RIGHT_EDGE = "(?:[^a-z0-9]|$)"
# message_start: only spaces and punctuation before the match (batches join with NUL)
MESSAGE_START = "(?:^|\\x00)[^a-z0-9\\x00]*"
RE_EDGES = {
    LEFT_EDGE: "(?<![a-z0-9])",
    RIGHT_EDGE: "(?![a-z0-9])",
    MESSAGE_START: "(?:^|(?<=\\x00))[^a-z0-9\\x00]*",
}


def _split_fragments(language: str) -> tuple[frozenset[str], frozenset[str]]:
    """Tokens spaCy can cut out of the middle of a word: (heads, tails).

    From the tokenizer's exceptions (``dont`` -> ``do`` ``nt``, ``im`` -> ``i`` ``m``) and
    unit suffixes after digits (``10km`` -> ``10`` ``km``). A template may only claim a word
    edge before its first token if that token is never a tail, and after its last token if
    that token is never a head, so the superset regex stays sound.
    """
    if language not in _FRAGMENTS:
        _tokenize_word("", language)
        tokenizer = _TOKENIZERS[language]
        from spacy.attrs import ORTH

        heads, tails = set(), set()
        for pieces in tokenizer.rules.values():
            orths = [str(p.get(ORTH, p.get("ORTH", ""))) for p in pieces]
            for a, b in itertools.pairwise(orths):
                if a and b and a[-1].isalnum() and b[0].isalnum():
                    heads.add(a.lower())
                    tails.add(b.lower())
        try:
            from spacy.lang.char_classes import UNITS

            tails.update(u.lower() for u in UNITS.split("|"))
        except ImportError:  # pragma: no cover
            pass
        _FRAGMENTS[language] = (frozenset(heads), frozenset(tails))
    return _FRAGMENTS[language]


def _tokenize_word(word: str, language: str) -> tuple[str, ...]:
    """Split one template word into tokens with the language's blank spaCy tokenizer."""
    tokenizer = _TOKENIZERS.get(language)
    if tokenizer is None:
        import spacy

        tokenizer = _TOKENIZERS[language] = spacy.blank(language).tokenizer
    return tuple(t.lower_ for t in tokenizer(word))


class _Ctx:
    """Where we are in the file, for error messages."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.entry = "header"

    def error(self, template: str, **kw: Any) -> CatalogueError:
        return CatalogueError(template.format(file=self.file, entry=self.entry, **kw))


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_type(ctx: _Ctx, obj: Mapping[str, Any], key: str, types: type | tuple[type, ...],
                expected: str) -> Any:
    value = obj[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,))):
        raise ctx.error(Errors.E104, key=key, expected=expected, got=_type_name(value))
    return value


def _str_list(ctx: _Ctx, obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    if key not in obj:
        return ()
    value = _check_type(ctx, obj, key, list, "a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise ctx.error(Errors.E104, key=key, expected="a list of strings", got="a list with "
                        "non-strings")
    return tuple(value)


def _token_regex(ctx: _Ctx, spec: Mapping[str, Any]) -> str:
    """Superset regex (over lower-cased text) of one token pattern dict."""
    for key in spec:
        if key not in _TOKEN_ATTRS:
            raise ctx.error(Errors.E114, key=key, allowed=", ".join(_TOKEN_ATTRS))
    if "LOWER" not in spec:
        raise ctx.error(Errors.E114, key="(none)", allowed="LOWER with an optional OP")
    value = spec["LOWER"]
    if isinstance(value, str):
        return re.escape(value.lower())
    if isinstance(value, Mapping) and set(value) == {"IN"} and isinstance(value["IN"], list):
        words = sorted({str(w).lower() for w in value["IN"]}, key=lambda w: (-len(w), w))
        return "(?:" + "|".join(re.escape(w) for w in words) + ")"
    if isinstance(value, Mapping) and set(value) == {"REGEX"} and isinstance(value["REGEX"], str):
        rx = value["REGEX"]
        problem = ""
        try:
            re.compile(rx)
        except re.error as exc:
            problem = str(exc)
        if problem or not (rx.startswith("^") and rx.endswith("$")):
            raise ctx.error(Errors.E113, regex=rx, problem=problem or "not anchored")
        return "(?:" + rx[1:-1] + ")"
    raise ctx.error(Errors.E114, key="LOWER", allowed="a string, {IN: [...]} or {REGEX: '^...$'}")


def _validate_spacy_pattern(ctx: _Ctx, pattern: Any, index: int) -> None:
    from spacy.schemas import validate_token_pattern

    problems = validate_token_pattern(pattern)
    if problems:
        raise ctx.error(Errors.E112, index=index, problem="; ".join(problems))


def _pattern_regex(ctx: _Ctx, pattern: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    required = 0
    for spec in pattern:
        rx = _token_regex(ctx, spec)
        op = spec.get("OP")
        if op is not None and op not in _OPS:
            raise ctx.error(Errors.E114, key=f"OP {op!r}", allowed="OP one of ? * +")
        if op is None or op == "+":
            required += 1
        parts.append(f"(?:{rx}{_GAP}){op}" if op else f"{rx}{_GAP}")
    if not required:
        raise ctx.error(Errors.E112, index=0, problem="every token is optional; the pattern "
                        "would match nothing")
    return "".join(parts)


def _parse_template(ctx: _Ctx, source: str, index: int, header: Mapping[str, Any],
                    slot_regex: Mapping[str, str], message_start: bool = False) -> Template:
    """Parse a template (groups may nest), expand it, and build its superset regex."""
    slots = header["slots"]
    pos = 0
    n = len(source)

    def fail(problem: str) -> CatalogueError:
        return ctx.error(Errors.E109, index=index, problem=problem)

    def word_items(word: str) -> list[tuple[str, str]]:
        m = _SLOT_RE.match(word)
        if m:
            if m.group(1) not in slots:
                raise ctx.error(Errors.E110, index=index, slot=m.group(1),
                                known=", ".join(slots) or "(none)")
            return [("slot", m.group(1))]
        if "<" in word or ">" in word:
            raise fail(f"malformed slot {word!r}")
        literal = word.replace("\\", "")
        return [("lit", tok) for tok in _tokenize_word(literal, header["language"])]

    # A parsed node is a list of options; each option is (phrases, regex) where phrases
    # are item tuples. A sequence multiplies its parts' options out.
    def parse_sequence(depth: int) -> tuple[list[tuple[tuple[str, str], ...]], str]:
        nonlocal pos
        phrases: list[tuple[tuple[str, str], ...]] = [()]
        regex = ""
        while pos < n:
            ch = source[pos]
            if ch.isspace():
                pos += 1
                continue
            if ch in "|)":
                if depth == 0:
                    raise fail(f"{ch!r} outside a group at column {pos + 1}")
                break
            if ch == "(":
                opened = pos
                pos += 1
                alternatives = []
                while True:
                    alt_phrases, alt_regex = parse_sequence(depth + 1)
                    if not alt_regex:
                        raise fail(f"empty alternative in the group at column {opened + 1}; "
                                   "use (...)? for an optional group")
                    alternatives.append((alt_phrases, alt_regex))
                    if pos >= n:
                        raise fail(f"unbalanced parentheses: the group at column {opened + 1} "
                                   "is not closed")
                    if source[pos] == ")":
                        pos += 1
                        break
                    pos += 1  # "|"
                optional = pos < n and source[pos] == "?"
                if optional:
                    pos += 1
                options = [p for alt, _ in alternatives for p in alt] + ([()] if optional else [])
                group_rx = "(?:" + "|".join(sorted({r for _, r in alternatives},
                                                   key=lambda r: (-len(r), r))) + ")"
                regex += group_rx + ("?" if optional else "")
            else:
                start = pos
                while pos < n and not source[pos].isspace() and source[pos] not in "()|":
                    pos += 1
                items = tuple(word_items(source[start:pos]))
                options = [items]
                regex += "".join(
                    (slot_regex[v] if kind == "slot" else re.escape(v)) + _GAP
                    for kind, v in items
                )
            if len(phrases) * len(options) > MAX_EXPANSION:
                raise ctx.error(Errors.E111, index=index, count=f"more than {MAX_EXPANSION}",
                                limit=MAX_EXPANSION)
            phrases = [a + b for a in phrases for b in options]
        return phrases, regex

    phrases, regex = parse_sequence(0)
    unique = tuple(dict.fromkeys(phrases))
    if not regex or any(not p for p in unique):
        raise fail("the template has no required part")
    heads, tails = _split_fragments(header["language"])

    def words_of(item: tuple[str, str]) -> list[str] | None:
        if item[0] == "lit":
            return [item[1]]
        value = slots[item[1]].get("LOWER")
        if isinstance(value, str):
            return [value.lower()]
        if isinstance(value, Mapping) and "IN" in value:
            return [str(w).lower() for w in value["IN"]]
        return None  # a REGEX slot (numbers): safe on the left, never on the right

    def left_safe(item: tuple[str, str]) -> bool:
        words = words_of(item)
        return words is None or all(w[:1].isalnum() and w not in tails for w in words)

    def right_safe(item: tuple[str, str]) -> bool:
        words = words_of(item)
        return words is not None and all(w[-1:].isalpha() and w not in heads for w in words)

    if regex.endswith(_GAP):
        regex = regex[:-len(_GAP)]
    if message_start:
        regex = MESSAGE_START + regex
    elif all(left_safe(p[0]) for p in unique):
        regex = LEFT_EDGE + regex
    if all(right_safe(p[-1]) for p in unique):
        regex += RIGHT_EDGE
    return Template(source, tuple(compress(unique)), regex, len(unique))


def compress(phrases: Iterable[tuple[tuple[str, str], ...]]) -> list[tuple[Item, ...]]:
    """Merge expanded token sequences that differ at one literal position into word sets.

    Template expansion multiplies alternatives out; matching cost grows with the number of
    patterns, so the product is folded back (exactly: the merged patterns match the same
    token sequences).
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
    return sorted(pats, key=lambda p: repr([sorted(i) if isinstance(i, frozenset) else i
                                            for i in p]))


def _age_rule(ctx: _Ctx, raw: Any) -> AgeRule:
    if not isinstance(raw, Mapping) or raw.get("kind") not in AGE_KINDS:
        raise ctx.error(Errors.E115, problem=f"'kind' must be one of {', '.join(AGE_KINDS)}")
    unknown = set(raw) - {"kind", "offset", "band"}
    if unknown:
        raise ctx.error(Errors.E115, problem=f"unknown key(s) {', '.join(sorted(unknown))}")

    def pair(key: str) -> tuple[float, float]:
        v = raw.get(key)
        if (not isinstance(v, list) or len(v) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                or v[0] > v[1]):
            raise ctx.error(Errors.E115, problem=f"'{key}' must be [low, high] with low <= high")
        return (float(v[0]), float(v[1]))

    kind = raw["kind"]
    if kind == "number":
        return AgeRule(kind, offset=pair("offset"))
    if kind == "band":
        return AgeRule(kind, band=pair("band"))
    return AgeRule(kind)


def _parse_header(ctx: _Ctx, header: Any, problem_if_not: str) -> dict[str, Any]:
    if not isinstance(header, dict) or "catalogue" not in header:
        raise CatalogueError(Errors.E102.format(file=ctx.file, problem=problem_if_not))
    for key in header:
        if key not in _HEADER_KEYS + _OPTIONAL_HEADER_KEYS:
            raise ctx.error(Errors.E105, key=key,
                            allowed=", ".join(_HEADER_KEYS + _OPTIONAL_HEADER_KEYS))
    for key in _HEADER_KEYS:
        if key not in header:
            raise ctx.error(Errors.E103, key=key)
    for key in ("catalogue", "language", "version", "description"):
        _check_type(ctx, header, key, str, "a string")
    for key in ("categories", "risk_factors", "slots", "number_words"):
        _check_type(ctx, header, key, dict, "an object")
    try:
        import spacy.util

        spacy.util.get_lang_class(header["language"])
    except Exception:
        raise ctx.error(Errors.E104, key="language", expected="a language code spaCy knows",
                        got=repr(header["language"])) from None
    for name, cat in header["categories"].items():
        if not isinstance(cat, dict) or "description" not in cat or "stage" not in cat:
            raise ctx.error(Errors.E104, key=f"categories.{name}",
                            expected="an object with 'stage' and 'description'",
                            got=_type_name(cat))
    for name, spec in header["slots"].items():
        if not isinstance(spec, dict):
            raise ctx.error(Errors.E104, key=f"slots.{name}", expected="a token pattern object",
                            got=_type_name(spec))
        ctx.entry = f"header slot <{name}>"
        _validate_spacy_pattern(ctx, [spec], 0)
        if "OP" in spec:
            raise ctx.error(Errors.E114, key="OP", allowed="LOWER (a slot is one token)")
    ctx.entry = "header"
    for word, value in header["number_words"].items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(Errors.E104, key=f"number_words.{word}", expected="an integer",
                            got=_type_name(value))
    return header


def _parse_entry(ctx: _Ctx, obj: Any, header: Mapping[str, Any],
                 slot_regex: Mapping[str, str], line: int) -> Indicator:
    if not isinstance(obj, dict):
        raise ctx.error(Errors.E104, key="(entry)", expected="an object", got=_type_name(obj))
    if isinstance(obj.get("id"), str):
        ctx.entry = f"line {line} ({obj['id']})"
    for key in obj:
        if key not in _ENTRY_KEYS:
            raise ctx.error(Errors.E105, key=key, allowed=", ".join(_ENTRY_KEYS))
    for key in _ENTRY_REQUIRED:
        if key not in obj:
            raise ctx.error(Errors.E103, key=key)
        _check_type(ctx, obj, key, str, "a string")
    ind_id = obj["id"]
    if not _ID_RE.match(ind_id):
        raise ctx.error(Errors.E117, id=ind_id)
    if obj["category"] not in header["categories"]:
        raise ctx.error(Errors.E107, value=obj["category"], known=", ".join(header["categories"]))
    if obj["risk_factor"] not in header["risk_factors"]:
        raise ctx.error(Errors.E108, value=obj["risk_factor"],
                        known=", ".join(header["risk_factors"]))
    message_start = obj.get("message_start", False)
    message_end = obj.get("message_end", False)
    for key, flag in (("message_start", message_start), ("message_end", message_end)):
        if not isinstance(flag, bool):
            raise ctx.error(Errors.E104, key=key, expected="true or false", got=_type_name(flag))
    recogniser = obj.get("recogniser")
    if recogniser is not None and not (isinstance(recogniser, str) and recogniser):
        raise ctx.error(Errors.E104, key="recogniser", expected="a category label",
                        got=_type_name(recogniser))
    templates = tuple(
        _parse_template(ctx, src, i, header, slot_regex, message_start)
        for i, src in enumerate(_str_list(ctx, obj, "templates"))
    )
    raw_patterns = obj.get("patterns", [])
    if not isinstance(raw_patterns, list):
        raise ctx.error(Errors.E104, key="patterns", expected="a list of token patterns",
                        got=_type_name(raw_patterns))
    pattern_regexes = []
    for i, pattern in enumerate(raw_patterns):
        _validate_spacy_pattern(ctx, pattern, i)
        rx = _pattern_regex(ctx, pattern)
        # a pattern that must open the message is looked for only there (as templates)
        pattern_regexes.append(MESSAGE_START + rx if message_start else rx)
    if not templates and not raw_patterns and recogniser is None:
        raise ctx.error(Errors.E116)
    if recogniser is not None and (templates or raw_patterns):
        raise ctx.error(Errors.E120, problem="a learned recogniser has no templates or patterns")
    age = _age_rule(ctx, obj["age"]) if obj.get("age") is not None else None
    return Indicator(
        id=ind_id,
        category=obj["category"],
        risk_factor=obj["risk_factor"],
        description=obj["description"],
        templates=templates,
        patterns=tuple(tuple(p) for p in raw_patterns),
        pattern_regexes=tuple(pattern_regexes),
        age=age,
        not_followed_by=frozenset(w.lower() for w in _str_list(ctx, obj, "not_followed_by")),
        not_preceded_by=frozenset(w.lower() for w in _str_list(ctx, obj, "not_preceded_by")),
        message_start=message_start,
        message_end=message_end,
        recogniser=recogniser,
        examples=_str_list(ctx, obj, "examples"),
        counterexamples=_str_list(ctx, obj, "counterexamples"),
        line=line,
    )


def load_catalogue(language: str = "en", *, path: str | Path | None = None,
                   recogniser: bool = True) -> Catalogue:
    """Load and validate an indicator catalogue.

    Parameters
    ----------
    language : str, default "en"
        Language of a bundled catalogue (see :func:`available_languages`).
    path : path-like, optional
        A catalogue file of your own; overrides ``language``.
    recogniser : bool, default True
        Load the learned recognisers the header names (when the file exists).

    Raises
    ------
    CatalogueError
        With the file, the entry and the problem.
    """
    if path is None:
        path = DATA_DIR / f"{language}.jsonl"
        if not path.exists():
            raise CatalogueError(Errors.E119.format(language=language,
                                                    known=", ".join(available_languages())))
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(Errors.E100.format(file=path))
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    key = _cache_key(sha)
    cached = read_entry(key)
    catalogue = None
    if cached is not None:
        try:
            catalogue = _from_json(json.loads(cached), str(path), sha)
        except (ValueError, KeyError, TypeError, IndexError):
            catalogue = None  # a damaged entry: parse again and rewrite it
    if catalogue is None:
        catalogue = _parse(path, raw, sha)
        write_entry(key, json.dumps(_to_json(catalogue), separators=(",", ":")).encode())
    if catalogue.recogniser_file and recogniser:
        file = path.parent / catalogue.recogniser_file
        if file.is_file():
            from ._recogniser import WordRecogniser

            catalogue = catalogue.with_recogniser(WordRecogniser.load(file))
    return catalogue


# what shapes a parsed catalogue besides its bytes: this module and spaCy's tokenizer
_CACHE_FORMAT = 5


def _cache_key(sha: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        spacy_version = version("spacy")
    except PackageNotFoundError:  # pragma: no cover
        spacy_version = "unknown"
    return f"catalogue-{sha[:32]}-f{_CACHE_FORMAT}-spacy{spacy_version}.json"


def _item_json(item: Item) -> Any:
    return {"s": item[1]} if isinstance(item, tuple) else sorted(item)


def _item_from(raw: Any) -> Item:
    return ("slot", raw["s"]) if isinstance(raw, dict) else frozenset(raw)


def _to_json(cat: Catalogue) -> dict[str, Any]:
    """A parsed, validated catalogue as plain JSON (the cache entry)."""
    return {
        "name": cat.name, "language": cat.language, "version": cat.version,
        "description": cat.description, "categories": cat.categories,
        "risk_factors": cat.risk_factors, "slots": cat.slots,
        "number_words": cat.number_words, "recogniser_file": cat.recogniser_file,
        "indicators": [{
            "id": i.id, "category": i.category, "risk_factor": i.risk_factor,
            "description": i.description,
            "templates": [[t.source, [[_item_json(it) for it in p] for p in t.patterns],
                           t.regex, t.n_phrases] for t in i.templates],
            "patterns": [list(p) for p in i.patterns],
            "pattern_regexes": list(i.pattern_regexes),
            "age": None if i.age is None else [i.age.kind, list(i.age.offset), list(i.age.band)],
            "not_followed_by": sorted(i.not_followed_by),
            "not_preceded_by": sorted(i.not_preceded_by), "message_start": i.message_start,
            "message_end": i.message_end, "recogniser": i.recogniser,
            "examples": list(i.examples), "counterexamples": list(i.counterexamples),
            "line": i.line} for i in cat.indicators],
    }


def _from_json(d: Mapping[str, Any], path: str, sha: str) -> Catalogue:
    indicators = tuple(Indicator(
        id=i["id"], category=i["category"], risk_factor=i["risk_factor"],
        description=i["description"],
        templates=tuple(Template(src, tuple(tuple(_item_from(it) for it in p) for p in pats),
                                 rx, n) for src, pats, rx, n in i["templates"]),
        patterns=tuple(tuple(p) for p in i["patterns"]),
        pattern_regexes=tuple(i["pattern_regexes"]),
        age=None if i["age"] is None else AgeRule(i["age"][0], tuple(i["age"][1]),
                                                  tuple(i["age"][2])),
        not_followed_by=frozenset(i["not_followed_by"]),
        not_preceded_by=frozenset(i["not_preceded_by"]), message_start=i["message_start"],
        message_end=i["message_end"], recogniser=i["recogniser"],
        examples=tuple(i["examples"]), counterexamples=tuple(i["counterexamples"]),
        line=i["line"]) for i in d["indicators"])
    return Catalogue(name=d["name"], language=d["language"], version=d["version"],
                     description=d["description"], path=path, sha256=sha,
                     categories=d["categories"], risk_factors=d["risk_factors"],
                     slots=d["slots"], number_words=d["number_words"], indicators=indicators,
                     recogniser_file=d["recogniser_file"], text_sha256=sha)


def _parse(path: Path, raw: bytes, sha: str) -> Catalogue:
    """Parse and validate a catalogue file (the slow path: spaCy tokenises templates)."""
    ctx = _Ctx(str(path))
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        problem = f"not valid UTF-8 at byte {exc.start}"
    else:
        problem = None
    if problem:
        raise CatalogueError(Errors.E101.format(file=path, line="?", problem=problem))
    decoded: list[tuple[int, Any]] = []
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            decoded.append((line_no, json.loads(text)))
        except json.JSONDecodeError as exc:
            raise CatalogueError(Errors.E101.format(file=path, line=line_no,
                                                    problem=f"{exc.msg} at column {exc.colno}")
                                 ) from None
    if not decoded:
        raise CatalogueError(Errors.E102.format(file=path, problem="the file is empty"))
    header = _parse_header(ctx, decoded[0][1], "no 'catalogue' key")
    slot_regex = {}
    for name, spec in header["slots"].items():
        ctx.entry = f"header slot <{name}>"
        slot_regex[name] = _token_regex(ctx, spec)
    indicators: list[Indicator] = []
    first_line: dict[str, int] = {}
    for line_no, obj in decoded[1:]:
        ctx.entry = f"line {line_no}"
        ind = _parse_entry(ctx, obj, header, slot_regex, line_no)
        if ind.id in first_line:
            raise ctx.error(Errors.E106, id=ind.id, first=first_line[ind.id])
        first_line[ind.id] = line_no
        indicators.append(ind)
    if not indicators:
        raise CatalogueError(Errors.E118.format(file=path))
    return Catalogue(
        name=header["catalogue"],
        language=header["language"],
        version=header["version"],
        description=header["description"],
        path=str(path),
        sha256=sha,
        categories=dict(header["categories"]),
        risk_factors=dict(header["risk_factors"]),
        slots=dict(header["slots"]),
        number_words=dict(header["number_words"]),
        indicators=tuple(indicators),
        recogniser_file=header.get("recogniser"),
        text_sha256=sha,
    )
