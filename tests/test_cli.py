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
