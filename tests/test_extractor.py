from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier import InputTypeError
from classifier.indicators import AgeKind, IndicatorExtractor, IndicatorVectorizer

pytestmark = pytest.mark.obligation("art3-1-f", "art3-1-b")


def _examples(catalogue, attr):
    return [(ind.id, text) for ind in catalogue.indicators for text in getattr(ind, attr)]


def test_every_catalogue_example_matches(any_extractor, catalogue):
    for ind_id, text in _examples(catalogue, "examples"):
        counts = any_extractor.extract(text).counts
        assert counts[any_extractor.index(ind_id)] >= 1, (any_extractor.prefilter.engine, ind_id,
                                                          text)


def test_no_catalogue_counterexample_matches(any_extractor, catalogue):
    for ind_id, text in _examples(catalogue, "counterexamples"):
        counts = any_extractor.extract(text).counts
        assert counts[any_extractor.index(ind_id)] == 0, (ind_id, text)


# indicator family, text, expected count of that indicator
TABLE = [
    ("age_question.how_old", "HOW OLD R U???", 1),
    ("age_question.how_old", "how old is the tree", 0),
    ("age_question.asl", "asl", 1),
    ("age_disclosure.i_am_age", "im 13", 1),
    ("age_disclosure.i_am_age", "I'm 13 years old", 1),
    ("age_disclosure.i_am_age", "im 13 minutes away", 0),
    ("age_disclosure.i_am_age", "13 reasons why is a show", 0),
    ("age_disclosure.age_suffix", "13 yo", 1),
    ("age_disclosure.age_suffix", "my kids are 13 and 15", 0),
    ("age_disclosure.age_suffix", "my son is 13 years old", 0),
    ("age_disclosure.asl_answer", "13/f", 1),
    ("age_disclosure.asl_answer", "we need 13 f stops", 0),
    ("age_disclosure.turning_soon", "turning 14 next month", 1),
    ("age_disclosure.birth_year", "born in 2013", 1),
    ("school_grade.uk_year", "im in year 8", 1),
    ("school_grade.uk_year", "8 years ago", 0),
    ("school_grade.us_grade", "im in 8th grade", 1),
    ("child_context.parents_rules", "my mom wont let me", 1),
    ("child_context.bedtime", "its past my bedtime", 1),
    ("adult_context.work", "just got off work", 1),
    ("adult_context.family", "my wife is asleep", 1),
    ("flattery.maturity", "ur so mature 4 ur age", 1),
    ("isolation.friends", "ur friends are fake", 1),
    ("secrecy.keep_secret", "dont tell ur mom", 1),
    ("secrecy.delete", "delete our chat", 1),
    ("supervision_check.parents_home", "r ur parents home rn", 1),
    ("supervision_check.alone", "u home alone?", 1),
    ("supervision_check.device", "who reads ur messages", 1),
    ("platform_move.other_app", "add me on disc0rd", 0),
    ("platform_move.other_app", "add me on discord", 1),
    ("platform_move.phone_number", "whats ur #", 1),
    ("gift.in_game", "ill get u robux", 1),
    ("photo_request.photo", "send me a pic", 1),
    ("video_request.camera", "turn on ur cam", 1),
    ("meeting_request.meet", "wanna meet up", 1),
    ("meeting_request.location", "where do u live", 1),
    # sexual-topic word list, exercised with clinical terms only
    ("sexual_topic.clinical_terms", "we had sexual health education", 1),
    ("sexual_topic.clinical_terms", "the doctor said genitalia", 1),
    ("sexual_topic.clinical_terms", "sussex and essex", 0),
    ("sexual_topic.body_development", "have you started puberty", 1),
]


@pytest.mark.parametrize(("ind_id", "text", "expected"), TABLE)
def test_indicator_table(extractor, ind_id, text, expected):
    assert extractor.extract(text).counts[extractor.index(ind_id)] == expected


