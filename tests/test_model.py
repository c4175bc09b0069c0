"""Risk factors, training, ONNX parity, the shipped model, scoring and early detection."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from classifier import (
    FEATURE_NAMES,
    Conversation,
    ConversationState,
    Message,
    ModelError,
    Participant,
    RiskFactorBuilder,
    RiskModel,
    Scorer,
    TextBoundary,
    read_jsonl,
    sample_path,
)
from classifier._cli import main
from classifier._features import MONOTONE_INCREASING
from classifier._model import default_model_dir

pytestmark = pytest.mark.obligation("art3-1-f", "recital-6", "art3-1-e", "reg2026-scope",
                                    "recital-26-27")

T0 = datetime(2026, 4, 2, 17, 0, tzinfo=UTC)
GROOMING_LINES = ["hey ur drawings are cool", "how old r u", "ur so mature for ur age",
                  "are your parents home", "dont tell anyone we talk", "add me on snap",
                  "send me a pic", "we should meet up"]


def dialogue(a_lines, b_lines, a="a", b="b") -> list[Message]:
    msgs = []
    for i, (x, y) in enumerate(zip(a_lines, b_lines, strict=True)):
        msgs.append(Message(a, T0 + timedelta(minutes=4 * i), x))
        msgs.append(Message(b, T0 + timedelta(minutes=4 * i + 1), y))
    return msgs


def conversation(cid, msgs, ages) -> Conversation:
    return Conversation(cid, tuple(Participant(p, age) for p, age in ages.items()), tuple(msgs))


@pytest.fixture(scope="module")
def scorer(extractor):
    return Scorer(extractor=extractor)


def factors(extractor, msgs, declared):
    state = ConversationState("c", extractor.catalogue)
    state.add(TextBoundary(extractor).extract([Conversation("c", (), tuple(msgs))])[0])
    x = RiskFactorBuilder(extractor.catalogue).transform(state, declared)
    return dict(zip(FEATURE_NAMES, x.tolist(), strict=True))


def test_factor_schema_is_fixed_and_documented():
    from classifier._features import FACTOR_VERSION, MONOTONE_DECREASING, RISK_FACTORS

    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == len(RISK_FACTORS)
    assert set(FEATURE_NAMES) >= MONOTONE_INCREASING | MONOTONE_DECREASING
    assert not MONOTONE_INCREASING & MONOTONE_DECREASING
    assert all(text for _, text in RISK_FACTORS) and FACTOR_VERSION
    # factors that helped on one author's wording and hurt on others' are gone
    assert not {"log_reply_latency_younger", "night_share", "older_started",
                "log_span_hours", "younger_age_question"} & set(FEATURE_NAMES)


def test_age_gap_and_child_likelihood(extractor):
    child_lines = ["hi", "im 12", "ok", "my mom is at work", "ok", "lol", "ok", "maybe"]
    adult = dialogue([*GROOMING_LINES[:1], "im 34, just got off work", *GROOMING_LINES[2:]],
                     child_lines)
    f = factors(extractor, adult, {"a": None, "b": None})
    assert f["younger_age"] == 12 and f["older_age"] == 34 and f["age_gap"] == 22
    assert f["younger_p_minor"] > 0.85 and f["older_p_adult"] > 0.95
    assert f["adult_minor_dyad"] > 0.8 and f["younger_age_evidence"] == 1.0
    assert f["older_secrecy"] > 0 and f["younger_secrecy"] == 0
    assert f["stage_coverage"] >= 0.6 and f["escalation_order"] > 0.5


def test_teenage_peers_score_low_by_design(extractor, scorer):
    # the same indicator-rich words between two 14-year-olds: recital 6
    peers = dialogue(["how old r u", "im 14", "dont tell anyone i like him",
                      "are your parents home", "add me on discord", "send me a pic"],
                     ["im 14 too", "same", "ok i wont", "no lol", "ok", "of my homework?"])
    f = factors(extractor, peers, {"a": 14, "b": 14})
    assert f["younger_p_minor"] > 0.9 and f["older_p_adult"] < 0.1
    assert f["adult_minor_dyad"] < 0.1 and abs(f["age_gap"]) < 2
    peer_score = scorer.score(conversation("peers", peers, {"a": 14, "b": 14})).score
    adult = dialogue(["im 34 btw", *GROOMING_LINES[1:6]],
                     ["hi", "im 14", "ok", "no", "ok", "ok"])
    adult_score = scorer.score(conversation("adult", adult, {"a": None, "b": 14})).score
    assert peer_score < scorer.threshold <= adult_score


def test_a_possible_adult_who_is_a_stated_minor_is_gated_unless_an_adult_life_shows(
        extractor, monkeypatch):
    from classifier._features import CONSTANTS, gate

    def vector(f):
        return np.array([[f[n] for n in FEATURE_NAMES]], dtype=np.float32)

    def pair(msgs, a="a", b="b"):  # the factors of the ordered pair a -> b
        state = ConversationState("c", extractor.catalogue)
        state.add(TextBoundary(extractor).extract([Conversation("c", (), tuple(msgs))])[0])
        X, pairs = RiskFactorBuilder(extractor.catalogue).pair_matrix(state, {})
        return dict(zip(FEATURE_NAMES, X[pairs.index((a, b))].tolist(), strict=True))

    # A says "im 14" and sends the risky lines to B, whose age nobody states: the pair
    # A -> B lacks an adult, so its score is cut (B -> A is scored too, as its own pair)
    teen = dialogue(["im 14", *GROOMING_LINES[1:6]], ["hi", "ok", "no", "ok", "ok", "ok"])
    f = pair(teen)
    assert f["older_p_adult"] < 0.1 and f["older_age_evidence"] == 1.0
    assert f["older_adult_cues"] == 0.0
    cut = float(gate(vector(f))[0])
    strength = CONSTANTS["adult_gate"]
    monkeypatch.setitem(CONSTANTS, "adult_gate", 0.0)
    uncut = float(gate(vector(f))[0])
    assert cut == pytest.approx(uncut * (1 - strength * (1 - f["older_p_adult"])), rel=1e-5)
    assert cut < uncut
    monkeypatch.setitem(CONSTANTS, "adult_gate", strength)
    # the same claim beside a cue of an adult's life ("after my shift") is not cut
    slip = dialogue(["im 14", "just finished my shift", *GROOMING_LINES[2:6]],
                    ["hi", "ok", "no", "ok", "ok", "ok"])
    g = pair(slip)
    assert g["older_adult_cues"] > 0
    no_cue = dict(g, older_adult_cues=0.0)
    assert float(gate(vector(g))[0]) > float(gate(vector(no_cue))[0])


def test_shipped_model_metadata_is_auditable():
    meta = json.loads((default_model_dir() / "metadata.json").read_text())
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert 0 < meta["threshold"] < 1 and "false-positive rate" in meta["threshold_policy"]
    assert len(meta["model_sha256"]) == 64 and len(meta["catalogue_sha256"]) == 64
    assert meta["factor_version"] and len(meta["recognisers_sha256"]) == 64
    assert {"generator", "real_benign"} <= set(meta["training_data"])
    assert len(meta["training_data"]) >= 10  # at least 8 independent authors
    assert meta["metrics"]["onnx_parity_max_abs_diff"] <= 1e-5
    card = (default_model_dir() / "model_card.md").read_text()
    assert meta["model_version"] in card and "## Limits" in card


def test_model_directory_is_verified(tmp_path, extractor):
    src = default_model_dir()
    with pytest.raises(ModelError, match=r"\[M001\]"):
        RiskModel.load(tmp_path)
    bad = tmp_path / "tampered"
    shutil.copytree(src, bad)
    (bad / "model.onnx").write_bytes((bad / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(ModelError, match=r"\[M002\]"):
        RiskModel.load(bad)
    other = tmp_path / "other"
    shutil.copytree(src, other)
    with pytest.raises(ModelError, match=r"\[M004\]"):
        RiskModel.load(other, catalogue_sha256="0" * 64)
    meta = json.loads((other / "metadata.json").read_text())
    meta["feature_names"] = meta["feature_names"][::-1]
    (other / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"\[M003\]"):
        RiskModel.load(other)


def test_scores_with_explanations_and_refusals(scorer):
    convs = {r.conversation.conversation_id: r.conversation for r in read_jsonl(sample_path())}
    groomed = scorer.score(convs["sample-001"])
    assert groomed.flagged and groomed.flagged_at_message is not None
    assert set(groomed.risk_factors) <= set(FEATURE_NAMES) and groomed.risk_factors
    assert not scorer.score(convs["sample-002"]).flagged  # teen peers
    assert not scorer.score(convs["sample-005"]).flagged  # everyday adults
    e2ee = Conversation("x", convs["sample-001"].participants, convs["sample-001"].messages,
                        e2ee=True)
    assert scorer.score(e2ee).to_dict() == {"conversation_id": "x", "status": "refused",
                                            "reason": "e2ee"}
    helpline = Conversation("h", (Participant("a", None, "helpline"), Participant("b")),
                            convs["sample-001"].messages)
    assert scorer.score(helpline).reason == "protected_participant"


def test_stream_flags_at_the_first_crossing(scorer):
    conv = next(r.conversation for r in read_jsonl(sample_path())
                if r.conversation.conversation_id == "sample-001")
    stream = scorer.stream(conv.conversation_id, {p.id: p.declared_age for p in
                                                   conv.participants})
    scores = [stream.add(m) for m in conv.messages]
    assert stream.flagged
    assert stream.flagged_at_message == scorer.first_crossing(conv)
    np.testing.assert_allclose(scores, scorer.prefix_scores(conv), atol=1e-6)


def test_cli_score_writes_design_format(tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(sample_path()), "-o", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 6
    assert set(rows[0]) == {"conversation_id", "score", "flagged", "risk_factors",
                            "model_version", "threshold", "flagged_at_message", "subject"}
    assert "flagged for human review" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["logistic", "gbt"])
def test_onnx_parity_with_scikit_learn(kind):
    pytest.importorskip("sklearn")
    from classifier.training import export_onnx, fit_model, onnx_parity

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, len(FEATURE_NAMES))).astype(np.float32)
    y = (X[:, 2] + 0.5 * X[:, 11] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    model = fit_model(kind, X, y)
    assert onnx_parity(model, export_onnx(model, X.shape[1]), X) <= 1e-5


def test_threshold_policy_by_hand():
    from classifier.training import ThresholdPolicy

    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.8])
    labels = np.array([0, 0, 0, 1, 1, 0])
    t = ThresholdPolicy(max_fpr=0.0).choose(scores, labels)
    assert 0.8 < t < 0.9  # no benign above it
    t = ThresholdPolicy(max_fpr=0.25).choose(scores, labels)
    assert 0.3 < t <= 0.8 + 1e-9  # one benign of four may be flagged


def test_retraining_a_small_configuration_is_deterministic(tmp_path):
    pytest.importorskip("sklearn")
    import os
    import subprocess
    import sys

    from classifier.evaluation.train import small_config, train

    authors = ("generator", "a01_sms", "a04_kids_apps")
    a = train(tmp_path / "a", small_config(authors=authors), with_cross_author=False,
              report=open(os.devnull, "w"))  # noqa: SIM115
    # a second process with another hash seed must write the same bytes
    code = ("import os; from classifier.evaluation.train import small_config, train; "
            f"train(os.environ['OUT'], small_config(authors={authors!r}), "
            "with_cross_author=False, report=open(os.devnull, 'w'))")
    env = {**os.environ, "OUT": str(tmp_path / "b"), "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    b = json.loads((tmp_path / "b" / "metadata.json").read_text())
    assert a["model_sha256"] == b["model_sha256"] and a["threshold"] == b["threshold"]
    assert a["recognisers_sha256"] == b["recognisers_sha256"]
    assert a["metrics"]["in_author_optimistic"]["recall"] > 0.6
    model = RiskModel.load(tmp_path / "a")
    assert model.version == a["model_version"]
    # the model directory carries its own recognisers: a pipeline picks them up
    from classifier import Pipeline

    assert Pipeline(model=model).extractor.catalogue.sha256 == a["catalogue_sha256"]


def test_score_many_equals_score_one_by_one(scorer):
    from classifier.evaluation.synth import generate

    convs = list(generate(80, seed=31, split="test"))
    many = scorer.score_many(convs)
    assert sum(r.flagged for r in many) >= 3 and any(r.status == "refused" for r in many)
    for conv, got in zip(convs, many, strict=True):
        want = scorer.score(conv)
        assert (got.status, got.reason, got.flagged, got.flagged_at_message, got.subject) == (
            want.status, want.reason, want.flagged, want.flagged_at_message, want.subject)
        if want.status == "scored":
            assert got.score == pytest.approx(want.score, abs=1e-6)
            assert got.risk_factors == pytest.approx(dict(want.risk_factors), abs=1e-6)
            assert bool(got.risk_factors) == got.flagged  # only flags are explained
        if want.flagged:  # the chunked, stopping search finds the first of all prefixes
            full = np.flatnonzero(scorer.prefix_scores(conv) >= scorer.threshold)
            assert got.flagged_at_message == int(full[0])
    assert list(scorer.score_batch(iter(convs), batch_messages=500)) == many


def test_explain_all_explains_every_result(scorer):
    from classifier._scoring import Scorer

    conv = next(r.conversation for r in read_jsonl(sample_path())
                if r.conversation.conversation_id == "sample-005")
    everyone = Scorer(scorer.model, extractor=scorer.extractor, explain="all")
    assert not scorer.score(conv).risk_factors
    assert everyone.score(conv).risk_factors
    with pytest.raises(ValueError, match="explain"):
        Scorer(scorer.model, extractor=scorer.extractor, explain="some")


def test_explanations_in_one_call_equal_one_at_a_time(scorer):
    """The pipeline explains every flagged conversation of a batch in one model call:
    each row's score and contributions are those of explaining it alone."""
    from classifier.evaluation.synth import generate

    convs = list(generate(60, seed=7, split="test"))
    pipeline = scorer.pipeline
    X = np.vstack([pipeline.factors.transform(pipeline.state_of(c)) for c in convs])
    scores, contributions = scorer.model.explain_many(X)
    assert contributions.shape == X.shape and (scores > scorer.threshold).any()
    for x, score, contrib in zip(X, scores, contributions, strict=True):
        alone, mine = scorer.model.explain(x)
        assert alone == score
        np.testing.assert_array_equal(mine, contrib)


