"""The compliance pack: register, traceability that cannot rot, matrix, DPIA annex."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier import Conversation, Message, Participant, write_jsonl
from classifier.compliance import (
    REGISTER,
    check_traceability,
    load_register,
    matrix,
    tagged_tests,
)

pytestmark = pytest.mark.obligation("art3-1-c")
TESTS = Path(__file__).parent
CANARY = "zzdpiacanary8812"


def test_register_is_complete_and_traceable():
    register = load_register()
    ids = {o.id for o in register}
    assert {"art3-1-b", "art3-1-e", "art3-1-f", "art3-1-g-ii", "art3-1-i", "recital-6"} <= ids
    assert check_traceability(register, tagged_tests(TESTS)) == []


def _write(tmp_path, entries):
    path = tmp_path / "register.json"
    path.write_text(json.dumps({"register": "x", "version": "0", "obligations": entries}))
    return path


def _entry(**over):
    base = {"id": "art-x", "reference": "Art X", "requirement": "r", "implementation": "i",
            "modules": ["classifier._features"], "provider_duty": ""}
    return base | over


@pytest.mark.parametrize(("entries", "message"), [
    ([], "non-empty"),
    ([{"id": "a"}], r"obligations\[0\]: keys"),
    ([_entry(), _entry()], "duplicate id 'art-x'"),
    ([_entry(modules="classifier")], "list of module names"),
])
def test_broken_register_files(tmp_path, entries, message):
    with pytest.raises(ValueError, match=message):
        load_register(_write(tmp_path, entries))


def test_traceability_fails_on_a_broken_register(tmp_path):
    register = load_register(_write(tmp_path, [
        _entry(id="ok"), _entry(id="ghost-module", modules=["classifier.nope"]),
        _entry(id="untested")]))
    problems = check_traceability(register, {"ok": ["t::a"], "ghost-module": ["t::b"],
                                             "not-in-register": ["t::c"]})
    assert "ghost-module: module classifier.nope does not exist" in problems
    assert "untested: no test is tagged with it" in problems
    assert any("unknown obligation 'not-in-register'" in p for p in problems)
    assert len(problems) == 3


def test_tags_are_read_from_test_files(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\npytestmark = pytest.mark.obligation('a')\n"
        "@pytest.mark.obligation('b', 'c')\ndef test_one():\n    pass\n"
        "def test_two():\n    pass\n")
    tags = tagged_tests(tmp_path)
    assert tags == {"a": ["test_x.py::test_one", "test_x.py::test_two"],
                    "b": ["test_x.py::test_one"], "c": ["test_x.py::test_one"]}


def test_matrix_has_every_obligation_and_its_evidence():
    register = load_register()
    tags = tagged_tests(TESTS)
    md, page = matrix(register, tags)
    for o in register:
        assert o.reference in md and o.reference in page
    assert "test_guard.py::test_every_other_path_to_a_report_is_refused" in md
    assert md.count("implemented and tested") == len(register)


def test_dpia_cites_every_figure_and_holds_no_content(tmp_path):
    pytest.importorskip("mlflow")
    from classifier.evaluation import generate
    from classifier.evaluation.audit import AuditResult
    from classifier.evaluation.dpia import dpia_annex
    from classifier.evaluation.harness import evaluate, log_audit

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    empty = dpia_annex(None, uri)
    assert "N/A: no run in experiment" in empty
    data = tmp_path / "d.jsonl"
    convs = list(generate(60, seed=4, split="test"))
    convs.append(Conversation("c-canary", (Participant("p1"), Participant("p2")),
                              (Message("p1", convs[0].messages[0].ts, f"hi {CANARY}"),),
                              label=0, subgroup="everyday"))
    write_jsonl(convs, data)
    ev = evaluate([data], tracking_uri=uri)
    audit_id = log_audit(AuditResult(100, 100, 5, 0.2, 0.21, 0.6), uri)
    text = dpia_annex(None, uri, tagged_tests(TESTS))
    meta = json.loads((Path(__file__).parent.parent / "models" / "metadata.json").read_text())
    for needle in (ev.run_id, audit_id, meta["model_sha256"], meta["catalogue_sha256"],
                   f"{100 * ev.summary['fpr']:.2f}%", "all traceable"):
        assert needle in text, needle
    assert CANARY not in text and "c-canary" not in text
    # the cross-author figures are the headline, before any in-author evaluation
    headline = text.index("### 5.1 The headline: leave one author out")
    assert headline < text.index("### 5.2 The latest evaluation") < text.index(ev.run_id)
    mean = meta["cross_author"]["mean"]
    assert f"mean recall {mean['recall']:.3f}" in text[headline:]
    assert meta["cross_author"]["mlflow_run_id"] in text
    assert all(f"| {a} | " in text for a in meta["cross_author"]["authors"])
    from classifier._cli import main

    assert main(["compliance", "matrix", "-o", str(tmp_path / "mx"), "--tracking-uri", uri]) == 0
    mx = (tmp_path / "mx.md").read_text()
    assert f"MLflow run {ev.run_id}" in mx and f"MLflow run {audit_id}" in mx
    assert f"cross-author: mean recall {mean['recall']:.3f}" in mx
    assert CANARY not in mx


def test_cli_compliance_matrix(tmp_path, capsys):
    from classifier._cli import main

    assert main(["compliance", "matrix", "-o", str(tmp_path / "matrix")]) == 0
    assert "0 traceability problems" in capsys.readouterr().err
    assert (tmp_path / "matrix.html").read_text().startswith("<!doctype html>")
    assert REGISTER.is_file()


def test_bundled_test_index_is_current():
    """The wheel carries the obligation -> tests index (it has no tests/ folder); it must
    be what the tests say: regenerate with `python scripts/update_test_index.py`."""
    from classifier.compliance import TEST_INDEX

    assert json.loads(TEST_INDEX.read_text()) == tagged_tests(TESTS)
