"""The token matcher does exactly what spaCy's matchers would do with the same patterns."""

from __future__ import annotations

import itertools

import pytest
import spacy
from classifier.evaluation.synth import generate
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.matcher import Matcher

from classifier.indicators import load_catalogue
from classifier.indicators._catalogue import compress
from classifier.indicators._matcher import TokenMatcher


def _expand(pattern):
    return set(itertools.product(*[sorted(i) for i in pattern]))


@settings(max_examples=200, deadline=None)
@given(st.sets(st.lists(st.sampled_from("abcd"), min_size=1, max_size=4).map(tuple),
               min_size=1, max_size=30))
def test_compress_folds_phrases_back_exactly(phrases):
    items = [tuple(("lit", w) for w in p) for p in phrases]
    compressed = compress(items)
    back = set().union(*(_expand(p) for p in compressed))
    assert back == set(phrases)
    assert len(compressed) <= len(phrases)


def _spacy_matcher(nlp, catalogue):
    """spaCy's Matcher with every compiled pattern of the catalogue, keyed by indicator."""
    matcher = Matcher(nlp.vocab, validate=True)
    for k, ind in enumerate(catalogue.indicators):
        pats = []
        for template in ind.templates:
            for p in template.patterns:
                pats.append([dict(catalogue.slots[i[1]]) if isinstance(i, tuple)
                             else {"LOWER": {"IN": sorted(i)}} for i in p])
        pats.extend([dict(t) for t in p] for p in ind.patterns)
        matcher.add(str(k), pats)
    return matcher


@pytest.fixture(scope="module")
def corpus(catalogue):
    texts = [t for ind in catalogue.indicators for t in (*ind.examples, *ind.counterexamples)]
    texts += [m.text for c in generate(300, seed=11, split="test") for m in c.messages]
    texts += ["im 13", "I'm 13!!", "r u alone rn?", "13/f", "born in 2013", "year 8 lol",
              "dont tell ur mum", "a/s/l", "how old r u", "8th grade"]
    return texts


def test_token_matcher_equals_spacy_matcher(catalogue, corpus):
    nlp = spacy.blank("en")
    reference = _spacy_matcher(nlp, catalogue)
    ours = TokenMatcher(catalogue)
    n_matches = 0
    for text in corpus:
        doc = nlp(text)
        want = {(int(nlp.vocab.strings[key]), s, e) for key, s, e in reference(doc)}
        got = set(ours.find([t.lower_ for t in doc]))
        assert got == want, text
        n_matches += len(want)
    assert n_matches > 500  # the corpus exercises the patterns


def test_restricting_to_hit_regexes_changes_nothing(catalogue, corpus):
    """Only the patterns of the regexes Hyperscan reports are tried: sound, because a
    template's regex is a superset of its phrases."""
    from classifier.indicators import hyperscan_available
    from classifier.indicators._prefilter import Prefilter

    if not hyperscan_available():
        pytest.skip("needs hyperscan (x86-64 Linux)")
    from classifier.indicators import MatchEngine

    nlp = spacy.blank("en")
    engine = MatchEngine(catalogue)
    mask, hits = Prefilter(catalogue.prefilter_regexes()[0], engine="hyperscan").candidates(corpus)
    for row, text in enumerate(corpus):
        doc = nlp(text)
        lowers, punct = [t.lower_ for t in doc], [t.is_punct or t.is_space for t in doc]
        full, ages = engine.match_tokens(lowers, punct, 2026)
        if not mask[row]:
            assert not full.any() and not ages, text
        else:
            got, got_ages = engine.match_tokens(lowers, punct, 2026, hits.get(row, ()))
            assert got.tolist() == full.tolist() and got_ages == ages, text


def test_regex_owner_maps_every_prefilter_regex():
    cat = load_catalogue()
    regexes, _ = cat.prefilter_regexes()
    assert len(TokenMatcher(cat).regex_owner) == len(regexes)


def test_limiting_to_some_prefilter_regexes_finds_their_matches_only():
    """``find(..., allowed=...)`` (the prefilter's hits) gives exactly the full search's
    matches of the allowed regexes' patterns, also when some patterns start with a
    letter slot ("s2", "jss2") and are tried at every token."""
    from collections import Counter

    catalogue = load_catalogue(recogniser=False)
    matcher = TokenMatcher(catalogue)
    assert matcher._anywhere  # the shipped catalogue has such patterns
    n_regex = len(matcher.regex_owner)
    texts = ["im in s2 at the academy", "jss2 student here", "how old r u", "ok im 13",
             "my mum can drop us after school", "hes 14 same as us lol", "nothing here",
             "am in p7 and my 13th birthday is on saturday"]
    for text in texts:
        lowers = text.split()
        full = matcher.find(lowers)
        assert matcher.find(lowers, allowed=range(n_regex)) == full  # order too
        union: Counter = Counter()
        for r in range(n_regex):
            got = matcher.find(lowers, allowed={r})
            assert all(k == matcher.regex_owner[r] for k, _, _ in got)
            union.update(got)
        assert union == Counter(full), text  # each pattern belongs to one regex
