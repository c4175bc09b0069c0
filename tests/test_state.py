from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifier import (
    Conversation,
    ConversationState,
    Message,
    StateError,
    TextBoundary,
    conversation_state,
    merge_states,
)

pytestmark = pytest.mark.obligation("art1-2", "art3-1-b")

T0 = datetime(2026, 3, 1, 21, 0, tzinfo=UTC)
LINES = ["hi", "how old r u", "im 13", "ur so mature for ur age", "are your parents home",
         "dont tell anyone", "send me a pic", "lol", "ok", "add me on snap", "im in year 8"]


def messages(n: int, senders=("a", "b")) -> list[Message]:
    return [Message(senders[i % len(senders)], T0 + timedelta(minutes=7 * i),
                    LINES[i % len(LINES)]) for i in range(n)]


def columns(extractor, msgs, cid="c"):
    return TextBoundary(extractor).extract([Conversation(cid, (), tuple(msgs))])[0]


def build(extractor, msgs, cid="c") -> ConversationState:
    state = ConversationState(cid, extractor.catalogue)
    state.add(columns(extractor, msgs, cid))
    return state


def test_counts_ages_and_traffic(extractor):
    state = build(extractor, messages(11))
    a, b = state.participants["a"], state.participants["b"]
    assert state.n_messages == 11 and (a.n_messages, b.n_messages) == (6, 5)
    assert a.counts[extractor.index("age_disclosure.i_am_age")] == 1
    assert b.counts[extractor.index("age_disclosure.i_am_age")] == 0
    assert a.disclosed_age.mean == 13 and b.disclosed_age.n == 0
    assert (a.school_age.n, a.school_age.low, a.school_age.high) == (1, 12, 13)
    assert state.n_turns == 10
    # directed traffic: every message of one party goes to the other
    assert state.directed("a", "b")[-1] == 6 and state.directed("b", "a")[-1] == 5


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), cut=st.integers(0, 60))
def test_merge_of_consecutive_parts_is_exact(extractor, n, cut):
    msgs = messages(n)
    cut = min(cut, n)
    whole = build(extractor, msgs)
    a, b = build(extractor, msgs[:cut]), build(extractor, msgs[cut:])
    assert a.merge(b) == whole
    assert b.merge(a) == whole
    assert a.merge(b).order_exact


def test_merge_of_three_parts_and_interleaved_parts(extractor):
    msgs = messages(30)
    whole = build(extractor, msgs)
    assert merge_states([build(extractor, msgs[i:i + 10]) for i in (0, 10, 20)]) == whole
    odd, even = build(extractor, msgs[::2]), build(extractor, msgs[1::2])
    merged = odd.merge(even)
    assert not merged.order_exact
    for pid, p in whole.participants.items():  # counters stay exact
        assert (merged.participants[pid].counts == p.counts).all()
        assert merged.participants[pid].n_messages == p.n_messages


def test_merge_refuses_other_conversation(extractor):
    with pytest.raises(StateError, match=r"\[E300\]"):
        build(extractor, messages(3), "x").merge(build(extractor, messages(3), "y"))


def test_serialisation_round_trip_and_bounded_size(extractor):
    sizes = []
    for n in (10, 100, 1000):
        state = build(extractor, messages(n))
        raw = state.to_bytes()
        sizes.append(len(raw))
        assert ConversationState.from_bytes(raw, extractor.catalogue) == state
        assert pickle.loads(pickle.dumps(state)) == state
    # the size grows with the indicators seen, never with the messages
    assert sizes[0] <= sizes[1] == sizes[2] <= 1024
    # every indicator fired: the counts go whole, no larger than the vector itself
    full = build(extractor, messages(10))
    for p in full.participants.values():
        p.counts[:] = 7
        p.first_seen[:] = 1.0
    raw = full.to_bytes()
    assert ConversationState.from_bytes(raw, extractor.catalogue) == full
    assert len(raw) - sizes[0] <= 2 * 2 * extractor.n_features + 2 * 8 * full.n_categories


def test_state_is_bounded_in_group_chats(extractor):
    senders = tuple(f"user-{i}" for i in range(40))
    state = ConversationState("g", extractor.catalogue, max_participants=4)
    for i, m in enumerate(messages(200, senders)):
        state.update(senders[i % 40], m.ts, extractor.extract(m.text))
    assert len(state.participants) == 4 and "*" in state.participants
    assert state.n_messages == 200


@pytest.mark.parametrize("raw", [b"", b"XYZ", b"CS1" + b"\0" * 8])
def test_corrupt_bytes_are_rejected(extractor, raw):
    with pytest.raises(StateError):
        ConversationState.from_bytes(raw, extractor.catalogue)


def test_truncated_bytes_are_rejected(extractor):
    raw = build(extractor, messages(5)).to_bytes()
    with pytest.raises(StateError, match=r"\[E301\]"):
        ConversationState.from_bytes(raw[:-3], extractor.catalogue)


def test_non_text_is_counted_not_scanned(extractor):
    msgs = [Message("a", T0, "are your parents home"), Message("a", T0, "", modality="audio")]
    state = build(extractor, msgs)
    a = state.participants["a"]
    assert (a.n_scanned, a.n_not_scanned, a.n_with_indicators) == (1, 1, 1)


