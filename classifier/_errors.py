"""Every error this library raises, coded and kept in one place (after spaCy's ``Errors``).

Each entry is written once, without its code: the :class:`ErrorsWithCodes` metaclass
prefixes the attribute name, so ``Errors.E202`` reads ``"[E202] Line {line}, ..."`` and a
code can never drift from its text. Code families:

- ``E0xx`` arguments and configuration; ``E1xx`` the indicator catalogue; ``E2xx`` input
  records (JSON Lines, message rows, tables); ``E3xx`` conversation state;
- ``M0xx`` risk models; ``G0xx``-``G1xx`` the guard (keys, store, review, redress);
- ``C0xx`` the command line; ``W0xx`` the review console (web pages and its API).

Every message names *where* the problem is (file, line, record, field, entry, case) and
*what* it is. No message ever carries a value taken from the input: not message text, not
a sender or participant id, not a conversation id, not an unknown key. Where a value is
shown it is one of this library's own (a field name, a type name, a limit, a case id).

>>> Errors.E202.format(line=3, field="messages[0].ts")
"[E202] Line 3, field 'messages[0].ts': missing."
>>> RecordError(Errors.E202.format(line=3, field="ts"), line=3, field="ts").code
'E202'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CatalogueError",
    "ClassifierError",
    "ConfigError",
    "Errors",
    "ErrorsWithCodes",
    "FirewallError",
    "InputTypeError",
    "MasterKeyError",
    "MissingDependencyError",
    "ModelError",
    "NotFittedError",
    "RecordError",
    "StateError",
    "StoreError",
    "TableSchemaError",
]


class ErrorsWithCodes(type):
    """Prefixes each message with its attribute name: ``[E202] ...``."""

    def __getattribute__(cls, code: str) -> Any:
        msg = super().__getattribute__(code)
        if code.startswith("_") or not isinstance(msg, str):
            return msg
        return f"[{code}] {msg}"

    def codes(cls) -> dict[str, str]:
        """Every code and its (prefixed) message template, in code order."""
        names = [k for k in type.__getattribute__(cls, "__dict__") if _CODE.match(k)]
        return {k: getattr(cls, k) for k in sorted(names)}


_CODE = re.compile(r"^[A-Z][0-9]{3}$")


class Errors(metaclass=ErrorsWithCodes):
    """The error catalogue. Each entry is a ``str.format`` template."""

    # Arguments and configuration (E0xx)
    E001 = "Message text must be str, got {type_name} (record {record})."
    E002 = "Unknown prefilter engine {engine!r}; expected one of {choices}."
    E003 = "The prefilter engine 'hyperscan' was requested but the package is not installed (pip install hyperscan: it has wheels for x86-64 Linux, where the default install includes it)."
    E004 = "{kind} objects hold message text and cannot be pickled or copied across processes."
    E005 = "{name} must be {expected}, got {got}."
    E006 = "{what} needs the [{extra}] extra: pip install 'solicitation-classifier[{extra}]'."
    E007 = "Invalid parameter {key!r} for {estimator}; valid parameters: {valid}."
    E008 = "{estimator} is not fitted; call fit first."
    E009 = "The indicator catalogue changed since this {estimator} was pickled; refit it."
    E010 = "Legal-basis calendar {file}: {problem}."
    E011 = "Obligation register {file}: {problem}."
    E012 = ("The authors' corpora are not here ({missing} of {registered} registered authors "
            "have no {folder}/<author>/data.jsonl): they live in a source checkout, the "
            "installed package holds only their registry. Run from a clone of the repository.")
    E013 = ("The embedding peer's index needs risky and benign turns ({risky} risky, "
            "{benign} benign given).")

    # Indicator catalogue (E1xx)
    E100 = "Indicator catalogue {file}: the file does not exist."
    E101 = "Indicator catalogue {file}, line {line}: not valid JSON ({problem})."
    E102 = "Indicator catalogue {file}, line 1: the first line must be the header object ({problem})."
    E103 = "Indicator catalogue {file}, {entry}: missing required key {key!r}."
    E104 = "Indicator catalogue {file}, {entry}: key {key!r} must be {expected}, got {got}."
    E105 = "Indicator catalogue {file}, {entry}: unknown key {key!r} (allowed: {allowed})."
    E106 = "Indicator catalogue {file}, {entry}: duplicate indicator id {id!r} (first on line {first})."
    E107 = "Indicator catalogue {file}, {entry}: unknown category {value!r} (known: {known})."
    E108 = "Indicator catalogue {file}, {entry}: unknown risk factor {value!r} (known: {known})."
    E109 = "Indicator catalogue {file}, {entry}, template {index}: {problem}."
    E110 = "Indicator catalogue {file}, {entry}, template {index}: unknown slot <{slot}> (known: {known})."
    E111 = "Indicator catalogue {file}, {entry}, template {index}: expands to {count} phrases, more than the limit of {limit}."
    E112 = "Indicator catalogue {file}, {entry}, pattern {index}: spaCy rejects the token pattern: {problem}."
    E113 = "Indicator catalogue {file}, {entry}: REGEX {regex!r} must be anchored with ^ and $ and compile ({problem})."
    E114 = "Indicator catalogue {file}, {entry}: token attribute {key!r} is not supported (supported: {allowed})."
    E115 = "Indicator catalogue {file}, {entry}: invalid age rule ({problem})."
    E116 = "Indicator catalogue {file}, {entry}: an indicator needs at least one template or pattern."
    E117 = "Indicator catalogue {file}, {entry}: id {id!r} must be lower-case dotted words like 'secrecy.keep_secret'."
    E118 = "Indicator catalogue {file}: the catalogue holds no indicators."
    E119 = "Indicator catalogue for language {language!r} not found; bundled: {known}."
    E120 = "Indicator catalogue {file}, {entry}: {problem}."

    # Interchange records (E2xx); never a value from the record itself
    E200 = "Line {line}: not valid JSON ({problem})."
    E201 = "Line {line}: a record must be a JSON object, got {got}."
    E202 = "Line {line}, field {field!r}: missing."
    E203 = "Line {line}, field {field!r}: must be {expected}, got {got}."
    E204 = "Line {line}, field {field!r}: invalid value ({problem})."
    E205 = "Line {line}, field {field!r}: the sender is not a participant of the conversation."
    E206 = "Line {line}, field {field!r}: duplicate participant id (the same id as participants[{first}])."
    E207 = ("Line {line}, field {field!r}: not a timestamp (ISO 8601 with a time zone, or "
            "epoch seconds), or a date that does not exist or lies outside years 1-9999.")
    E208 = "Line {line}, field {field!r}: unknown field (key number {position} of that object; allowed: {allowed})."
    E209 = "Line {line}: not valid UTF-8 (at byte {offset})."
    E212 = "Line {line}: longer than the limit of {limit} bytes; the line was skipped."
    E213 = "Line {line}, field {field!r}: {size} is more than the limit of {limit} {unit}."
    E214 = "Line {line}, field {field!r}: the text holds a lone surrogate (not encodable as UTF-8)."
    E215 = "Line {line}, field 'conversation_id': the same conversation id as line {first}; the later record was rejected."
    E216 = "Line {line}: nested more deeply than JSON allows here, or a number too long to read."
    E217 = "Line {line}, field {field!r}: the offender is not a participant of the conversation."
    E218 = "Line {line}: the record could not be processed ({type_name}); it was skipped and the others go on."
    # Message rows (a DataFrame or a stream: one message per row)
    # (the row itself is named by the structured `record` beside the reason)
    E210 = "Message row, field {field!r}: missing."
    E211 = "Message row, field {field!r}: invalid value ({problem})."

    # Message tables (a Spark DataFrame of message rows)
    E220 = "The messages table has no column {column!r} (it has: {columns})."
    E221 = "Column {column!r} must be {expected}, got {got}."
    E222 = "idle_timeout needs 'ts' as a timestamp column (an event-time watermark is set on it)."

    # Conversation state (E3xx)
    E300 = "Cannot merge states of different conversations."
    E301 = "Serialised conversation state is invalid ({problem})."
    E302 = "The state was built with catalogue {got!r}, this one needs {expected!r}."
    E303 = "Message {index}: timestamp must be a timezone-aware datetime or epoch seconds, got {type_name}."
    E304 = "A stream message could not be used: {reason}"

    # Risk models (M0xx)
    M001 = "Model directory {path}: {name} is missing (train one with `solicitation-classifier train`)."
    M002 = "Model directory {path}: model.onnx sha256 {digest} differs from metadata.json ({expected})."
    M003 = "Model directory {path}: its risk factors differ from this library's; retrain it."
    M004 = "Model directory {path}: trained with indicator catalogue {got}, this one is {expected}; retrain it."
    M005 = "Model directory {path}: metadata.json is not valid ({problem})."
    M006 = "Model directory {path}: built with risk-factor definitions {got}, this library computes {expected}; retrain it."
    M007 = "Model kind must be one of {choices}, got {kind!r}."

    # Guard: keys (G0xx)
    G001 = "The master key must be 32 bytes (base64); evidence is never stored without one."
    G002 = ("No master key: give --master-key-file, or set ${file_env} (a file only its owner "
            "can read) or ${env}; evidence is never stored without a master key.")
    G003 = "${env} is not valid base64 of 32 bytes."
    G004 = "The master key does not match this store (fingerprint {got}, the store expects {expected}): nothing was written."
    G005 = "Master key file {path}: {problem}."
    G006 = "The key store at {path} cannot be used ({problem})."
    G007 = "Keys hold the master key and cannot be pickled or copied."
    G008 = "A wrapped key or evidence could not be decrypted with this master key (a wrong key, or the data was altered)."
    G009 = "{path} is not an Ed25519 key in PEM form."
    G010 = "Checkpoint {name} is not a guard checkpoint (JSON: format, store_id, seq, hash, key_id, signed_at, signature)."
    G011 = "This action needs the master key (--master-key-file, $SOLICITATION_MASTER_KEY_FILE or $SOLICITATION_MASTER_KEY, or a KMS source)."
    G012 = "This action writes the audit log and needs the audit key: the master key, or the audit key alone (--audit-key-file or $SOLICITATION_AUDIT_KEY_FILE)."
    G013 = "The audit key does not match this store (fingerprint {got}, the store expects {expected}): nothing was written."
    G014 = "The store is bound to a master key but its secret is missing from the key store {path}; nothing was written."
    G015 = "A store at {url} needs a key store outside the database (--key-store or $SOLICITATION_KEY_STORE): its keys never enter it."
    # Guard: store and review (G1xx)
    G100 = "Guard store {url}: {problem}."
    G101 = "A report can only be made by export_report() from a confirmed case in the store."
    G102 = "retention_days must be 1..{limit}."
    G103 = "No case {case_id!r}."
    G104 = "Case {case_id!r} is not claimed by you."
    G105 = "The evidence of case {case_id!r} no longer exists."
    G106 = "decision must be confirm ({confirm}) or dismiss ({dismiss}) with one of those coded reasons."
    G107 = "This action needs the {role} role."
    G108 = "The audit log is broken at entry {entry}; no export."
    G109 = "Case {case_id!r} is {status}: only a case a human reviewer confirmed can be reported."
    G110 = "No recorded human confirmation of case {case_id!r} in the audit log."
    G111 = "The supervisor who exports must not be the reviewer who confirmed."
    G112 = "Case {case_id!r} was already decided ({status}); a decision is never replayed or changed here (use a complaint)."
    G113 = "Case {case_id!r}: the evidence was not viewed in this claim; view it before you confirm."
    G114 = "Case {case_id!r} has an open complaint; it cannot be exported until the complaint is decided."
    G115 = "Whoever decided a case, or re-reviewed the complaint about it, cannot decide that complaint."
    G116 = "Case {case_id!r} already has an open complaint ({complaint_id})."
    G117 = "Case {case_id!r} changed while you acted on it (now {status}); nothing was done."
    G118 = "This action needs a signed-in person (a Principal from the guard's sign-in), not a name."
    G119 = "The audit log cannot be written by callers; only the guard's own actions append to it."
    G120 = "Case {case_id!r} has no decision that can be complained about."
    G121 = "The re-review outcome is confirm or dismiss."
    G122 = "No open complaint {complaint_id!r}."
    G123 = "The re-review needs another reviewer than the one who decided."
    G124 = "Complaint {complaint_id!r} has not been re-reviewed."
    G125 = "No notice {kind!r} in language {language!r}."
    G126 = "The complaint window must be at least {days} days."
    G127 = "The complaint window of {days} days after the decision on case {case_id!r} has closed."
    G128 = "The guard store {url} does not exist; nothing was verified."
    G129 = "{what} must be {expected}."
    G130 = "Sign-in failed: wrong name, password or code, or the account is locked or disabled."
    G131 = "The token is not valid (malformed, unknown or revoked, or its account is disabled)."
    G132 = "An account of that name exists already (names are compared regardless of case and spacing)."
    G133 = "No account of that name."
    G134 = "Your password was issued once: change it before you act on cases (change_password)."
    G135 = "The new password must be at least {n} characters long and differ from the issued one."
    G136 = "This sign-in has expired (after {hours} hours); sign in again."
    G137 = "A complaint names who lodged it: the user's id (stored as a pseudonym) or the channel it came through, not both."
    G138 = "The re-review of complaint {complaint_id!r} needs the evidence viewed by its re-reviewer first."
    G139 = "Sign in with --token or $SOLICITATION_TOKEN (or interactively, on a terminal)."
    G140 = ("Account {account!r} fails its integrity check (its row was written outside the "
            "guard, or it predates schema 5): the operator resets it with `users reset`.")
    G141 = ("A token for a {role} account is made by its holder after signing in (`users "
            "sign-in`, or Guard.issue_token(principal)); the operator makes tokens for "
            "auditor accounts only.")
    G142 = "A new token needs a sign-in with your password (and TOTP code), not a token."
    G143 = "Changing the password needs a sign-in with your password (and TOTP code), not a token."
    G144 = ("An audit log entry is not valid JSON (the database was edited): nothing was "
            "done; run `audit verify` to find it.")
    G145 = "Checkpoint file {name} does not exist."

    # Review console (W0xx): web pages and the JSON API
    W001 = "Sign in to use the review console."
    W002 = "Your session has ended (idle for more than {idle} minutes, or signed in more than {hours} hours ago); sign in again."
    W003 = "The form was not accepted: its security token is missing, forged or already used. Reload the page and try again."
    W004 = "This page is for the {roles} role."
    W005 = "Too many sign-in attempts from this address; wait a minute and try again."
    W006 = "The request did not come from this console (another origin); nothing was done."
    W007 = "The form field {field!r} is missing or not one of the choices offered."
    W008 = "The API needs an API token: the header 'Authorization: Bearer <token>' (users sign-in)."
    W009 = "No such page."
    W010 = "The two new passwords differ."
    W012 = "Cookies without the Secure flag are allowed only on a loopback address (127.0.0.1, ::1, localhost)."
    W013 = "Internal error ({type_name}); nothing of it is shown. The console's log names the type only."
    W014 = "The request is too large (more than {limit} bytes)."

    # Command line (C0xx)
    C001 = "Input file {path} does not exist or is not a file."
    C002 = "Cannot write {path} ({problem})."
    C003 = "Input {path} holds no records."
    C004 = "Cannot read {path} ({problem})."
    C005 = "{what} failed: {problem}"


class ClassifierError(Exception):
    """Base class of every error this library raises on purpose.

    ``code`` is the catalogue code at the start of the message (``"E202"``), or None.
    """

    @property
    def code(self) -> str | None:
        m = re.match(r"^\[([A-Z][0-9]{3})\]", str(self))
        return m.group(1) if m else None


class ConfigError(ClassifierError, ValueError):
    """An argument or a configuration value is invalid."""


class MissingDependencyError(ClassifierError, ImportError):
    """An optional extra is needed for this feature."""


class NotFittedError(ClassifierError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (scikit-learn's contract)."""


