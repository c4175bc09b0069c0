"""Evaluation data: synthetic generator, real benign chat, PAN12 and eSPD loaders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from classifier.evaluation import SUBGROUPS, generate, load_espd, load_pan12
from classifier.evaluation._families import FAMILIES, TEST_FAMILY, family_table, lines_for
from classifier.evaluation.benign import benign_split_of, convert, load_chitchat
from classifier.evaluation.content import FORBIDDEN

from classifier import conversation_from_dict, conversation_to_dict
from classifier._cli import main

FIXTURES = Path(__file__).parent / "fixtures"



@pytest.fixture(scope="module")
def splits():
    return {s: [conversation_to_dict(c) for c in generate(600, seed=7, split=s)]
            for s in ("train", "test")}


def test_generator_is_deterministic_by_seed():
    a = [conversation_to_dict(c) for c in generate(50, seed=3, split="train")]
    b = [conversation_to_dict(c) for c in generate(50, seed=3, split="train")]
    c = [conversation_to_dict(c) for c in generate(50, seed=4, split="train")]
    assert a == b
    assert a != c


def test_every_record_validates_and_round_trips(splits):
    for split, records in splits.items():
        for i, rec in enumerate(records):
            conv = conversation_from_dict(json.loads(json.dumps(rec)), line=i + 1)
            assert conv.label in (0, 1) and conv.subgroup in SUBGROUPS
            assert (conv.offender is not None) == (conv.label == 1)
            assert conv.conversation_id.startswith(f"synth-{split}-")


def test_every_subgroup_in_both_splits_with_varied_lengths(splits):
    for records in splits.values():
        assert {r["subgroup"] for r in records} == set(SUBGROUPS)
        lengths = [len(r["messages"]) for r in records if r["subgroup"] == "grooming"]
        assert min(lengths) <= 15 and max(lengths) >= 150
    helpline = [r for r in splits["train"] if r["subgroup"].startswith("helpline")]
    roles = {r["subgroup"]: r["participants"][0]["protected_role"] for r in helpline}
    assert roles == {"helpline_protected": "helpline", "helpline_unprotected": None}


def test_profiles_vary_and_include_false_ages(splits):
    grooming = [r for r in splits["train"] if r["subgroup"] == "grooming"]
    child_declared = {r["participants"][1]["declared_age"] for r in grooming}
    adult_declared = {r["participants"][0]["declared_age"] for r in grooming}
    assert None in child_declared and 18 in child_declared  # missing, and the age-gate lie
    assert 16 in adult_declared  # adults claiming to be teens


SLOT_RX = {"age": r"\d+", "aage": r"\d+", "fake": r"\d+", "grade": r"\d+", "year": r"\d+",
           "name": r"[a-z]+", "app": r"[a-z]+", "thing": r".+?"}


def _line_regex(template: str) -> re.Pattern[str]:
    out, pos = "^", 0
    for m in re.finditer(r"\{([a-z]+)\}", template):
        out += re.escape(template[pos:m.start()]) + SLOT_RX[m.group(1)]
        pos = m.end()
    return re.compile(out + re.escape(template[pos:]) + "$")


@pytest.mark.parametrize(("own", "other"), [("train", "test"), ("test", "train")])
def test_no_phrase_of_the_other_split_appears(own, other):
    records = [conversation_to_dict(c) for c in generate(300, seed=11, split=own, noise=0.0)]
    texts = {m["text"] for r in records for m in r["messages"]}
    foreign = [_line_regex(t) for key in FAMILIES for t in lines_for(key, other)]
    leaked = sorted({t for t in texts for rx in foreign if rx.match(t)})
    assert not leaked, leaked[:5]


def test_families_are_at_least_three_and_split_disjoint():
    for key, families in FAMILIES.items():
        assert len(families) >= 3, key
        assert len(families) > TEST_FAMILY
    rows = family_table()
    assert all(train > 0 and test > 0 for _, _, train, test in rows)


def test_content_rule_holds(splits):
    for records in splits.values():
        for r in records:
            for m in r["messages"]:
                assert not FORBIDDEN.search(m["text"].lower()), m["text"]
    for key, families in FAMILIES.items():
        for fam in families:
            for line in fam:
                assert not FORBIDDEN.search(line), (key, line)


def test_benign_split_is_fixed_by_hash():
    ids = [f"chitchat-{i}" for i in range(2000)]
    share = sum(benign_split_of(i) == "train" for i in ids) / len(ids)
    assert 0.45 < share < 0.55
    assert [benign_split_of(i) for i in ids[:20]] == [benign_split_of(i) for i in ids[:20]]


def test_benign_conversion_and_bad_records():
    dataset = {
        "a1": {"messages": [[{"text": "hi", "timestamp": "2018-05-02T19:38:15Z", "sender": "s1"}],
                            [{"text": "hello", "timestamp": "2018-05-02T19:38:20Z",
                              "sender": "s2"}]]},
        "b2": {"messages": [[{"text": "x", "timestamp": "yesterday", "sender": "s1"}]]},
        "c3": {"no_messages": []},
    }
    errors: list = []
    convs = list(load_chitchat(None, errors=errors, dataset=dataset))
    assert [c.conversation_id for c in convs] == ["chitchat-a1"]
    assert [p.id for p in convs[0].participants] == ["s1", "s2"]
    assert convs[0].label == 0 and convs[0].subgroup == "real_benign"
    assert [e.field for e in errors] == ["messages[0][0].timestamp", "messages"]
    assert convert("a1", dataset["a1"]).messages[1].text == "hello"


def test_real_benign_chat_package():
    pytest.importorskip("chitchat_dataset")
    test = list(load_chitchat("test"))
    train_ids = {c.conversation_id for c in load_chitchat("train")}
    assert len(test) >= 3500 and len(test) + len(train_ids) == 7168
    assert not train_ids & {c.conversation_id for c in test}


def test_pan12_fixture():
    corpus = load_pan12(FIXTURES / "pan12")
    by_id = {c.conversation_id: c for c in corpus.conversations}
    assert set(by_id) == {"pan12-c0a1", "pan12-c0a2", "pan12-c0a5"}
    assert by_id["pan12-c0a1"].label == 1 and by_id["pan12-c0a1"].offender == "p1"
    assert by_id["pan12-c0a2"].label == 0 and by_id["pan12-c0a2"].offender is None
    # the clock went back past midnight: a day forward
    ts = [m.ts for m in by_id["pan12-c0a1"].messages]
    assert ts == sorted(ts) and ts[3].day == 2
    # problem-2 labels by line number; diff.txt is never read as labels
    assert corpus.predator_lines == {"pan12-c0a1": [2, 4], "pan12-c0a5": [1]}
    assert {e.field for e in corpus.errors} == {"messages[0].sender", "messages[0].ts"}
    assert all("c0a3" in str(e) or "c0a4" in str(e) for e in corpus.errors)


def test_pan12_syntax_error_keeps_earlier_records(tmp_path):
    (tmp_path / "broken.xml").write_text((FIXTURES / "pan12_broken.xml").read_text())
    corpus = load_pan12(tmp_path)
    assert [c.conversation_id for c in corpus.conversations] == ["pan12-ok1"]
    (err,) = corpus.errors
    assert "broken.xml" in str(err) and "line" in str(err) and err.field == "xml"


def test_espd_fixture():
    errors: list = []
    convs = list(load_espd(FIXTURES / "espd_datapack.json", errors=errors))
    assert [(c.conversation_id, c.label, c.offender) for c in convs] == [
        ("espd-chat-1", 1, "x1"), ("espd-chat-2", 0, None)]
    assert [e.field for e in errors] == ["chats[2].className", "chats[3].content[0].author"]


def test_cli_data_commands(tmp_path, capsys):
    out = tmp_path / "synth.jsonl"
    assert main(["data", "synth", "--n", "40", "--seed", "2", "--split", "test",
                 "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 40
    assert "wrote 40 conversations" in capsys.readouterr().err
    pan = tmp_path / "pan.jsonl"
    assert main(["data", "pan12", str(FIXTURES / "pan12"), "-o", str(pan)]) == 3
    err = capsys.readouterr().err
    assert "wrote 3 conversations" in err and "2 records rejected" in err
    assert json.loads(pan.with_suffix(".predator_lines.json").read_text())["pan12-c0a1"] == [2, 4]
    espd = tmp_path / "espd.jsonl"
    assert main(["data", "espd", str(FIXTURES / "espd_datapack.json"), "-o", str(espd)]) == 3
    assert len(espd.read_text().splitlines()) == 2