@pytest.mark.parametrize(
    ("text", "kind", "low", "high"),
    [
        ("im 13", AgeKind.DISCLOSED, 13, 13),
        ("i am thirteen", AgeKind.DISCLOSED, 13, 13),
        ("13 yo", AgeKind.DISCLOSED, 13, 13),
        ("13yo lol", AgeKind.DISCLOSED, 13, 13),
        ("13/f", AgeKind.DISCLOSED, 13, 13),
        ("14f uk", AgeKind.DISCLOSED, 14, 14),
        ("turning 14 soon", AgeKind.DISCLOSED, 13, 14),
        ("born in 2013", AgeKind.DISCLOSED, 12, 13),
        ("im in year 8", AgeKind.SCHOOL, 12, 13),
        ("im in 8th grade", AgeKind.SCHOOL, 13, 14),
        ("im in middle school", AgeKind.SCHOOL, 11, 14),
        ("im 34 and work in sales", AgeKind.DISCLOSED, 34, 34),
        ("hes 14 same as us", AgeKind.DISCLOSED, 14, 14),
        ("am 13", AgeKind.DISCLOSED, 13, 13),
        ("my 13th birthday is on saturday", AgeKind.DISCLOSED, 12, 13),
        ("am in s2", AgeKind.SCHOOL, 12, 14),
        ("im in jss2", AgeKind.SCHOOL, 11, 13),
        ("revising for the 11 plus", AgeKind.SCHOOL, 10, 15),
        ("ok you caught me. im a bit older than i said", AgeKind.RETRACTION, None, None),
    ],
)
def test_age_evidence_is_parsed_to_numbers(extractor, text, kind, low, high):
    ages = extractor.extract(text, reference_year=2026).ages
    if low is None:  # a retraction carries no number
        assert [a.kind for a in ages] == [kind] and np.isnan([ages[0].low, ages[0].high]).all()
    else:
        assert [(a.kind, a.low, a.high) for a in ages] == [(kind, low, high)]


@pytest.mark.parametrize(
    ("text", "category"),
    [("my mum can drop us", "child_context"), ("ill ask my dad", "child_context"),
     ("is nadia in our year", "child_context"), ("i fell over in pe", "child_context"),
     ("did anyone do the science sheet", "child_context"),
     ("just me till 7, mum works late", "child_context"),
     ("i can drive us", "adult_context"), ("ive had my licence for years", "adult_context")])
def test_everyday_cues_of_a_child_and_of_an_adult(extractor, catalogue, text, category):
    counts = extractor.extract(text).counts
    hit = {catalogue.indicators[k].category for k in np.flatnonzero(counts)}
    assert category in hit


@pytest.mark.parametrize(("text", "category"),
                         [("i work in pe", "child_context"),
                          ("in our year end review", "child_context"),
                          ("my boss said ok", "child_context"),
                          ("my mum can drive us", "adult_context")])
def test_everyday_cues_have_near_misses(extractor, catalogue, text, category):
    counts = extractor.extract(text).counts
    assert category not in {catalogue.indicators[k].category for k in np.flatnonzero(counts)}


@pytest.mark.parametrize("text", ["im 13 minutes away", "my kids are 13 and 15", "8 years ago",
                                  "13 reasons why", "year 2013 was good", "i have 13 cats"])
def test_near_misses_give_no_age(extractor, text):
    assert extractor.extract(text).ages == ()


def test_prefilter_agrees_with_full_matcher(catalogue, full_extractor):
    texts = [t for ind in catalogue.indicators for t in ind.examples + ind.counterexamples]
    texts += ["", " ", "hello", "HOW   OLD\tR U", "r u\nalone", "dont\x00tell anyone", "😀 asl 😀",
              "שלום are your parents home", "x" * 5000 + " send me a pic"]
    reference = full_extractor.extract_batch(texts)
    for engine in ("re", "hyperscan"):
        try:
            ext = IndicatorExtractor(catalogue=catalogue, prefilter=engine)
        except ImportError:
            continue
        got = ext.extract_batch(texts)
        np.testing.assert_array_equal(got.counts, reference.counts)
        assert dict(got.ages) == dict(reference.ages)
        assert got.n_candidates < len(texts)


