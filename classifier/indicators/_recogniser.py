"""Learned recognisers: one linear model per catalogue category over a message's words.

Templates reach the wording they were written for; independent authors word the same
moves in countless other ways. Beside the templates, the extractor runs one small linear
model per category (flattery, trust, isolation, secrecy, ...) over the words and word
pairs of each message, trained on risky turns that independent authors annotated
(``classifier.training.fit_recognisers``). Its output is **one hit per category of the
closed catalogue and nothing else**: the catalogue lists each recogniser as an indicator
(``learned.<category>``), so what leaves the extractor is still a count per indicator.

The model is data (``<language>.recognisers.npz``, read with ``allow_pickle=False``): a
vocabulary, weights, a bias and a threshold per category, and the digest of what it was
trained on. Scoring a batch is vectorised: the batch is lower-cased and tokenised in one
pass, word ids come from one dictionary lookup per word, word pairs are found by binary
search, and each message's score is a sum of weight rows (``numpy.add.reduceat``).

>>> r = WordRecogniser(("a",), ["send", "pic"], [("send", "pic")], np.array([[1.0], [0.5],
...                    [2.0]]), np.array([-1.0]), np.array([0.0]))
>>> r.hits(["send me a pic", "send pic", "nice pic"]).ravel().tolist()
[True, True, False]
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from itertools import islice, repeat
from operator import add, mul
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import CatalogueError, Errors
from ._prefilter import join_lower

__all__ = ["WordRecogniser", "normalise", "tokens"]

_APOSTROPHE_CHARS = "'\u2019`"  # dropped from words: "don't" -> "dont"
_APOSTROPHES = re.compile(f"[{_APOSTROPHE_CHARS}]")
_TOKEN = re.compile(r"[^\W_]+|\?")
_SEP = "\x00"
_TOKEN_OR_SEP = re.compile(r"[^\W_]+|\?|\x00")
_SEP_ID = -1
# ASCII bytes that are not a letter, a digit, "?" or NUL become spaces (then split)
_ASCII_SPACES = bytes(b if chr(b).isalnum() or b in (0, 63) or b > 127 else 32
                      for b in range(256))
_RUNS_ONE = re.compile(r"([^\n\x00])\1{2,}")  # normalise() for one message, as a regex
_RUN_OF_3 = re.compile(r"([^\n\x00])\1\1")
# up to this many messages, one at a time in plain Python beats the vectorised batch path
# (whose dozen numpy calls cost ~100 us however small the batch); both give equal bits
_SMALL_BATCH = 16
_FIRST = np.zeros(1, dtype=np.intp)


def normalise(text: str) -> str:
    """The form words are taken from: lower case, no apostrophes, no run of 3+ of the same
    character (``"plsss"`` -> ``"pls"``; line breaks and the batch separator excepted)."""
    text = _APOSTROPHES.sub("", text.lower())
    if len(text) < 3:
        return text
    # the same as re.sub(r"(.)\1{2,}", r"\1", ...) per message, vectorised over a batch
    # (a lone surrogate passes through, as it does one message at a time)
    code = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    keep = _outside_runs(code)
    return text if keep is None else code[keep].tobytes().decode("utf-32-le", "surrogatepass")


def _outside_runs(code: np.ndarray) -> np.ndarray | None:
    """Which characters (code points, or bytes of ASCII text) a collapse of every run of
    3+ equal characters keeps (None: all of them). Line breaks and NUL are never dropped.

    A character is dropped when it is the second or a later one of such a run, that is
    when a triple of equal characters starts one or two places before it; runs are rare,
    so the dropped places are found from the triples' starts alone (three passes over
    the batch, none per character)."""
    if len(code) < 3:
        return None
    same = code[1:] == code[:-1]
    triples = np.flatnonzero(same[1:] & same[:-1])  # code[i] == code[i+1] == code[i+2]
    if not len(triples):
        return None
    drop = np.concatenate([triples + 1, triples + 2])
    drop = drop[(code[drop] != 0) & (code[drop] != 10)]
    if not len(drop):
        return None
    keep = np.ones(len(code), dtype=bool)
    keep[drop] = False
    return keep


def _ascii_tokens(lowered: bytes) -> list[bytes]:
    """:func:`tokens` of a lower-cased ASCII batch (NUL-separated, NUL kept as a token),
    in C-speed byte operations: apostrophes out, runs collapsed, every character that is
    neither a letter, a digit nor ``?`` made a space, and a split on spaces."""
    raw = lowered
    for mark in _APOSTROPHE_CHARS.encode("ascii", "ignore"):
        raw = raw.replace(bytes((mark,)), b"")
    code = np.frombuffer(raw, dtype=np.uint8)
    keep = _outside_runs(code)
    if keep is not None:
        raw = code[keep].tobytes()
    return raw.replace(b"?", b" ? ").replace(b"\x00", b" \x00 ").translate(_ASCII_SPACES).split()


def tokens(text: str) -> list[str]:
    """The words (and question marks) of one message, as the recognisers see them.

    >>> tokens("Plsss send me ur pic?? its FINE")
    ['pls', 'send', 'me', 'ur', 'pic', '?', '?', 'its', 'fine']
    """
    return _TOKEN.findall(normalise(text))


class WordRecogniser:
    """Per-category linear scores over words and word pairs.

    Parameters
    ----------
    labels : sequence of str
        The category each column scores.
    words : sequence of str
        Vocabulary; word ``i`` has weight row ``i + 1`` (row 0: unknown words, zero).
    pairs : sequence of (str, str)
        Word pairs with a weight of their own (rows after the words).
    weights : ndarray of shape (1 + len(words) + len(pairs), len(labels))
        (row 0 may be omitted: it is taken as zero).
    bias, thresholds : ndarray of shape (len(labels),)
        A message hits a category when its score reaches the threshold.
    meta : dict, optional
        What the recognisers were trained on (authors, digests, measured rates).
    """

    def __init__(self, labels: Sequence[str], words: Sequence[str],
                 pairs: Sequence[tuple[str, str]], weights: np.ndarray, bias: np.ndarray,
                 thresholds: np.ndarray, meta: dict[str, Any] | None = None) -> None:
        self.labels = tuple(labels)
        self.words = tuple(words)
        self.pairs = tuple((a, b) for a, b in pairs)
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape[0] == len(self.words) + len(self.pairs):
            weights = np.vstack([np.zeros((1, weights.shape[1]), np.float32), weights])
        self.weights = weights
        self.bias = np.asarray(bias, dtype=np.float32)
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.meta = dict(meta or {})
        self._vocab = {w: i + 1 for i, w in enumerate(self.words)}
        self._lookup = {**self._vocab, _SEP: _SEP_ID}.get
        self._lookup_ascii = {**{w.encode("utf-8"): i for w, i in self._vocab.items()},
                              _SEP.encode(): _SEP_ID}.get
        n_vocab = len(self.words) + 1
        self._n_vocab = n_vocab
        keys = np.array([self._vocab[a] * n_vocab + self._vocab[b] for a, b in self.pairs],
                        dtype=np.int64)
        order = np.argsort(keys)
        self._pair_keys = keys[order]
        self._pair_rows = (n_vocab + order).astype(np.int64)
        self._pair_row = dict(zip(keys.tolist(), range(n_vocab, n_vocab + len(keys)), strict=True))

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def scores(self, texts: Sequence[str], *, lowered: str | None = None) -> np.ndarray:
        """Scores of shape (n_messages, n_labels), float32. ``lowered``: the batch as
        :func:`~classifier.indicators._prefilter.join_lower` gives it, when the caller has
        it already (the extractor shares the prefilter's)."""
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.n_labels), dtype=np.float32)
        if n == 1:
            return self._score_one(texts[0])[np.newaxis]
        if n <= _SMALL_BATCH:
            return np.vstack([self._score_one(t) for t in texts])
        if lowered is None:  # NUL-separated (a NUL inside a message: a space)
            lowered = join_lower(texts)[0]
        if lowered.isascii():  # the common batch: byte operations
            ids, owner = self._word_ids(lowered, True)
        else:  # ASCII messages by byte operations, the others by the regex; then merged
            lowers = lowered.split(_SEP)  # the NUL between messages bounds lower()'s context
            plain = np.fromiter(map(str.isascii, lowers), dtype=bool, count=n)
            parts = [(rows, *self._word_ids(_SEP.join([lowers[i] for i in rows.tolist()]),
                                            ascii_only))
                     for rows, ascii_only in ((np.flatnonzero(plain), True),
                                              (np.flatnonzero(~plain), False)) if len(rows)]
            ids = np.concatenate([part_ids for _, part_ids, _ in parts])
            owner = np.concatenate([rows[part_owner] for rows, _, part_owner in parts])
            order = np.argsort(owner, kind="stable")  # message order, tokens in order
            ids, owner = ids[order], owner[order]
        out = self._sum_rows(ids, owner, n)
        if len(self._pair_keys) and len(ids) > 1:
            known = (ids[1:] > 0) & (ids[:-1] > 0) & (owner[1:] == owner[:-1])
            keys = ids[:-1][known] * self._n_vocab + ids[1:][known]
            # a search of sorted keys is ~5x faster (the table is walked in order); the
            # pairs found go back to token order, so each message sums them in that order
            order = np.argsort(keys)
            ordered = keys[order]
            pos = np.minimum(np.searchsorted(self._pair_keys, ordered),
                             len(self._pair_keys) - 1)
            hit = self._pair_keys[pos] == ordered
            at = np.sort(order[hit])  # token order of the pairs found
            rows = np.empty(len(keys), dtype=np.int64)
            rows[order[hit]] = self._pair_rows[pos[hit]]
            out += self._sum_rows(rows[at], owner[1:][known][at], n)
        return out + self.bias

    def _word_ids(self, lowered: str, ascii_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """Vocabulary ids of the words of lower-cased, NUL-separated messages (0: not in
        the vocabulary), and the message each belongs to (sorted)."""
        if ascii_only:
            toks: list[Any] = _ascii_tokens(lowered.encode("ascii"))
            lookup = self._lookup_ascii
        else:
            toks = _TOKEN_OR_SEP.findall(normalise(lowered))  # one pass over the batch
            lookup = self._lookup
        ids = np.fromiter(map(lookup, toks, repeat(0)), dtype=np.int64, count=len(toks))
        sep = ids == _SEP_ID
        owner = np.cumsum(sep)  # message index of every token
        words = ~sep
        return ids[words], owner[words]

    def _score_one(self, text: str) -> np.ndarray:
        """One message's scores, bit for bit those of :meth:`scores` on a batch: the same
        rows summed in the same order (word rows, then pair rows, then the bias)."""
        normal = text.lower()
        if _SEP in normal:
            normal = normal.replace(_SEP, " ")
        for mark in _APOSTROPHE_CHARS:  # str.replace: _APOSTROPHES, faster on one message
            normal = normal.replace(mark, "")
        if _RUN_OF_3.search(normal) is not None:
            normal = _RUNS_ONE.sub(r"\1", normal)
        toks = _TOKEN.findall(normal)
        if not toks:
            return self.bias.copy()
        ids = list(map(self._vocab.get, toks, repeat(0)))
        weights = self.weights
        # the rows of the word pairs with a weight, in order, keyed as in the batch (with an
        # unknown word, id 0, a key is no pair's: a pair's is a * n_vocab + b, a and b > 0;
        # a row is never 0)
        keys = map(add, map(mul, ids, repeat(self._n_vocab)), islice(ids, 1, None))
        rows = list(filter(None, map(self._pair_row.get, keys)))
        if not rows:  # (take: the rows of weights[ids], without fancy indexing's cost)
            return np.add.reduceat(weights.take(ids, axis=0), _FIRST, axis=0)[0] + self.bias
        # words and pairs in one gather: two sums, each in the batch's order
        words, pairs = np.add.reduceat(weights.take(ids + rows, axis=0), [0, len(ids)], axis=0)
        return (words + pairs) + self.bias

    def _sum_rows(self, rows: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
        """Per message, the sum of the weight rows of its tokens (owner is sorted)."""
        out = np.zeros((n, self.n_labels), dtype=np.float32)
        if not len(rows):
            return out
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        out[owner[starts]] = np.add.reduceat(self.weights.take(rows, axis=0), starts, axis=0)
        return out

    def hits(self, texts: Sequence[str], *, lowered: str | None = None) -> np.ndarray:
        """Which messages hit which category, shape (n_messages, n_labels), bool."""
        return self.scores(texts, lowered=lowered) >= self.thresholds

    # -- persistence -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The ``.npz`` form (no pickled objects)."""
        buf = io.BytesIO()
        np.savez_compressed(
            buf, weights=self.weights.astype(np.float32), bias=self.bias,
            thresholds=self.thresholds,
            labels=np.frombuffer("\n".join(self.labels).encode(), dtype=np.uint8),
            words=np.frombuffer("\n".join(self.words).encode(), dtype=np.uint8),
            pairs=np.frombuffer("\n".join(f"{a} {b}" for a, b in self.pairs).encode(),
                                dtype=np.uint8),
            meta=np.frombuffer(json.dumps(self.meta, sort_keys=True).encode(), dtype=np.uint8))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> WordRecogniser:
        problem = None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                def text(key: str) -> list[str]:
                    raw = z[key].tobytes().decode("utf-8")
                    return raw.split("\n") if raw else []
                pairs = [tuple(p.split(" ", 1)) for p in text("pairs")]
                return cls(text("labels"), text("words"), pairs,  # type: ignore[arg-type]
                           z["weights"], z["bias"], z["thresholds"],
                           json.loads(z["meta"].tobytes().decode("utf-8") or "{}"))
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            problem = type(exc).__name__
        raise CatalogueError(Errors.E120.format(file=source, entry="recogniser",
                                                problem=f"not a valid recogniser ({problem})"))

    @classmethod
    def load(cls, path: str | Path) -> WordRecogniser:
        path = Path(path)
        if not path.is_file():
            raise CatalogueError(Errors.E100.format(file=path))
        return cls.from_bytes(path.read_bytes(), str(path))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()