def test_a_wrong_argument_type_is_a_coded_error(scorer):
    from classifier import InputTypeError

    conv = next(iter(read_jsonl(sample_path()))).conversation
    with pytest.raises(InputTypeError, match=r"\[E005\] conversations\[0\] must be a Conv"):
        scorer.score([conv])  # type: ignore[arg-type]  # a list where one is expected
    with pytest.raises(InputTypeError, match=r"conversations\[1\]"):
        scorer.score_many([conv, {"conversation_id": "x"}])  # type: ignore[list-item]


def test_a_context_indicator_past_the_cap_changes_no_factor(extractor):
    """RiskFactorBuilder.inert: once a sender has counted context_cap child-context
    indicators, another message carrying only child context is inert: the factors after
    it equal those after a plain message in its place (so the stream and the batch may
    skip the model there); below the cap, or with any other indicator, it is not."""
    from classifier._features import CONSTANTS

    builder = RiskFactorBuilder(extractor.catalogue)
    k = extractor.index("child_context.homework")
    row = np.zeros(extractor.n_features, dtype=np.uint16)
    row[k] = 1
    cap = CONSTANTS["context_cap"]
    assert builder.inert(row, cap, 0) and not builder.inert(row, cap - 1, 0)
    mixed = row.copy()
    mixed[extractor.index("secrecy.keep_secret")] = 1
    assert not builder.inert(mixed, cap, cap)
    assert builder.inert(np.zeros_like(row), 0, 0)
    capped = ["i have homework", "my math homework is due tomorrow", "doing my homework",
              "ok"]
    below = ["i have homework", "ok", "sure", "ok"]
    adult = ["hi", "how r u", "cool", "nice", "ok"]
    for base, same in ((capped, True), (below, False)):
        with_it = factors(extractor, dialogue(adult, [*base, "finished my homework"]),
                          {"a": 35, "b": None})
        plain = factors(extractor, dialogue(adult, [*base, "ok"]), {"a": 35, "b": None})
        assert (with_it == plain) is same