def test_batch_rows_align_with_messages(extractor):
    texts = ["hi", "are your parents home", "", "ok", "send me a pic", "bye"]
    batch = extractor.extract_batch(texts)
    assert batch.counts.shape == (6, extractor.n_features)
    assert batch.counts.sum(axis=1).nonzero()[0].tolist() == [1, 4]


@pytest.mark.parametrize("bad", [None, 13, b"bytes", ["nested"]])
def test_non_string_input_gets_a_clear_error(extractor, bad):
    with pytest.raises(InputTypeError, match=r"\[E001\].*record 1"):
        extractor.extract_batch(["fine", bad])


def test_a_single_string_is_not_a_batch(extractor):
    with pytest.raises(InputTypeError, match="list of messages"):
        extractor.extract_batch("are your parents home")


def test_string_store_stays_bounded(extractor):
    before = len(extractor.nlp.vocab.strings)
    for round_ in range(3):
        texts = [f"are your parents home qx{round_}w{i}zz" for i in range(3000)]
        extractor.extract_batch(texts)
    assert len(extractor.nlp.vocab.strings) == before


def test_spacy_component_matches_extractor(extractor):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("solicitation_indicators")
    for text in ["are your parents home", "im 13", "nothing here"]:
        doc = nlp(text)
        np.testing.assert_array_equal(doc._.indicator_counts, extractor.extract(text).counts)
    assert [a.low for a in nlp("im 13")._.indicator_ages] == [13.0]


def test_vectorizer_contract_clone_and_pickle():
    vec = IndicatorVectorizer(prefilter="re")
    assert vec.get_params() == {"language": "en", "catalogue_path": None, "prefilter": "re"}
    with pytest.raises(AttributeError):
        vec.transform(["x"])
    X = vec.fit_transform(["are your parents home", "hello"])
    assert X.dtype == np.float32 and X.shape == (2, len(vec.get_feature_names_out()))
    blob = pickle.dumps(vec)
    assert b"parents" not in blob
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.transform(["are your parents home", "hello"]), X)
    sklearn_base = pytest.importorskip("sklearn.base")
    clone = sklearn_base.clone(vec)
    assert clone.get_params() == vec.get_params() and not hasattr(clone, "extractor_")


def test_extractor_pickles_without_vocabulary(extractor):
    extractor.extract_batch(["secretword123 are your parents home"])
    blob = pickle.dumps(extractor)
    assert b"secretword123" not in blob
    assert pickle.loads(blob).extract("im 13").ages[0].low == 13


# scikit-learn's checks that apply to a transformer of raw text; the ones that feed numeric
# matrices are skipped by check_estimator itself for string input, as for CountVectorizer
SKLEARN_API_CHECKS = [
    "check_no_attributes_set_in_init", "check_parameters_default_constructible",
    "check_get_params_invariance", "check_set_params", "check_estimator_cloneable",
    "check_estimator_repr", "check_do_not_raise_errors_in_init_or_set_params",
    "check_valid_tag_types", "check_estimators_unfitted", "check_mixin_order",
    "check_estimator_sparse_tag", "check_transformer_n_iter",
]


def test_vectorizer_passes_scikit_learns_check_estimator():
    checks = pytest.importorskip("sklearn.utils.estimator_checks")
    results = checks.check_estimator(IndicatorVectorizer(prefilter="re"), on_fail=None)
    assert results and not [r for r in results if r["status"] == "failed"]
    for name in SKLEARN_API_CHECKS:
        getattr(checks, name)("IndicatorVectorizer", IndicatorVectorizer(prefilter="re"))


def test_vectorizer_fit_refuses_what_is_not_messages():
    vec = IndicatorVectorizer(prefilter="re")
    for bad in ("one string", np.zeros((2, 3)), [1.0, 2.0], [["nested"]]):
        with pytest.raises(TypeError, match=r"\[E001\]"):
            vec.fit(bad)
    assert vec.fit_transform(m for m in ["hi", "r u alone"]).shape[0] == 2


def _spacy_lowers(nlp, texts):
    with nlp.memory_zone():
        return [[t.lower_ for t in doc] for doc in nlp.tokenizer.pipe(texts)]