class FirewallError(ClassifierError, TypeError):
    """Something that holds message text was asked to leave the process (pickle, copy)."""


class CatalogueError(ClassifierError, ValueError):
    """The indicator catalogue file is broken; the message names file, entry and problem."""


class RecordError(ClassifierError, ValueError):
    """A record of the interchange format is invalid.

    Attributes
    ----------
    line : int
        1-based line number in the input file (or index in the batch).
    field : str
        Dotted path of the offending field, for example ``messages[3].ts``; field names
        come from the format, never from the record (an unknown key is named by position).
    """

    def __init__(self, message: str, *, line: int, field: str) -> None:
        super().__init__(message)
        self.line = line
        self.field = field

    def __reduce__(self) -> Any:
        return (_record_error, (str(self), self.line, self.field))


def _record_error(message: str, line: int, field: str) -> RecordError:
    return RecordError(message, line=line, field=field)


class StateError(ClassifierError, ValueError):
    """A conversation state cannot be merged, restored or updated."""


class InputTypeError(ClassifierError, TypeError):
    """The extractor was given something that is not text."""


class TableSchemaError(ClassifierError, ValueError):
    """A table of message rows lacks a column or has one of the wrong type."""


class ModelError(ClassifierError, ValueError):
    """A model directory is missing, altered or does not fit this library."""


class StoreError(ClassifierError, RuntimeError):
    """The guard refuses an operation (codes G1xx)."""


class MasterKeyError(ClassifierError, ValueError):
    """No usable master key: the library refuses to store evidence without one (G0xx)."""