def test_the_cross_author_measure_flags_what_the_pipeline_flags():
    """A held-out author is measured as the pipeline scores it: flagged when the score
    after any message where it could rise reaches the threshold (not only the whole
    conversation's), the score being that peak and the subject its pair's older party."""
    pytest.importorskip("sklearn")
    from classifier.evaluation.crossauthor import (
        FittedModel,
        conversation_scores,
        featurise,
        fit_fold,
        load_corpus,
    )
    from classifier.evaluation.train import small_config

    from classifier import Pipeline

    config = small_config(authors=("generator", "a01_sms", "a04_kids_apps"))
    corpus = load_corpus(config)
    fold = fit_fold(corpus, ("generator", "a01_sms"), config)
    convs = corpus.by_author["a04_kids_apps"][:120]
    F = featurise(convs, "a04_kids_apps", fold.extractor)
    scores, subjects = conversation_scores(fold.model, F)
    final, _ = conversation_scores(fold.model, _final_only(F))  # what it used to be
    pipeline = Pipeline(model=FittedModel(fold.model, fold.threshold, "fold"),
                        extractor=fold.extractor)
    results = [r for r in pipeline.score_many(convs) if r.status == "scored"]
    assert [r.conversation_id for r in results] == F.ids
    flagged = scores >= fold.threshold
    assert flagged.tolist() == [r.flagged for r in results]
    for i, r in enumerate(results):
        if r.flagged:
            assert (scores[i], subjects[i]) == (pytest.approx(r.score, abs=1e-6), r.subject)
    assert (scores >= final).all() and (scores > final + 1e-9).any()  # some peak earlier