def _chunk_lowers(extractor, texts):
    from classifier.indicators._extractor import tokenise_chunks

    nlp = extractor.nlp
    with nlp.memory_zone():
        return [lowers for lowers, _ in tokenise_chunks(nlp, texts, extractor._special_pairs)]


_TRICKY = st.lists(st.sampled_from(
    [*"aAbDdoOpsStxX8023 \n\t\r\x1c\x85\u2028\u3000\u00a0\u2009",
     *"'’\".,:;!?()[]{}<>=-_*/\\^%$€°&@#+|~`…",
     "Dr.", "e.g.", ":)", ":-)", "(:", "<3", "don't", "I'm", "cannot", "gonna", "10km",
     "5pm", "U.S.", "n't", "'s", "http://x.y/z", "a@b.co", "😀", "ಠ_ಠ", "  ", " \n "]),
    max_size=25).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TRICKY, min_size=1, max_size=8))
def test_chunk_tokenisation_is_spacys(extractor, texts):
    """Candidates are tokenised chunk by chunk (each distinct chunk of the batch once):
    the tokens must be exactly those of spaCy's tokenizer on each whole message."""
    assert _chunk_lowers(extractor, texts) == _spacy_lowers(extractor.nlp, texts)


def test_chunk_tokenisation_is_spacys_on_every_authors_wording(extractor):
    """The same on the independent authors' messages (every register, spelling and
    emoticon habit they wrote in), a batch at a time."""
    from classifier.evaluation.authors import GENERATOR, authors, load_author

    texts = [m.text for author in authors() if author.id != GENERATOR
             for conv in load_author(author) for m in conv.messages if m.is_text]
    assert len(texts) > 10_000
    for k in range(0, len(texts), 5000):
        part = texts[k:k + 5000]
        assert _chunk_lowers(extractor, part) == _spacy_lowers(extractor.nlp, part), k


def test_chunk_tokenisation_in_groups_is_spacys(extractor, monkeypatch):
    """The distinct chunks go through the tokenizer in groups of bounded text (spaCy
    refuses a text of 2**30 characters); many small groups give the same tokens."""
    import classifier.indicators._extractor as module

    texts = ["(hi) how r u?", "ok.. :) :)", "Dr. Who's there?!", "send it, pls", "(hi)"] * 3
    want = _spacy_lowers(extractor.nlp, texts)
    monkeypatch.setattr(module, "_CHUNK_TEXT_CHARS", 8)
    assert _chunk_lowers(extractor, texts) == want


_PIECES = ["hi", "are your parents home", "send me a pic", "im 13", "ok", "lol",
           "dont tell ur mum", "\x00", "é", "😂", "\ud800", "?", "Year 9", "13", " "]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=5).map(" ".join)
                | st.text(max_size=20), min_size=2, max_size=6))
def test_one_message_at_a_time_equals_the_batch(extractor, texts):
    """A stream extracts one message per call (the prefilter's and the recognisers' paths
    for one message): the same counts and ages as that message inside a batch."""
    batch = extractor.extract_batch(texts, reference_year=2026)
    for i, text in enumerate(texts):
        mask, hits = extractor.prefilter.candidates([text])
        whole_mask, whole_hits = extractor.prefilter.candidates(texts)
        assert bool(mask[0]) == bool(whole_mask[i])
        if hits is not None and whole_hits is not None:
            assert hits.get(0, set()) == whole_hits.get(i, set())
        one = extractor.extract_batch([text], reference_year=2026)
        np.testing.assert_array_equal(one.counts[0], batch.counts[i])
        assert one.ages.get(0, ()) == batch.ages.get(i, ())


def test_the_re_prefilter_reads_a_lone_surrogate_as_the_matcher_does(catalogue, full_extractor):
    """A lone surrogate is tokenised as "?" (it cannot be hashed): the portable prefilter
    sees the same "?", so a template anchored at the message end still matches."""
    ext = IndicatorExtractor(catalogue=catalogue, prefilter="re")
    batch = ["u alone \ud800", "hi", "u alone \ud800"]
    np.testing.assert_array_equal(ext.extract_batch(batch).counts,
                                  full_extractor.extract_batch(batch).counts)
    assert ext.extract_batch(batch).counts[0].any()
