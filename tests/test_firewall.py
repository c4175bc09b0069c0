"""The substance firewall: a unique canary string in message text is found nowhere after
reading, extraction, state, pickling, repr, logging at DEBUG and the CLI's outputs."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from classifier import IndicatorVectorizer, conversation_state, read_jsonl
from classifier._cli import main

pytestmark = pytest.mark.obligation("art3-1-b")

CANARY = "qvxcanary93814"


def _record() -> dict:
    texts = [f"are your parents home {CANARY}", f"im 13 {CANARY}", f"{CANARY}",
             f"send me a pic {CANARY} ok", "x" * 100 + CANARY]
    return {
        "conversation_id": "c-canary",
        "participants": [{"id": "u-1", "declared_age": None}, {"id": "u-2", "declared_age": 13}],
        "messages": [{"sender": "u-1" if i % 2 == 0 else "u-2",
                      "ts": f"2026-05-01T10:0{i}:00Z", "text": t} for i, t in enumerate(texts)],
    }


def test_canary_is_found_nowhere(tmp_path, caplog, capsys, extractor):
    path = tmp_path / "in.jsonl"
    bad = dict(_record(), region=CANARY)  # a bad field value must not echo the text either
    path.write_text(json.dumps(_record()) + "\n" + json.dumps(bad) + "\n")
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)

    results = list(read_jsonl(path))
    conv = results[0].conversation
    state = conversation_state(conv, extractor)
    batch = extractor.extract_batch([m.text for m in conv.messages])
    vec = IndicatorVectorizer(prefilter="re").fit()
    X = vec.transform([m.text for m in conv.messages])

    outputs: list[bytes] = [
        pickle.dumps(extractor), pickle.dumps(state), pickle.dumps(vec), state.to_bytes(),
        pickle.dumps(batch.counts), X.tobytes(), pickle.dumps(dict(batch.ages)),
    ]
    texts = [repr(conv), repr(state), repr(extractor), repr(vec), repr(batch),
             repr(results), str(results[1].error), repr(state.participants)]

    out_file = tmp_path / "out.jsonl"
    assert main(["extract", str(path), "-o", str(out_file)]) == 3  # one record rejected
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, out_file.read_text(), caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    assert "records rejected" in captured.err and "Line 2" in captured.err
    assert json.loads(out_file.read_text().splitlines()[0])["conversation_id"] == "c-canary"

    for blob in outputs:
        assert CANARY.encode() not in blob
    for text in texts:
        assert CANARY not in text
    assert not list(tmp_path.glob("**/*canary*"))


# The text boundary is the only runtime module that reads message text; the format
# modules move it into Message objects without reading it; evaluation tooling that
# writes data or is a text-reading comparison (the naive baseline, the substance
# audit's bag of words, the recognisers' training turns) is named here with its reason.
TEXT_READERS = {
    "classifier/_text.py": "the text boundary",
    "classifier/_conversation.py": "the interchange format (reader and writer)",
    "classifier/_message_rows.py": "the message-row format",
    "classifier/indicators/_component.py": "the extractor as a spaCy pipeline component",
    "evaluation/baseline.py": "the naive text baseline (reads substance by design)",
    "evaluation/peer.py": "the embedding nearest-neighbour peer (reads substance by design)",
    "evaluation/audit.py": "the substance audit's bag-of-words attacker",
    "evaluation/recognisers.py": "training turns for the learned recognisers",
    "evaluation/content.py": "the content-rule scan of the data",
}


def _text_reads(source: str) -> list[int]:
    """Lines where ``<something>.text`` is read (a call such as ``ax.text(...)`` is not)."""
    import ast

    tree = ast.parse(source)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "text"
            and isinstance(node.ctx, ast.Load) and id(node) not in called]


def test_only_the_text_boundary_reads_text():
    from pathlib import Path

    assert _text_reads("x = m.text\nax.text(1, 2, 's')\nlen(msg.text)") == [1, 3]
    root = Path(__file__).resolve().parent.parent
    offenders = []
    for folder in ("classifier", "evaluation"):
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel not in TEXT_READERS:
                offenders += [f"{rel}:{n}" for n in _text_reads(path.read_text("utf-8"))]
    assert offenders == [], "only the text boundary may read .text"


def test_a_lone_surrogate_in_code_built_text_is_scored_metered_and_kept_out_of_errors():
    """A Conversation built in code (not read from JSON, where it is E214) may hold a lone
    surrogate: it is scored and metered and its evidence excerpt encodes, instead of a
    UnicodeEncodeError that would carry the text in its arguments; a stream message with
    one is refused with a coded error that quotes nothing."""
    from datetime import UTC, datetime

    from classifier import Conversation, Message, Participant, Pipeline, StateError, StreamScorer

    t = datetime(2026, 9, 1, tzinfo=UTC)
    bad = "how old are you \ud800 send me a selfie"
    conv = Conversation("c", (Participant("a", 40), Participant("b", 12)),
                        (Message("a", t, bad), Message("b", t, "12 \udfff")))
    pipeline = Pipeline()
    result = pipeline.score(conv)
    assert result.status == "scored" and 0.0 <= result.score <= 1.0
    columns = pipeline.boundary.extract([conv])[0]
    assert columns.n_bytes == len(bad.encode("utf-8", "surrogatepass")) + 6
    excerpt = pipeline.boundary.evidence(conv, columns, "a")
    assert b"\xed\xa0\x80" not in excerpt.plaintext and excerpt.n_messages >= 1
    with pytest.raises(StateError, match=r"\[E304\].*\[E211\]") as err:
        StreamScorer(pipeline).add("s", "a", t, bad)
    assert "selfie" not in str(err.value) and "selfie" not in repr(err.value.args)
