"""Coded error messages, kept in one place (after spaCy's ``Errors`` catalogue).

Every message names *where* the problem is (file, line, record, field, entry) and
*what* it is. No message ever contains message text: where a value is shown, it is a
structural value (a key, a type name, an id), never the content of a conversation.
"""

from __future__ import annotations


class Errors:
    """The error catalogue. Each entry is a ``str.format`` template."""

    # Input to the extractor (E0xx)
    E001 = "[E001] Message text must be str, got {type_name} (record {record})."
    E002 = "[E002] Unknown prefilter engine {engine!r}; expected one of {choices}."
    E003 = "[E003] The prefilter engine 'hyperscan' was requested but the package is not installed."

    # Indicator catalogue (E1xx)
    E100 = "[E100] Indicator catalogue {file}: the file does not exist."
    E101 = "[E101] Indicator catalogue {file}, line {line}: not valid JSON ({problem})."
    E102 = "[E102] Indicator catalogue {file}, line 1: the first line must be the header object ({problem})."
    E103 = "[E103] Indicator catalogue {file}, {entry}: missing required key {key!r}."
    E104 = "[E104] Indicator catalogue {file}, {entry}: key {key!r} must be {expected}, got {got}."
    E105 = "[E105] Indicator catalogue {file}, {entry}: unknown key {key!r} (allowed: {allowed})."
    E106 = "[E106] Indicator catalogue {file}, {entry}: duplicate indicator id {id!r} (first on line {first})."
    E107 = "[E107] Indicator catalogue {file}, {entry}: unknown category {value!r} (known: {known})."
    E108 = "[E108] Indicator catalogue {file}, {entry}: unknown risk factor {value!r} (known: {known})."
    E109 = "[E109] Indicator catalogue {file}, {entry}, template {index}: {problem}."
    E110 = "[E110] Indicator catalogue {file}, {entry}, template {index}: unknown slot <{slot}> (known: {known})."
    E111 = "[E111] Indicator catalogue {file}, {entry}, template {index}: expands to {count} phrases, more than the limit of {limit}."
    E112 = "[E112] Indicator catalogue {file}, {entry}, pattern {index}: spaCy rejects the token pattern: {problem}."
    E113 = "[E113] Indicator catalogue {file}, {entry}: REGEX {regex!r} must be anchored with ^ and $ and compile ({problem})."
    E114 = "[E114] Indicator catalogue {file}, {entry}: token attribute {key!r} is not supported (supported: {allowed})."
    E115 = "[E115] Indicator catalogue {file}, {entry}: invalid age rule ({problem})."
    E116 = "[E116] Indicator catalogue {file}, {entry}: an indicator needs at least one template or pattern."
    E117 = "[E117] Indicator catalogue {file}, {entry}: id {id!r} must be lower-case dotted words like 'secrecy.keep_secret'."
    E118 = "[E118] Indicator catalogue {file}: the catalogue holds no indicators."
    E119 = "[E119] Indicator catalogue for language {language!r} not found; bundled: {known}."

    # Interchange records (E2xx)
    E200 = "[E200] Line {line}: not valid JSON ({problem})."
    E201 = "[E201] Line {line}: a record must be a JSON object, got {got}."
    E202 = "[E202] Line {line}, field {field!r}: missing."
    E203 = "[E203] Line {line}, field {field!r}: must be {expected}, got {got}."
    E204 = "[E204] Line {line}, field {field!r}: invalid value ({problem})."
    E205 = "[E205] Line {line}, field {field!r}: sender {sender!r} is not a participant of the conversation."
    E206 = "[E206] Line {line}, field {field!r}: duplicate participant id {id!r}."
    E207 = "[E207] Line {line}, field {field!r}: timestamp is not ISO 8601 with a time zone."
    E208 = "[E208] Line {line}, field {field!r}: unknown field (allowed: {allowed})."
    # Message rows (a DataFrame or a stream: one message per row)
    E210 = "[E210] Conversation {conversation!r}, {record}, field {field!r}: missing."
    E211 = "[E211] Conversation {conversation!r}, {record}, field {field!r}: invalid value ({problem})."

    # Message tables (a Spark DataFrame of message rows)
    E220 = "[E220] The messages table has no column {column!r} (it has: {columns})."
    E221 = "[E221] Column {column!r} must be {expected}, got {got}."
    E222 = "[E222] idle_timeout needs 'ts' as a timestamp column (an event-time watermark is set on it)."

    # Conversation state (E3xx)
    E300 = "[E300] Cannot merge states of different conversations ({left!r} and {right!r})."
    E301 = "[E301] Serialised conversation state is invalid ({problem})."
    E302 = "[E302] The state was built with catalogue {got!r}, this one needs {expected!r}."
    E303 = "[E303] Message {index}: timestamp must be a timezone-aware datetime or epoch seconds, got {type_name}."


class ClassifierError(Exception):
    """Base class of every error this library raises on purpose."""


class CatalogueError(ClassifierError, ValueError):
    """The indicator catalogue file is broken; the message names file, entry and problem."""


class RecordError(ClassifierError, ValueError):
    """A record of the interchange format is invalid.

    Attributes
    ----------
    line : int
        1-based line number in the input file (or index in the batch).
    field : str
        Dotted path of the offending field, for example ``messages[3].ts``.
    """

    def __init__(self, message: str, *, line: int, field: str) -> None:
        super().__init__(message)
        self.line = line
        self.field = field


class StateError(ClassifierError, ValueError):
    """A conversation state cannot be merged, restored or updated."""


class InputTypeError(ClassifierError, TypeError):
    """The extractor was given something that is not text."""
