from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier import CatalogueError
from classifier.indicators import load_catalogue
from classifier.indicators._catalogue import DATA_DIR

pytestmark = pytest.mark.obligation("art3-1-f", "art3-1-a")

REQUIRED_CATEGORIES = {
    "age_question", "age_disclosure", "school_grade", "child_context", "adult_context",
    "flattery", "isolation", "secrecy", "supervision_check", "platform_move", "gift",
    "photo_request", "video_request", "meeting_request", "trust", "family_context", "sexual_topic",
}


def test_bundled_catalogue_is_complete(catalogue):
    assert catalogue.language == "en" and catalogue.version
    assert len(catalogue) >= 40
    assert catalogue.n_patterns >= 500
    assert set(catalogue.categories) >= REQUIRED_CATEGORIES
    used = {ind.category for ind in catalogue.indicators}
    assert used >= REQUIRED_CATEGORIES
    assert len(set(catalogue.feature_names())) == len(catalogue)
    for ind in catalogue.indicators:
        assert ind.description and ind.risk_factor in catalogue.risk_factors
        assert ind.examples, f"{ind.id} has no examples"
        assert ind.counterexamples, f"{ind.id} has no counterexamples"
    assert len(catalogue.sha256) == 64


def _lines() -> list[dict]:
    return [json.loads(x) for x in (DATA_DIR / "en.jsonl").read_text().splitlines() if x.strip()]


def _write(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def _mutate_entry(k: int, fn):
    def mutate(lines):
        fn(lines[k])
        return lines
    return mutate


BROKEN = [
    ("E101", "line 3", lambda ls: [*ls[:2], "{not json", *ls[3:]]),
    ("E102", "line 1", lambda ls: ls[1:]),
    ("E103", "header", lambda ls: [{k: v for k, v in ls[0].items() if k != "version"}, *ls[1:]]),
    ("E105", "header", lambda ls: [{**ls[0], "colour": "red"}, *ls[1:]]),
    ("E104", "header", lambda ls: [{**ls[0], "language": "klingon"}, *ls[1:]]),
    ("E103", "age_question.how_old", _mutate_entry(1, lambda e: e.pop("category"))),
    ("E104", "age_question.how_old", _mutate_entry(1, lambda e: e.update(description=5))),
    ("E105", "age_question.how_old", _mutate_entry(1, lambda e: e.update(weight=2))),
    ("E106", "line 3", _mutate_entry(2, lambda e: e.update(id="age_question.how_old"))),
    ("E107", "age_question.how_old", _mutate_entry(1, lambda e: e.update(category="gossip"))),
    ("E108", "age_question.how_old", _mutate_entry(1, lambda e: e.update(risk_factor="vibes"))),
    ("E109", "template 0", _mutate_entry(1, lambda e: e.update(templates=["how (old|"]))),
    ("E109", "template 0", _mutate_entry(1, lambda e: e.update(templates=["how (old||ancient)"]))),
    ("E109", "template 0", _mutate_entry(1, lambda e: e.update(templates=["(how)?"]))),
    ("E109", "template 0", _mutate_entry(1, lambda e: e.update(templates=["how old) r u"]))),
    ("E110", "<SHOE_SIZE>", _mutate_entry(1, lambda e: e.update(templates=["im <SHOE_SIZE>"]))),
    ("E111", "template 0", _mutate_entry(1, lambda e: e.update(
        templates=[" ".join(["(a|b|c|d|e|f|g|h|i|j)"] * 5)]))),
    ("E112", "pattern 0", _mutate_entry(1, lambda e: e.update(patterns=[[{"LOWR": "x"}]]))),
    ("E113", "REGEX", _mutate_entry(1, lambda e: e.update(
        patterns=[[{"LOWER": {"REGEX": "\\d+"}}]]))),
    ("E113", "REGEX", _mutate_entry(1, lambda e: e.update(
        patterns=[[{"LOWER": {"REGEX": "^(\\d+$"}}]]))),
    ("E114", "'ORTH'", _mutate_entry(1, lambda e: e.update(patterns=[[{"ORTH": "x"}]]))),
    ("E115", "age rule", _mutate_entry(1, lambda e: e.update(age={"kind": "guess"}))),
    ("E115", "'offset'", _mutate_entry(1, lambda e: e.update(age={"kind": "number",
                                                                  "offset": [6, 5]}))),
    ("E116", "age_question.how_old", _mutate_entry(1, lambda e: e.update(templates=[]))),
    ("E117", "How.Old", _mutate_entry(1, lambda e: e.update(id="How.Old"))),
    ("E118", "no indicators", lambda ls: ls[:1]),
]


@pytest.mark.parametrize(("code", "names", "mutate"), BROKEN,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BROKEN)])
def test_broken_catalogue_names_file_entry_and_problem(tmp_path, code, names, mutate):
    path = _write(tmp_path, mutate(_lines()))
    with pytest.raises(CatalogueError) as err:
        load_catalogue(path=path)
    message = str(err.value)
    assert f"[{code}]" in message
    assert str(path) in message or code == "E119"
    assert names in message


def test_missing_file_and_language(tmp_path):
    with pytest.raises(CatalogueError, match=r"\[E100\]"):
        load_catalogue(path=tmp_path / "nope.jsonl")
    with pytest.raises(CatalogueError, match=r"\[E119\].*bundled: en"):
        load_catalogue("xx")


def test_own_catalogue_with_raw_patterns(tmp_path):
    lines = _lines()
    lines = [lines[0], {
        "id": "custom.code_word", "category": "secrecy", "risk_factor": "secrecy",
        "description": "A provider's own pattern.",
        "patterns": [[{"LOWER": "code"}, {"LOWER": {"IN": ["word", "phrase"]}},
                      {"LOWER": {"REGEX": "^\\d+$"}, "OP": "?"}]],
    }]
    cat = load_catalogue(path=_write(tmp_path, lines))
    assert cat.feature_names() == ("custom.code_word",)
    from classifier.indicators import IndicatorExtractor

    for engine in ("re", "none"):
        ext = IndicatorExtractor(catalogue=cat, prefilter=engine)
        assert ext.extract_batch(["the code word 42", "code red"]).counts[:, 0].tolist() == [1, 0]
