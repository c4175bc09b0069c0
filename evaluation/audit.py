"""The substance audit: can the risk-factor vector reveal what a conversation is about?

Art 3(1)(b) requires that the technology "is not able to deduce the substance of the
content". We measure it: an attacker model is trained to predict the *topic* of real
benign conversations (the conversation-starter prompt each chitchat-dataset chat was
given, 35 topics) from our risk-factor vector, and the same attacker from a bag of words.
Both accuracies are reported against chance (the share of the most frequent topic). The
target: the risk-factor attacker within 5 points of chance, while bag-of-words does well.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from classifier import (
    Conversation,
    IndicatorExtractor,
    ParticipantState,
    RiskFactorBuilder,
    conversation_state,
)

from .benign import benign_split_of, convert

__all__ = ["AuditResult", "load_topics", "substance_audit"]


@dataclass(frozen=True)
class AuditResult:
    n_train: int
    n_test: int
    n_topics: int
    chance: float
    risk_factor_accuracy: float
    bag_of_words_accuracy: float

    @property
    def risk_factor_gap(self) -> float:
        """Points above chance reached from the risk-factor vector."""
        return 100.0 * (self.risk_factor_accuracy - self.chance)

    def to_dict(self) -> dict[str, float]:
        return {"n_train": self.n_train, "n_test": self.n_test, "n_topics": self.n_topics,
                "chance": self.chance, "risk_factor_accuracy": self.risk_factor_accuracy,
                "bag_of_words_accuracy": self.bag_of_words_accuracy,
                "risk_factor_points_above_chance": self.risk_factor_gap}


def load_topics(dataset: Mapping[str, Any] | None = None,
                ) -> tuple[list[Conversation], list[int], list[str]]:
    """Real benign conversations with a topic index (chats without a prompt are left out).

    Topic indices are assigned in a fixed order (sorted sha256 of the prompt text), so the
    prompt text itself never needs to leave this function.
    """
    if dataset is None:
        import chitchat_dataset

        dataset = chitchat_dataset.Dataset()
    prompts = sorted({raw["prompt"] for raw in dataset.values() if raw.get("prompt")},
                     key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    index = {p: i for i, p in enumerate(prompts)}
    convs, topics, splits = [], [], []
    for i, (cid, raw) in enumerate(dataset.items()):
        if not raw.get("prompt"):
            continue
        conv = convert(cid, raw, i)
        convs.append(conv)
        topics.append(index[raw["prompt"]])
        splits.append(benign_split_of(conv.conversation_id))
    return convs, topics, splits


def state_vector(state: Any, builder: RiskFactorBuilder,
                 declared: Mapping[str, int | None]) -> np.ndarray:
    """Everything the library keeps of a conversation, as one vector: the risk factors,
    and the full numeric state (per participant, the two most active first: every
    indicator count, the first time each category was seen relative to the conversation's
    start, the traffic counts and the age moments; per ordered pair of those two, the
    messages per category). This, not the risk factors alone, is what the attacker gets."""
    parts = [builder.transform(state, declared)]
    people = sorted(state.participants.items(), key=lambda kv: -kv[1].n_messages)[:2]
    ids = [pid for pid, _ in people]
    k = state.n_indicators
    for i in range(2):
        if i < len(people):
            p = people[i][1]
            first = np.where(np.isfinite(p.first_seen),
                             (p.first_seen - state.first_ts) / 3600.0, -1.0)
            raw = np.asarray(p.scalars(), dtype=np.float64)
            # absolute times become hours since the conversation began
            for at in (4, 5, 16):
                raw[at] = (raw[at] - state.first_ts) / 3600.0 if np.isfinite(raw[at]) else -1.0
            scalars = np.nan_to_num(raw, nan=-1.0, posinf=-1.0, neginf=-1.0)
            parts += [np.log1p(p.counts), first, np.sign(scalars) * np.log1p(np.abs(scalars))]
        else:
            n_scalars = len(ParticipantState.empty(k, state.n_categories).scalars())
            parts += [np.zeros(k), np.full(state.n_categories, -1.0), np.zeros(n_scalars)]
    for a, b in ((0, 1), (1, 0)):
        row = (state.directed(ids[a], ids[b]) if len(ids) == 2
               else np.zeros(state.n_categories + 1))
        parts.append(np.log1p(row))
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def substance_audit(convs: Sequence[Conversation], topics: Sequence[int],
                    splits: Sequence[str], *, extractor: IndicatorExtractor | None = None,
                    random_state: int = 0) -> AuditResult:
    """Train both attackers on the train split, measure topic accuracy on the test split."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    extractor = extractor or IndicatorExtractor()
    builder = RiskFactorBuilder(extractor.catalogue)
    X = np.vstack([
        state_vector(conversation_state(c, extractor), builder,
                     {p.id: p.declared_age for p in c.participants})
        for c in tqdm(convs, disable=None, leave=False, desc="substance audit: state",
                      total=len(convs))
    ])
    y = np.asarray(topics)
    train = np.asarray(splits) == "train"
    test = ~train
    chance = Counter(y[test].tolist()).most_common(1)[0][1] / int(test.sum())
    rf_attacker = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
    rf_attacker.fit(X[train], y[train])
    rf_acc = float((rf_attacker.predict(X[test]) == y[test]).mean())
    texts = ["\n".join(m.text for m in c.messages) for c in convs]
    bow = make_pipeline(CountVectorizer(min_df=2), LogisticRegression(max_iter=3000, C=1.0))
    bow.fit([t for t, k in zip(texts, train, strict=True) if k], y[train])
    bow_acc = float((bow.predict([t for t, k in zip(texts, test, strict=True) if k])
                     == y[test]).mean())
    return AuditResult(int(train.sum()), int(test.sum()), len(set(y.tolist())), chance,
                       rf_acc, bow_acc)
