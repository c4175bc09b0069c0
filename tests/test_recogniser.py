"""The learned recognisers: batch scoring equals scoring one message at a time, the
normalisation is the documented one, the file round-trips, and only numbers come out."""

from __future__ import annotations

import functools
import re
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.indicators import WordRecogniser, load_catalogue
from classifier.indicators._recogniser import normalise, tokens

_RUNS = re.compile(r"(.)\1{2,}")


@functools.cache
def _bundled() -> WordRecogniser:
    rec = load_catalogue().recogniser
    assert rec is not None
    return rec


def _reference(text: str) -> str:
    return _RUNS.sub(r"\1", re.sub(r"['\u2019`]", "", text.lower()))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="aAb? \n!é😂0'’`", max_size=25), min_size=1, max_size=6))
def test_batch_normalisation_equals_per_message(texts):
    joined = normalise("\x00".join(texts))
    assert joined.split("\x00") == [_reference(t) for t in texts]


def test_batch_scores_equal_one_at_a_time_and_the_file_round_trips():
    rec = load_catalogue().recogniser
    assert rec is not None
    texts = ["send me a pic pls", "", "hi", "ok ok ok", "dont tell ur mum we talk",
             "are your parents home rn???", "\x00weird", "wooooow u r sooo pretty",
             "\ud800\ud800\ud800 lone surrogates", "KKK \u212a\u212a\u212a"]
    batch = rec.scores(texts * 3)[:len(texts)]  # over the small-batch size: vectorised
    singles = np.vstack([rec.scores([t]) for t in texts])  # one at a time: plain Python
    np.testing.assert_array_equal(batch, singles)  # the same bits, so the same hits
    again = WordRecogniser.from_bytes(rec.to_bytes())
    np.testing.assert_array_equal(again.scores(texts), batch)
    assert again.sha256 == rec.sha256 and batch.dtype == np.float32
    assert rec.hits(texts).shape == (len(texts), len(rec.labels))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="aAb? \n!\x00é😂0'’`", max_size=30)
                | st.lists(st.sampled_from(["send", "me", "a", "pic", "pls", "dont", "tell",
                                            "ur", "mum", "??", "sooo", "pretty", "\n"]),
                           max_size=12).map(" ".join),
                min_size=1, max_size=40))
def test_small_batches_score_the_same_bits_as_the_vectorised_path(texts):
    """Up to ``_SMALL_BATCH`` messages are scored one at a time in plain Python; the
    vectorised path must give the same bits (else a hit could differ by batch size)."""
    from classifier.indicators._recogniser import _SMALL_BATCH

    rec = _bundled()
    padded = list(texts) + ["filler so the batch is vectorised"] * (_SMALL_BATCH + 1)
    vectorised = rec.scores(padded)[:len(texts)]
    one_by_one = np.vstack([rec.scores([t]) for t in texts])
    np.testing.assert_array_equal(vectorised, one_by_one)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=string.printable + "\x00\x1c_'`", max_size=40),
                min_size=1, max_size=8))
def test_ascii_batches_are_tokenised_as_one_message_at_a_time(texts):
    """An ASCII batch takes byte operations instead of the regex: the same words."""
    from classifier.indicators._recogniser import _ascii_tokens

    clean = [t.replace("\x00", " ") for t in texts]
    got = [tok.decode() for tok in _ascii_tokens("\x00".join(clean).lower().encode())]
    want: list[str] = []
    for i, t in enumerate(clean):
        want += (["\x00"] if i else []) + tokens(t)
    assert got == want


