"""The command line: one line per error and an exit code, never a traceback, never input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from classifier.evaluation.synth import generate

from classifier import Scorer, sample_path, write_jsonl
from classifier._cli import main

CLI = [sys.executable, "-m", "classifier._cli"]


def run_cli(*args, env=None, cwd=None, stdin=None):
    environ = {**os.environ, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=environ,
                          cwd=cwd, input=stdin)


def test_demo_runs_in_its_own_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--dir", "out"]) == 0
    err = capsys.readouterr().err
    assert "6 conversations read, 0 records rejected" in err
    assert "1 not scanned (not text)" in err
    assert "1 case opened for human review" in err
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {
        "indicators.jsonl", "scores.jsonl", "guard.db", "master.key"}
    assert oct((tmp_path / "out" / "master.key").stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing outside its folder


def test_extract_writes_numeric_summaries_and_keeps_good_records(tmp_path, capsys):
    lines = sample_path().read_text().splitlines()
    bad = json.loads(lines[0])
    bad["messages"][3]["ts"] = "not a time"
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([lines[0], json.dumps(bad), lines[1]]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["extract", str(src), "-o", str(out), "--prefilter", "re"]) == 3  # rejected
    err = capsys.readouterr().err
    assert "Line 2, field 'messages[3].ts'" in err
    assert "prefilter engine: re (portable" in err and "pip install hyperscan" in err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    # line 2 repeats line 1's id: rejected for its timestamp first
    assert [r["conversation_id"] for r in rows] == ["sample-001", "sample-002"]
    first = {p["id"]: p for p in rows[0]["participants"]}
    assert first["u-102"]["disclosed_age"]["mean"] == 13
    assert first["u-101"]["indicators"]["secrecy.keep_secret"] >= 1
    assert rows[0]["state_bytes"] <= 1024


@pytest.mark.parametrize("args, code, message", [
    (["extract", "missing.jsonl"], 1, "[C001] Input file missing.jsonl does not exist"),
    (["score", "/", "-o", "x.jsonl"], 1, "[C001] Input file / does not exist or is not a file"),
    (["score", "{sample}", "-o", "x.jsonl", "--threshold", "5"], 1, "got float outside [0, 1]"),
    (["score", "missing.jsonl", "-o", "x.jsonl"], 1, "[C001]"),
    (["score", "{sample}", "-o", "/nonexistent-dir/x.jsonl"], 1, "[C002] Cannot write"),
    (["score", "{sample}", "-o", "x.jsonl", "--queue", "sqlite:///q.db"], 1, "[G002]"),
    (["audit", "verify", "--store", "sqlite:///nowhere.db"], 1, "[G128]"),
    (["score", "{sample}"], 2, "Missing option"),
    (["frobnicate"], 2, "No such command"),
    (["score", "{sample}", "-o", "x.jsonl", "--queue", "notaurl", "--master-key-file",
      "{key}"], 1, "[G100] Guard store (given): not a database URL"),
    (["score", "{sample}", "-o", "x.jsonl", "--queue", "sqlite:////nonexistent-dir/q.db",
      "--master-key-file", "{key}"], 1, "[G100]"),
    (["score", "{sample}", "-o", "x.jsonl", "--queue",
      "postgresql+psycopg://u:pw-canary@127.0.0.1:1/db", "--master-key-file", "{key}"], 1,
     "[G100] Guard store (given): the database cannot be reached"),
    (["data", "synth", "--n", "5", "--split", "bogus", "-o", "x.jsonl"], 2,
     "must be train or test"),
    (["console", "--port", "99999"], 2, "--port"),
])
def test_errors_are_one_line_and_an_exit_code(tmp_path, args, code, message):
    if "{key}" in args:
        from classifier.guard import Keys

        key = tmp_path.parent / f"{tmp_path.name}.key"  # (outside: the folder stays empty)
        key.write_text(Keys.generate())
        key.chmod(0o600)
        args = [a.replace("{key}", str(key)) for a in args]
    args = [a.replace("{sample}", str(sample_path())) for a in args]
    env = {"SOLICITATION_MASTER_KEY": "", "SOLICITATION_MASTER_KEY_FILE": ""}
    proc = run_cli(*args, env=env, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and "pw-canary" not in proc.stderr
    # a refused command leaves nothing behind (no empty store, no output)
    if code == 1:
        assert not list(tmp_path.iterdir())


def test_empty_input_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    proc = run_cli("score", str(empty), "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 1 and "[C003]" in proc.stderr
    assert "results in" not in proc.stderr  # no success line before the error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl"]  # no output left


def test_an_output_never_overwrites_the_input_and_a_failed_command_keeps_the_old_one(
        tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(sample_path().read_bytes())
    before = src.read_bytes()
    for cmd in ("score", "extract"):
        proc = run_cli(cmd, str(src), "-o", str(src))
        assert proc.returncode == 1 and "[C002]" in proc.stderr and "input" in proc.stderr
        assert src.read_bytes() == before
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    (tmp_path / "empty.jsonl").write_text("")
    assert run_cli("score", str(tmp_path / "empty.jsonl"), "-o", str(out)).returncode == 1
    assert out.read_text() == "previous results\n"  # a failed command replaced nothing
    assert run_cli("score", str(src), "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == len(before.splitlines())
    assert (out.stat().st_mode & 0o777) == 0o600
    proc = run_cli("score", str(src), "-o", str(tmp_path))
    assert proc.returncode == 1 and "[C002]" in proc.stderr and "directory" in proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_wrong_master_key_file_is_refused(tmp_path):
    key = tmp_path / "key"
    key.write_text("not a key")
    key.chmod(0o600)
    proc = run_cli("score", str(sample_path()), "-o", str(tmp_path / "s.jsonl"),
                   "--queue", f"sqlite:///{tmp_path / 'q.db'}", "--master-key-file", str(key))
    assert proc.returncode == 1 and "[G005]" in proc.stderr
    assert not (tmp_path / "q.db").exists()
    key.write_text("x" * 44)
    key.chmod(0o644)
    proc = run_cli("score", str(sample_path()), "-o", str(tmp_path / "s.jsonl"),
                   "--queue", f"sqlite:///{tmp_path / 'q.db'}", "--master-key-file", str(key))
    assert proc.returncode == 1 and "chmod 600" in proc.stderr


def test_broken_pipe_ends_quietly(tmp_path):
    src = tmp_path / "in.jsonl"
    write_jsonl(generate(300, seed=3, split="test"), src)
    proc = subprocess.run(f"{sys.executable} -m classifier._cli score {src} -o - | head -n 1",
                          shell=True, capture_output=True, text=True)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_score_keeps_input_order_across_batches(tmp_path, capsys):
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


def test_the_demo_prints_the_cross_author_headline_beside_in_author_figures(tmp_path):
    import shutil

    from classifier._cli import cross_author_headline
    from classifier._model import RiskModel

    shipped = Path(RiskModel.load().path)
    model = tmp_path / "model"
    shutil.copytree(shipped, model)
    meta = json.loads((model / "metadata.json").read_text())
    row = {"recall": 0.61, "fpr": 0.052, "worst_subgroup_fpr": 0.21, "roc_auc": 0.9}
    meta["cross_author"] = {"authors": {"a": {}, "b": {}, "c": {}},
                            "mean": {**row, "recall": 0.77, "fpr": 0.031},
                            "worst": row}
    (model / "metadata.json").write_text(json.dumps(meta))
    text = cross_author_headline(model)
    assert "optimistic" in text
    assert "(3 authors, each measured by a model that never saw it)" in text
    assert "mean recall 0.770, hard-negative FPR 3.1%, ROC-AUC 0.900" in text
    assert "worst author recall 0.610, worst author hard-negative FPR 5.2%" in text
    assert "worst subgroup FPR 21.0%" in text
    meta["cross_author"] = {"authors": {}, "mean": None, "worst": None}
    (model / "metadata.json").write_text(json.dumps(meta))
    assert "no cross-author figures in this model's metadata" in cross_author_headline(model)


def test_outputs_that_hold_ids_are_private_and_lines_are_counted_in_blocks(tmp_path):
    """`score` and `extract` write conversation and account ids: 0600 from creation. The
    progress total is counted in fixed blocks (bounded memory for any line length)."""
    from classifier._cli_base import count_lines

    for command in ("score", "extract"):
        out = tmp_path / f"{command}.jsonl"
        assert main([command, str(sample_path()), "-o", str(out)]) == 0
        assert out.stat().st_mode & 0o777 == 0o600, command
    lines = sample_path().read_bytes().count(b"\n")
    assert count_lines(sample_path(), block=7) == count_lines(sample_path()) == lines
    odd = tmp_path / "odd.jsonl"
    odd.write_bytes(b"a\n\n" + b"x" * 50 + b"\nlast without newline")
    assert count_lines(odd, block=4) == 4
    assert count_lines(tmp_path / "missing.jsonl") is None


def test_version_names_the_package_model_catalogue_and_factors():
    from classifier import __version__
    from classifier._model import default_model_dir

    meta = json.loads((default_model_dir() / "metadata.json").read_text())
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        f"solicitation-classifier {__version__}; model {meta['model_version']}, catalogue "
        f"{meta['catalogue_version']}, risk factors {meta['factor_version']}")
    assert "Detect possible solicitation of children" in run_cli("--help").stdout
