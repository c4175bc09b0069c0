"""The learned recognisers: batch scoring equals scoring one message at a time, the
normalisation is the documented one, the file round-trips, and only numbers come out."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier.indicators import WordRecogniser, load_catalogue
from classifier.indicators._recogniser import normalise

_RUNS = re.compile(r"(.)\1{2,}")


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
             "are your parents home rn???", "\x00weird", "wooooow u r sooo pretty"]
    batch = rec.scores(texts)
    singles = np.vstack([rec.scores([t]) for t in texts])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-5)
    again = WordRecogniser.from_bytes(rec.to_bytes())
    np.testing.assert_array_equal(again.scores(texts), batch)
    assert again.sha256 == rec.sha256 and batch.dtype == np.float32
    assert rec.hits(texts).shape == (len(texts), len(rec.labels))