def _final_only(F):
    G = F.take([True] * len(F))
    G.earlier, G.earlier_pairs = [], []
    return G


def test_training_rows_weigh_each_conversation_once_and_a_negatives_prefixes_as_asked():
    from classifier.evaluation.crossauthor import Featurised, training_rows

    from classifier import FEATURE_NAMES

    n = len(FEATURE_NAMES)
    rows = lambda k, v: np.full((k, n), v, dtype=np.float32)  # noqa: E731
    F = Featurised(ids=["p", "q"], labels=[1, 0], subgroups=["grooming", "teen_peers"],
                   authors=["x", "x"], offenders=["a", None], paces=["fast", "fast"],
                   mats=[rows(2, 1.0), rows(2, 2.0)],
                   pairs=[[("a", "b"), ("b", "a")], [("c", "d"), ("d", "c")]],
                   earlier=[rows(3, 5.0), rows(4, 3.0)],
                   earlier_pairs=[[("a", "b")] * 3, [("c", "d")] * 4])
    X, y, w = training_rows(F)
    assert len(X) == 3 and y.tolist() == [1, 0, 0] and w.tolist() == [1.0, 0.5, 0.5]
    X, y, w = training_rows(F, 0.5)  # the negative's 4 prefix rows, 0.5 in all
    assert len(X) == 7 and y.tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert w.tolist() == [1.0, 0.5, 0.5] + [0.125] * 4 and (X[3:] == 3.0).all()
    assert (X[0] == 1.0).all()  # a positive: its offender's final pair only, no prefix


