"""Property tests: no text, however strange, crashes the extractor or changes its schema."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
chat_words = st.sampled_from(["are", "your", "parents", "home", "im", "13", "u", "r", "alone",
                              "send", "pic", "😀", "שלום", "مرحبا", "\u200f", "\x00", "\n",
                              "İ", "ß", "\ud800", "  "])


@SETTINGS
@given(texts=st.lists(st.text(), max_size=8))
def test_any_unicode_keeps_the_schema(extractor, full_extractor, texts):
    batch = extractor.extract_batch(texts)
    assert batch.counts.shape == (len(texts), extractor.n_features)
    assert batch.counts.dtype == np.uint16
    np.testing.assert_array_equal(batch.counts, full_extractor.extract_batch(texts).counts)


@SETTINGS
@given(words=st.lists(chat_words, max_size=30))
def test_chat_like_noise_agrees_with_full_matcher(extractor, full_extractor, words):
    text = " ".join(words)
    got, ref = extractor.extract(text), full_extractor.extract(text)
    np.testing.assert_array_equal(got.counts, ref.counts)
    assert got.ages == ref.ages


def test_one_megabyte_message(extractor):
    text = ("lorem ipsum dolor sit amet 😀 " * 40000)[:1_000_000] + " are your parents home"
    hits = extractor.extract(text)
    assert hits.counts.shape == (extractor.n_features,)
    assert hits.counts[extractor.index("supervision_check.parents_home")] == 1


def test_empty_and_whitespace(extractor):
    batch = extractor.extract_batch(["", " ", "\n\n", "\t"])
    assert not batch.counts.any() and batch.n_candidates == 0


@SETTINGS
@given(batch=st.lists(st.lists(chat_words, max_size=8).map(" ".join), max_size=12))
def test_batches_of_matching_messages_agree_in_every_engine(any_extractor, full_extractor,
                                                            batch):
    # consecutive messages that each start and end with a match: a word edge consumed by
    # one message's match must not hide the next message's match
    np.testing.assert_array_equal(any_extractor.extract_batch(batch).counts,
                                  full_extractor.extract_batch(batch).counts)


def test_back_to_back_matches_in_a_batch(any_extractor, full_extractor):
    batch = ["ily", "im 13", "asl", "ily", "13/f", "send me a pic", "im 13"]
    got = any_extractor.extract_batch(batch)
    np.testing.assert_array_equal(got.counts, full_extractor.extract_batch(batch).counts)
    assert (got.counts.sum(axis=1) > 0).all()