def test_a_contrasted_label_is_learned_against_the_other_label_only():
    """``contrasts``: child_context is fitted against adult_context turns and its threshold
    lets through at most ``benign_hit_rate`` of them; such turns are not benign turns of
    the other labels (a move's threshold is set on the benign turns alone)."""
    pytest.importorskip("sklearn")
    from classifier.training import fit_recognisers

    kid = ["my mum says i have homework", "school was boring today", "my teacher is mean",
           "mum took my phone again"] * 6
    grown = ["my boss wants the report", "paid my rent today", "long shift at work",
             "my wife says hi"] * 6
    moves = ["send me a pic", "send a pic now", "pls send me a pic"] * 4
    plain = ["hello there", "what is up", "nice weather", "see you later"] * 8
    turns = ([(t, "child_context", f"a{i % 3}") for i, t in enumerate(kid)]
             + [(t, "adult_context", f"a{i % 3}") for i, t in enumerate(grown)]
             + [(t, "photo_request", f"a{i % 3}") for i, t in enumerate(moves)]
             + [(t, None, f"a{i % 3}") for i, t in enumerate(plain)])
    contrasts = {"child_context": "adult_context", "adult_context": "child_context"}
    rec = fit_recognisers(turns, ["adult_context", "child_context", "photo_request"],
                          benign_hit_rate=0.05, min_count=2, contrasts=contrasts)
    hits = rec.hits(kid + grown + moves + plain)
    k, a, m = (rec.labels.index(x) for x in ("child_context", "adult_context",
                                              "photo_request"))
    n_kid, n_grown, n_moves = len(kid), len(grown), len(moves)
    assert hits[:n_kid, k].mean() > 0.5 and hits[n_kid:n_kid + n_grown, k].mean() <= 0.05
    assert hits[n_kid:n_kid + n_grown, a].mean() > 0.5 and hits[:n_kid, a].mean() <= 0.05
    assert hits[n_kid + n_grown:n_kid + n_grown + n_moves, m].all()
    assert rec.meta["contrasts"] == contrasts


def test_also_below_holds_a_threshold_on_turns_it_never_fitted():
    """``also_below``: the threshold also lets through at most the given share of another
    label's turns (real benign chat for the child-voice recogniser), never fitted."""
    pytest.importorskip("sklearn")
    from classifier.training import fit_recognisers

    kid = [f"my mum says i have {w} homework" for w in ("maths", "science", "art", "french")]
    grown = [f"my boss wants the {w} report" for w in ("sales", "budget", "audit", "tax")]
    real = [f"i have {w} homework for my college class" for w in
            ("maths", "science", "art", "french", "history", "music", "law", "chem",
             "bio", "econ")]
    turns = ([(t, "child_context", f"a{i}") for i, t in enumerate(kid * 3)]
             + [(t, "adult_voice", f"a{i}") for i, t in enumerate(grown * 3)]
             + [(t, "real", f"r{i}") for i, t in enumerate(real)])
    common = {"benign_hit_rate": 0.05, "min_count": 2,
              "contrasts": {"child_context": "adult_voice"}}
    loose = fit_recognisers(turns, ["child_context"], **common)
    held = fit_recognisers(turns, ["child_context"], **common,
                           also_below={"child_context": ("real", 0.1)})
    assert loose.hits(real)[:, 0].mean() > 0.1  # real chat reads young to the fitted model
    assert held.hits(real)[:, 0].mean() <= 0.1
    np.testing.assert_array_equal(held.weights, loose.weights)  # fitted on the same turns


def test_the_extractor_shares_the_prefilters_joined_text_without_changing_a_count():
    """The extractor lower-cases and joins a batch once for the prefilter and the
    recognisers; with lone surrogates, a Kelvin sign (lower-cases to ASCII), NUL and
    emoji in the batch, every message's counts equal those of extracting it alone."""
    from classifier import IndicatorExtractor

    ext = IndicatorExtractor()
    texts = ["send me a pic pls", "\ud800 lone surrogate, ur so pretty", "\x00weird",
             "KKK \u212a\u212a dont tell ur mum", "are your parents home rn???",
             "wooooow 😂 u r sooo pretty", "im 13 btw", "hi"] * 3
    for batch in (texts, [t for t in texts if t.isascii()],
                  [t for t in texts if "\ud800" not in t]):
        together = ext.extract_batch(batch).counts
        alone = np.vstack([ext.extract_batch([t]).counts for t in batch])
        np.testing.assert_array_equal(together, alone)
        assert together.any()