def test_naive_timestamp_is_refused(extractor):
    state = ConversationState("c", extractor.catalogue)
    with pytest.raises(StateError, match=r"\[E303\]"):
        state.update("a", datetime(2026, 1, 1), None)


def _sequential(conv, extractor, start=None):
    state = start or ConversationState(conv.conversation_id, extractor.catalogue)
    for _ in state.replay(columns(extractor, conv.messages)):  # a message at a time
        pass
    return state


def _random_conversation(rng, index):
    from datetime import UTC, datetime, timedelta

    from classifier import Conversation, Message, Participant

    lines = ["hey", "are your parents home", "im 13", "keep this between us", "lol ok",
             "what school do u go to", "send a pic", "my birthday is in 2011", "cool"]
    senders = [f"u{k}" for k in range(rng.integers(1, 12))]  # beyond 8: the overflow slot
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    msgs, t = [], 0
    for _ in range(int(rng.integers(1, 60))):
        t += int(rng.choice([0, 5, 600, 30000, -400]))  # ties and going back in time
        modality = "text" if rng.random() > 0.1 else "audio"
        msgs.append(Message(str(rng.choice(senders)), t0 + timedelta(seconds=t),
                            str(rng.choice(lines)), modality))
    return Conversation(f"r-{index}", tuple(Participant(s) for s in senders), tuple(msgs))


def test_vectorised_update_equals_a_message_at_a_time(extractor):
    rng = np.random.default_rng(5)
    for index in range(200):
        conv = _random_conversation(rng, index)
        whole = conversation_state(conv, extractor)
        assert whole == _sequential(conv, extractor), index
        assert whole.to_bytes() == _sequential(conv, extractor).to_bytes(), index
        # continuing from a prior state as well
        prior = conversation_state(_random_conversation(rng, index), extractor)
        prior.conversation_id = conv.conversation_id
        a, b = prior.copy(), prior.copy()
        a.add(columns(extractor, conv.messages))
        assert a.to_bytes() == _sequential(conv, extractor, b).to_bytes(), index


def test_one_batch_serves_many_conversations(extractor):
    rng = np.random.default_rng(9)
    convs = [_random_conversation(rng, i) for i in range(60)]
    shared = TextBoundary(extractor).extract(convs)  # one extraction batch for all
    assert sum(bool(c.ages) for c in shared) > 5  # age evidence of several conversations
    for conv, cols in zip(convs, shared, strict=True):
        state = ConversationState(conv.conversation_id, extractor.catalogue)
        state.add(cols)
        assert state.to_bytes() == _sequential(conv, extractor).to_bytes()


def test_a_bare_number_is_an_age_only_when_it_answers_an_age_question(extractor):
    asked = build(extractor, [Message("a", T0, "how old r u"), Message("b", T0, "13")])
    assert asked.participants["b"].disclosed_age.mean == 13
    later = build(extractor, [Message("a", T0, "how old r u"), Message("b", T0, "hmm why"),
                              Message("b", T0, "13 lol")])
    assert later.participants["b"].disclosed_age.mean == 13  # same turn, still the answer
    unasked = build(extractor, [Message("a", T0, "what time is it"), Message("b", T0, "13")])
    assert unasked.participants["b"].disclosed_age.n == 0
    own = build(extractor, [Message("a", T0, "how old r u"), Message("a", T0, "35")])
    assert own.participants["a"].disclosed_age.n == 0  # nobody asked a


def test_corrections_and_retractions_are_kept_as_numbers(extractor):
    state = build(extractor, [Message("a", T0, "im 16"), Message("b", T0, "cool"),
                              Message("a", T0, "ok im actually 24"), Message("b", T0, "what"),
                              Message("a", T0, "ok im not 16")])
    a = state.participants["a"]
    assert a.corrected_age == 24 and a.n_retractions == 1
    restored = ConversationState.from_bytes(state.to_bytes(), extractor.catalogue)
    assert restored == state and restored.participants["a"].corrected_age == 24


def test_group_messages_go_to_whom_the_sender_answers(extractor):
    msgs = [Message("kid", T0, "hi all"), Message("adult", T0, "ur so mature for ur age"),
            Message("other", T0, "lol"), Message("adult", T0, "send me a pic"),
            Message("other", T0, "ok"), Message("kid", T0, "what")]
    state = build(extractor, msgs)
    cats = list(extractor.catalogue.categories)
    to_kid = state.directed("adult", "kid")
    to_other = state.directed("adult", "other")
    assert to_kid[-1] == 1 and to_kid[cats.index("flattery")] == 1
    assert to_other[-1] == 1 and to_other[cats.index("photo_request")] == 1
    # kid's opening went to nobody yet (counted towards each); its "what" answers other
    assert state.directed("kid", "adult")[-1] == 1 and state.directed("kid", "other")[-1] == 2
    # one extraction for all, then message by message: the same pairs
    assert state == _sequential(Conversation("c", (), tuple(msgs)), extractor)
