"""The independent authors' corpora: every registered set loads, meets the required
composition, keeps the content rule on every message, and carries its card (the brief
verbatim, with the content rule word for word)."""

from __future__ import annotations

import pytest
from classifier.evaluation.authors import (
    AUTHORS_DIR,
    GENERATOR,
    authors,
    check_minimums,
    composition,
    load_author,
)
from classifier.evaluation.content import FORBIDDEN, content_problems

REGISTERED = [a for a in authors(include_sealed=True) if a.id != GENERATOR]
RULE = "No sexually explicit content anywhere: data, generators, tests, lexicon examples,"


def test_the_registry_lists_every_folder_and_two_sealed_authors():
    folders = {p.name for p in AUTHORS_DIR.iterdir() if p.is_dir()}
    assert folders == {a.id for a in REGISTERED}
    assert len(REGISTERED) >= 8
    assert sum(a.status == "sealed" for a in REGISTERED) >= 2
    assert {a.status for a in authors(include_sealed=True)} <= {
        "development", "validation", "sealed"}
    assert all(a.status != "sealed" for a in authors())


@pytest.mark.parametrize("author", REGISTERED, ids=lambda a: a.id)
def test_every_author_keeps_the_content_rule_and_the_composition(author):
    convs = load_author(author)
    # the scan names conversation and message, never text
    assert content_problems(convs) == []
    assert check_minimums(composition(convs)) == []
    card = (AUTHORS_DIR / author.id / "card.md").read_text(encoding="utf-8")
    assert "## The brief given to the author (verbatim)" in card
    assert " ".join(RULE.split()) in " ".join(card.split())


def test_the_scan_finds_what_it_must():
    from classifier import Conversation, Message, Participant

    people = (Participant("a"), Participant("b"))
    bad = Conversation("c1", people, (Message("a", 0.0, "hello"), Message("b", 1.0, "no nudes")))
    assert content_problems([bad]) == ["c1 message 1"]
    assert FORBIDDEN.search("lingerie") and not FORBIDDEN.search("send me a selfie")


def test_recognisers_learn_the_offenders_annotated_turns_only():
    from classifier.evaluation.recognisers import author_turns

    from classifier import Conversation, Message, Participant

    people = (Participant("adult"), Participant("child"))
    msgs = (Message("adult", 0.0, "add me on the other app",
                    annotations={"stage": "platform_move"}),
            Message("child", 1.0, "ok bet", annotations={"stage": "platform_move"}),
            Message("child", 2.0, "lol ok"),
            Message("adult", 3.0, "unannotated"))
    pos = Conversation("p", people, msgs, label=1, offender="adult")
    neg = Conversation("n", people, msgs[:2], label=0)
    assert author_turns([pos], "x") == [("add me on the other app", "platform_move", "x"),
                                        ("lol ok", None, "x")]
    assert [label for _, label, _ in author_turns([neg], "x")] == [None, None]


def test_without_the_corpora_the_cross_author_run_stops_with_a_coded_error(monkeypatch,
                                                                          tmp_path):
    """An installed package holds the registry, not the authors' data: the leave-one-
    author-out run says so instead of measuring the generator alone."""
    import classifier.evaluation.authors as authors_module
    from classifier.evaluation.crossauthor import CrossAuthorConfig, load_corpus

    from classifier import ConfigError

    monkeypatch.setattr(authors_module, "AUTHORS_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"\[E012\].*source checkout"):
        load_corpus(CrossAuthorConfig())