def test_cross_author_folds_in_two_processes_equal_one_process():
    """``jobs=2`` runs the folds in spawned processes that load the corpus themselves:
    the same numbers as one process, in the same order; a corpus the config does not
    reproduce is refused rather than measured on other data."""
    pytest.importorskip("sklearn")
    from classifier.evaluation.crossauthor import cross_author, load_corpus
    from classifier.evaluation.train import small_config

    from classifier import ConfigError

    config = small_config(authors=("generator", "a01_sms", "a04_kids_apps"))
    corpus = load_corpus(config)
    one = cross_author(config, corpus=corpus, held_out=("a01_sms", "a04_kids_apps"))
    two = cross_author(config, corpus=corpus, held_out=("a01_sms", "a04_kids_apps"), jobs=2)
    assert [r.author for r in two] == ["a01_sms", "a04_kids_apps"]
    assert [(r.threshold, r.metrics) for r in two] == [(r.threshold, r.metrics) for r in one]
    corpus.benign_test = corpus.benign_test[:-1]
    with pytest.raises(ConfigError, match="E005"):
        cross_author(config, corpus=corpus, held_out=("a01_sms", "a04_kids_apps"), jobs=2)
    with pytest.raises(ConfigError, match="jobs"):
        cross_author(config, corpus=corpus, jobs=0)


def test_nobody_is_named_without_a_flag(scorer):
    """``subject`` is given for flagged conversations only, by the API as by the CLI."""
    from classifier.evaluation.synth import generate

    results = [scorer.score(c) for c in generate(60, seed=3, split="test")]
    assert any(r.flagged for r in results) and any(not r.flagged for r in results)
    for r in results:
        assert (r.subject is not None) == r.flagged
        assert r.to_dict().get("subject") == r.subject
