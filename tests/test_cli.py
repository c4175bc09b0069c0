from __future__ import annotations

import json
import subprocess
import sys

from classifier._cli import main, sample_path


def test_demo_prints_a_summary(capsys):
    assert main(["demo"]) == 0
    err = capsys.readouterr().err
    assert "6 conversations read, 0 records rejected" in err
    assert "1 not scanned (not text)" in err
    assert "supervision_check" in err


def test_extract_writes_numeric_summaries_and_keeps_good_records(tmp_path, capsys):
    lines = sample_path().read_text().splitlines()
    bad = json.loads(lines[0])
    bad["messages"][3]["ts"] = "not a time"
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([lines[0], json.dumps(bad), lines[1]]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["extract", str(src), "-o", str(out), "--prefilter", "re"]) == 2
    err = capsys.readouterr().err
    assert "Line 2, field 'messages[3].ts'" in err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["conversation_id"] for r in rows] == ["sample-001", "sample-002"]
    first = {p["id"]: p for p in rows[0]["participants"]}
    assert first["u-102"]["disclosed_age"]["mean"] == 13
    assert first["u-101"]["indicators"]["secrecy.keep_secret"] >= 1
    assert rows[0]["state_bytes"] <= 1024


def test_entry_point_runs_as_a_program(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "classifier._cli", "extract",
                           str(tmp_path / "missing.jsonl")], capture_output=True, text=True)
    assert proc.returncode == 2 and "input file not found" in proc.stderr


def test_score_keeps_input_order_across_batches(tmp_path, capsys):
    from classifier.evaluation.synth import generate

    from classifier import write_jsonl
    from classifier._scoring import Scorer

    convs = list(generate(480, seed=5, split="test"))  # > 20k messages: several batches
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(convs, src)
    lines = src.read_text().splitlines()
    e2ee = json.loads(lines[3])
    e2ee["conversation_id"], e2ee["e2ee"] = "refused-by-scope", True
    lines.insert(240, json.dumps(e2ee))
    src.write_text("\n".join(lines) + "\n")
    assert sum(len(c.messages) for c in convs) > 20_000
    assert main(["score", str(src), "-o", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    ids = [c.conversation_id for c in convs]
    assert [r["conversation_id"] for r in rows] == [*ids[:240], "refused-by-scope", *ids[240:]]
    assert rows[240]["status"] == "refused"
    scorer = Scorer()
    for conv, row in zip(convs[:12], rows[:12], strict=True):
        assert row == json.loads(json.dumps(scorer.score(conv).to_dict()))
