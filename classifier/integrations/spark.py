"""Scoring on Apache Spark: DataFrames of messages, and Structured Streaming.

Install the extra: ``pip install 'solicitation-classifier[spark]'``.

Input: one message per row, with the columns

============================  ===============================================  ========
column                        type                                             required
============================  ===============================================  ========
``conversation_id``           string                                           yes
``sender``                    string (pseudonymous account id)                 yes
``ts``                        timestamp, epoch seconds, or ISO 8601 string     yes
``text``                      string (may be null for a non-text modality)     yes
``modality``                  string, default ``"text"``                       no
``declared_age``              integer, the sender's declared age               no
``protected_role``            string, the sender's verified protected role     no
``e2ee``                      boolean, an end-to-end encrypted conversation    no
``age_assurance``             string, how the provider knows the sender's age  no
                              (``self_declared``, ``estimated``, ``verified``)
``family_link``               boolean, the pair linked in a family group       no
``contact_age_days``          integer, days the pair have been contacts        no
``mutual_contacts``           integer, contacts the pair share                 no
``protected_roles``           map<string, string>, protected participants      no
                              (id -> ``helpline``, ``counselling``,
                              ``medical``, ``legal``), named on any row
                              whether or not they wrote: the conversation is
                              refused before a child's rows to them are read
``message_id``                string, names a rejected row in its reason       no
============================  ===============================================  ========

The provider's metadata count as in the interchange format (a sender's latest
``declared_age`` and ``age_assurance``; the latest given value of each relationship
field, on any row of the conversation), so a conversation scores the same from rows as
from its JSONL line.

Output of :func:`score_messages`: the scoring output of docs/formats.md, one row per
conversation with new messages (``status`` ``"scored"`` or ``"refused"``), plus one row
per rejected input row (``status`` ``"rejected"``, with ``record``, ``field`` and a coded
``reason``). A bad row never fails the job, and the good rows of its conversation are
scored. Scored rows carry ``state``, ``declared_ages``, ``age_assurance``,
``relationship`` and ``flagged_at_message``: the
numeric state to pass back as ``prior`` with the next batch, so that a conversation
arriving over many batches (late messages included) is scored as a whole. Text never
leaves the executor function; the state holds numbers and pseudonymous ids only. The
repartition by conversation shuffles the input rows, text included, through Spark's local
files: set ``spark.io.encryption.enabled`` on a cluster (:func:`local_session` does).

Examples
--------
The README and ``examples/spark_streaming.py`` show complete runs::

    spark = local_session()
    messages = spark.read.json("messages.jsonl")
    first = score_messages(messages).cache()
    later = score_messages(spark.read.json("more.jsonl"), prior=first)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import Any

try:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema
except ImportError as exc:  # pragma: no cover - exercised by tests/install
    from .._errors import Errors, MissingDependencyError

    raise MissingDependencyError(Errors.E006.format(what="classifier.integrations.spark",
                                                    extra="spark")) from exc

from .._conversation import Relationship
from .._errors import ConfigError, Errors, TableSchemaError
from .._message_rows import MessageRow, RejectedRow
from ._rows import PriorState, RowsScore, score_rows, score_rows_many, scorer_for

__all__ = ["FLAG_SCHEMA", "SCORE_SCHEMA", "flag_stream", "local_session", "score_messages"]

SCORE_SCHEMA = T.StructType([
    T.StructField("conversation_id", T.StringType()),
    T.StructField("status", T.StringType(), False),
    T.StructField("reason", T.StringType()),
    T.StructField("record", T.StringType()),
    T.StructField("field", T.StringType()),
    T.StructField("score", T.DoubleType()),
    T.StructField("flagged", T.BooleanType()),
    T.StructField("flagged_at_message", T.LongType()),
    T.StructField("n_messages", T.LongType()),
    T.StructField("model_version", T.StringType()),
    T.StructField("threshold", T.DoubleType()),
    T.StructField("risk_factors", T.MapType(T.StringType(), T.DoubleType())),
    T.StructField("subject", T.StringType()),
    T.StructField("state", T.BinaryType()),
    T.StructField("declared_ages", T.MapType(T.StringType(), T.LongType())),
    T.StructField("age_assurance", T.MapType(T.StringType(), T.StringType())),
    T.StructField("relationship", T.StructType([
        T.StructField("family_link", T.BooleanType()),
        T.StructField("contact_age_days", T.LongType()),
        T.StructField("mutual_contacts", T.LongType())])),
])
"""Schema of :func:`score_messages` output."""

FLAG_SCHEMA = T.StructType([SCORE_SCHEMA[name] for name in (
    "conversation_id", "status", "reason", "record", "field", "score", "flagged_at_message",
    "subject", "model_version", "threshold")])
"""Schema of :func:`flag_stream` output: ``status`` is ``"flagged"`` or ``"rejected"``."""

_STREAM_STATE = T.StructType([
    T.StructField("state", T.BinaryType()),
    T.StructField("declared_json", T.StringType()),
    T.StructField("flagged_at_message", T.LongType()),
    T.StructField("refused", T.BooleanType()),
    T.StructField("context_json", T.StringType()),  # age assurance and relationship
])

_ROWS_PER_CALL = 20_000  # messages scored per extraction batch and model call

_STRING_COLUMNS = ("conversation_id", "sender", "text", "modality", "protected_role",
                   "message_id", "age_assurance")
_COUNT_COLUMNS = ("declared_age", "contact_age_days", "mutual_contacts")
_BOOLEAN_COLUMNS = ("e2ee", "family_link")


def local_session(app_name: str = "solicitation-classifier", *, cores: int = 2,
                  shuffle_partitions: int | None = None) -> SparkSession:
    """A local Spark session set up for this library (workers use this interpreter)."""
    # Spark's Python workers otherwise start whatever `python3` is first on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (SparkSession.builder.master(f"local[{cores}]").appName(app_name)
            .config("spark.sql.shuffle.partitions", str(shuffle_partitions or cores * 2))
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            # the shuffle by conversation moves message rows (with their text) through
            # local files: encrypt them
            .config("spark.io.encryption.enabled", "true")
            .getOrCreate())


# -- input normalisation ------------------------------------------------------------
def _normalise(messages: DataFrame, *, streaming: bool = False) -> DataFrame:
    """Message rows in the internal layout; schema problems are raised here, at once."""
    types = {f.name: f.dataType for f in messages.schema.fields}
    for required in ("conversation_id", "sender", "ts", "text"):
        if required not in types:
            raise TableSchemaError(Errors.E220.format(column=required,
                                                columns=", ".join(sorted(types))))

    def wrong(column: str, expected: str) -> TableSchemaError:
        return TableSchemaError(Errors.E221.format(column=column, expected=expected,
                                             got=types[column].simpleString()))

    for name in _STRING_COLUMNS:
        if name in types and not isinstance(types[name], T.StringType):
            raise wrong(name, "a string")
    for name in _COUNT_COLUMNS:
        if name in types and not isinstance(types[name], T.NumericType):
            raise wrong(name, "numeric")
    for name in _BOOLEAN_COLUMNS:
        if name in types and not isinstance(types[name], T.BooleanType):
            raise wrong(name, "boolean")
    if "protected_roles" in types and not (
            isinstance(types["protected_roles"], T.MapType)
            and isinstance(types["protected_roles"].keyType, T.StringType)
            and isinstance(types["protected_roles"].valueType, T.StringType)):
        raise wrong("protected_roles", "a map of strings to strings")
    ts_type = types["ts"]
    if isinstance(ts_type, T.TimestampType):
        ts_epoch, ts_text = F.unix_micros("ts") / F.lit(1e6), F.lit(None).cast("string")
    elif isinstance(ts_type, T.NumericType):
        ts_epoch, ts_text = F.col("ts").cast("double"), F.lit(None).cast("string")
    elif isinstance(ts_type, T.StringType):
        ts_epoch, ts_text = F.lit(None).cast("double"), F.col("ts")
    else:  # a timestamp without a time zone is ambiguous, as in the JSONL format
        raise wrong("ts", "a timestamp, epoch seconds or an ISO 8601 string with a zone")
    order = F.lit(None).cast("long") if streaming else F.monotonically_increasing_id()
    record = (F.concat(F.lit("message_id "), F.col("message_id")) if "message_id" in types
              else F.lit(None).cast("string"))
    cols = [F.col("conversation_id"), F.lit(1).alias("_kind"), order.alias("_order"),
            record.alias("_record"), ts_epoch.alias("_ts_epoch"), ts_text.alias("_ts_text")]
    for name, cast in (("sender", "string"), ("text", "string"), ("modality", "string"),
                       ("declared_age", "double"), ("protected_role", "string"),
                       ("e2ee", "boolean"), ("age_assurance", "string"),
                       ("family_link", "boolean"), ("contact_age_days", "double"),
                       ("mutual_contacts", "double"),
                       ("protected_roles", "map<string,string>")):
        cols.append((F.col(name) if name in types else F.lit(None)).cast(cast).alias(name))
    return messages.select(*cols)


def _prior_rows(prior: DataFrame) -> DataFrame:
    """Prior states (a previous output of :func:`score_messages`) in the internal layout;
    an output written before ``age_assurance`` and ``relationship`` were kept has none."""
    names = set(prior.columns)

    def column(name: str) -> Any:
        return F.col(name) if name in names else F.lit(None).cast(SCORE_SCHEMA[name].dataType)

    return (prior.where(F.col("status") == "scored").where(F.col("state").isNotNull())
            .select("conversation_id", F.lit(0).alias("_kind"),
                    F.lit(-1).cast("long").alias("_order"),
                    F.col("state").alias("_state"),
                    F.col("declared_ages").alias("_declared"),
                    F.col("flagged_at_message").alias("_flagged_at"),
                    column("age_assurance").alias("_assurance"),
                    column("relationship").alias("_relationship")))


# -- executor side ------------------------------------------------------------------
def _message_row(cols: Mapping[str, list[Any]], i: int) -> MessageRow:
    order = cols["_order"][i]
    record = cols["_record"][i] or (f"row {order}" if order is not None and order == order
                                     else f"micro-batch row {i}")
    ts = cols["_ts_epoch"][i]
    ts = ts if ts is not None and ts == ts else cols["_ts_text"][i]  # NaN from pandas
    return MessageRow(record, cols["sender"][i], ts,
                      cols["text"][i], cols["modality"][i], cols["declared_age"][i],
                      cols["protected_role"][i], cols["e2ee"][i], cols["age_assurance"][i],
                      cols["family_link"][i], cols["contact_age_days"][i],
                      cols["mutual_contacts"][i], cols["protected_roles"][i])


def _prior(state: bytes | None, declared: Any, flagged_at: Any, assurance: Any,
           relationship: Any) -> PriorState:
    """A prior state from its columns (maps may come as lists of pairs, from Arrow)."""
    return PriorState(state, dict(declared or ()), flagged_at,  # type: ignore[arg-type]
                      dict(assurance or ()),
                      Relationship(**relationship) if relationship else None)


def _context_json(prior: PriorState) -> str:
    rel = prior.relationship
    return json.dumps({"age_assurance": dict(prior.age_assurance),
                       "relationship": None if rel is None else asdict(rel)})


def _rejected_dict(r: RejectedRow) -> dict[str, Any]:
    return {"conversation_id": r.conversation_id, "status": "rejected", "reason": r.reason,
            "record": r.record, "field": r.field}


def _output_dicts(outcome: RowsScore) -> list[dict[str, Any]]:
    out = [_rejected_dict(r) for r in outcome.rejected]
    res = outcome.result
    if res is None:
        return out
    if res.status != "scored":
        out.append({"conversation_id": res.conversation_id, "status": res.status,
                    "reason": res.reason})
        return out
    assert outcome.prior is not None
    out.append({"conversation_id": res.conversation_id, "status": "scored",
                "score": res.score, "flagged": res.flagged,
                "flagged_at_message": res.flagged_at_message,
                "n_messages": outcome.n_messages, "model_version": res.model_version,
                "threshold": res.threshold, "risk_factors": dict(res.risk_factors),
                "subject": res.subject, "state": outcome.prior.state,
                "declared_ages": dict(outcome.prior.declared_ages),
                "age_assurance": dict(outcome.prior.age_assurance),
                "relationship": None if outcome.prior.relationship is None
                else asdict(outcome.prior.relationship)})
    return out


def _score_partition(model_dir: str | None, threshold: float | None, explain_top: int,
                     early: bool, arrow_schema: pa.Schema,
                     ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function: rows come grouped by conversation, prior state first."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = scorer_for(model_dir, threshold, explain_top)
        current: Any = object()  # no conversation yet
        prior: PriorState | None = None
        rows: list[MessageRow] = []
        groups: list[tuple[Any, list[MessageRow], PriorState | None]] = []
        pending = 0  # rows in `groups`

        def close_group() -> None:
            nonlocal pending
            if rows:  # a prior state with no new messages is not re-emitted
                groups.append((current, rows, prior))
                pending += len(rows)

        def scored() -> pa.RecordBatch:
            nonlocal pending
            out = [d for outcome in score_rows_many(scorer, groups, early=early)
                   for d in _output_dicts(outcome)]
            groups.clear()
            pending = 0
            return pa.RecordBatch.from_pylist(out, schema=arrow_schema)

        for batch in batches:
            cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            for i in range(batch.num_rows):
                cid = cols["conversation_id"][i]
                if cid != current:
                    close_group()
                    if pending >= _ROWS_PER_CALL:
                        yield scored()
                    current, prior, rows = cid, None, []
                if cols["_kind"][i] == 0:
                    prior = _prior(cols["_state"][i], cols["_declared"][i],
                                   cols["_flagged_at"][i], cols["_assurance"][i],
                                   cols["_relationship"][i])
                else:
                    rows.append(_message_row(cols, i))
        close_group()
        if groups:
            yield scored()

    return run


def score_messages(messages: DataFrame, *, prior: DataFrame | None = None,
                   model_dir: str | None = None, threshold: float | None = None,
                   explain_top: int = 8, early: bool = True,
                   num_partitions: int | None = None) -> DataFrame:
    """Score a DataFrame of messages, grouped by conversation (see the module docs).

    Parameters
    ----------
    messages : DataFrame
        One message per row (columns in the module docs).
    prior : DataFrame, optional
        A previous output of this function: the conversations' numeric states, merged
        with the new messages (for incremental batches and late messages).
    model_dir : str, optional
        A model directory readable by every executor; default: the shipped model.
    threshold : float, optional
        Overrides the model's policy threshold.
    explain_top : int, default 8
        Risk factors named per result (0 for all).
    early : bool, default True
        Also find the message at which a flagged conversation first crossed.
    num_partitions : int, optional
        Partitions of the repartition by conversation; default Spark's shuffle setting.

    Returns
    -------
    DataFrame
        :data:`SCORE_SCHEMA`; filter on ``status``.

    Raises
    ------
    ValueError
        At once, when a required column is missing or has the wrong type (E220, E221).
    """
    rows = _normalise(messages)
    if prior is not None:
        rows = rows.unionByName(_prior_rows(prior), allowMissingColumns=True)
    else:
        rows = (rows.withColumn("_state", F.lit(None).cast("binary"))
                .withColumn("_declared", F.lit(None).cast("map<string,bigint>"))
                .withColumn("_flagged_at", F.lit(None).cast("long"))
                .withColumn("_assurance", F.lit(None).cast("map<string,string>"))
                .withColumn("_relationship", F.lit(None).cast(
                    SCORE_SCHEMA["relationship"].dataType)))
    key = F.col("conversation_id")
    parted = (rows.repartition(num_partitions, key) if num_partitions
              else rows.repartition(key))
    ordered = parted.sortWithinPartitions("conversation_id", "_kind", "_order")
    spark = messages.sparkSession
    large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
    arrow_schema = to_arrow_schema(SCORE_SCHEMA, prefers_large_types=large)
    return ordered.mapInArrow(
        _score_partition(model_dir, threshold, explain_top, early, arrow_schema),
        SCORE_SCHEMA)


def _stream_func(model_dir: str | None, threshold: float | None, idle_ms: int | None,
                 ) -> Callable[[tuple[Any, ...], Iterator[Any], Any], Iterator[Any]]:
    """The applyInPandasWithState function: numbers in the state, a row per new flag."""
    import pandas as pd

    columns = [f.name for f in FLAG_SCHEMA.fields]
    dtypes = {"score": "float64", "threshold": "float64", "flagged_at_message": "Int64"}

    def run(key: tuple[Any, ...], frames: Iterator[pd.DataFrame], state: Any,
            ) -> Iterator[pd.DataFrame]:
        if state.hasTimedOut:  # idle longer than idle_timeout: forget the conversation
            state.remove()
            return
        cid = key[0]
        kept = state.get if state.exists else None
        rows: list[MessageRow] = []
        latest = None
        for frame in frames:
            cols = {name: frame[name].tolist() for name in frame.columns}
            rows.extend(_message_row(cols, i) for i in range(len(frame)))
            if len(frame):
                top = frame["_ts_epoch"].max()
                latest = top if latest is None or top > latest else latest
        if kept is not None and kept[3]:  # refused before: never scanned again
            return
        prior = None
        if kept is not None:
            # (a state written before the context was kept has four fields)
            context = json.loads(kept[4]) if len(kept) > 4 and kept[4] else {}
            prior = _prior(kept[0], json.loads(kept[1]), kept[2],
                           context.get("age_assurance"), context.get("relationship"))
        outcome = score_rows(scorer_for(model_dir, threshold), cid, rows, prior)
        out = [_rejected_dict(r) for r in outcome.rejected]
        res = outcome.result
        if res is not None and res.status != "scored":
            state.update((None, None, None, True, None))
        elif res is not None and outcome.prior is not None:
            new = outcome.prior
            if new.flagged_at_message is not None and (prior is None
                                                       or prior.flagged_at_message is None):
                out.append({"conversation_id": cid, "status": "flagged", "score": res.score,
                            "flagged_at_message": new.flagged_at_message,
                            "subject": res.subject, "model_version": res.model_version,
                            "threshold": res.threshold})
            state.update((new.state, json.dumps(dict(new.declared_ages)),
                          new.flagged_at_message, False, _context_json(new)))
        if idle_ms is not None and state.exists and latest is not None and latest == latest:
            # the timeout may not be before the watermark, which is global to the query
            state.setTimeoutTimestamp(max(int(latest * 1000) + idle_ms,
                                          state.getCurrentWatermarkMs() + 1))
        if out:
            # typed columns: an all-null column of object dtype breaks Spark's concatenation
            # of the groups' frames
            yield pd.DataFrame(out, columns=columns).astype(dtypes)

    return run


def flag_stream(messages: DataFrame, *, model_dir: str | None = None,
                threshold: float | None = None,
                idle_timeout: float | None = None) -> DataFrame:
    """Flag conversations of a streaming DataFrame as soon as each crosses the threshold.

    Per conversation, Spark's state store keeps only numbers and pseudonymous ids (the
    serialised :class:`~classifier.ConversationState`, declared ages, the flag index).
    A flag is emitted once, in the micro-batch whose messages made the score cross.

    Parameters
    ----------
    messages : DataFrame
        A streaming DataFrame of message rows (columns in the module docs).
    model_dir, threshold
        As in :func:`score_messages`.
    idle_timeout : float, optional
        Seconds of event time without a message after which a conversation's state is
        dropped. Needs ``ts`` as a timestamp column: it sets a watermark of that delay
        on it and an event-time timeout. Spark drops rows older than the watermark
        (the latest event time seen, less ``idle_timeout``) before they reach the
        scorer. (A processing-time timeout is not offered: with
        ``trigger(availableNow=True)`` such a query never finishes.)

    Returns
    -------
    DataFrame
        A streaming DataFrame of :data:`FLAG_SCHEMA` (output mode ``"append"``).
    """
    from pyspark.sql.streaming.state import GroupStateTimeout

    rows = _normalise(messages, streaming=True)
    timeout, idle_ms = GroupStateTimeout.NoTimeout, None
    if idle_timeout is not None:
        if not isinstance(messages.schema["ts"].dataType, T.TimestampType):
            raise ConfigError(Errors.E222)
        rows = rows.withColumn("_event_time", F.col("_ts_epoch").cast("timestamp"))
        rows = rows.withWatermark("_event_time", f"{int(idle_timeout)} seconds")
        timeout, idle_ms = GroupStateTimeout.EventTimeTimeout, int(idle_timeout * 1000)
    return rows.groupBy("conversation_id").applyInPandasWithState(
        _stream_func(model_dir, threshold, idle_ms), FLAG_SCHEMA, _STREAM_STATE, "append",
        timeout)
