"""The naive baseline: a TF-IDF + logistic regression classifier on conversation text.

This is what a team without the law's constraints would build: it reads substance. It is
trained and evaluated on the same splits as the risk model so that the report can show
both side by side. Its fitted vocabulary *is* substance, so the fitted baseline is never
saved, pickled or logged: only its scores' error figures leave this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from classifier import Conversation

__all__ = ["TextBaseline"]


def _text(conv: Conversation) -> str:
    return "\n".join(m.text for m in conv.messages if m.is_text)


class TextBaseline:
    """TF-IDF (word 1-2 grams) + class-weighted logistic regression."""

    def __init__(self, *, max_features: int = 50_000, random_state: int = 0) -> None:
        self.max_features = max_features
        self.random_state = random_state
        self._pipeline: Any = None

    def fit(self, conversations: Sequence[Conversation]) -> TextBaseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        self._pipeline = Pipeline([
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                      max_features=self.max_features)),
            ("clf", LogisticRegression(class_weight="balanced", max_iter=2000, C=4.0)),
        ])
        self._pipeline.fit([_text(c) for c in conversations],
                           [int(c.label or 0) for c in conversations])
        return self

    def scores(self, conversations: Sequence[Conversation]) -> np.ndarray:
        if self._pipeline is None:
            raise AttributeError("TextBaseline is not fitted")
        if not conversations:
            return np.zeros(0)
        return self._pipeline.predict_proba([_text(c) for c in conversations])[:, 1]

    def __reduce__(self) -> Any:
        raise TypeError("The text baseline holds a vocabulary of message words and is never "
                        "pickled.")
