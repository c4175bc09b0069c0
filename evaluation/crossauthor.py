"""Training and leave-one-author-out evaluation on many independent authors.

A model is judged on wording it was not built from. For every author ``h``:

1. the learned recognisers are trained on the annotated turns of every *other* author
   (never the generator) and on real benign chat;
2. the risk model is trained on every other author's conversations (the generator's too)
   and on real benign chat, with those recognisers in the extractor;
3. its threshold is chosen **across authors**: the training authors are dealt into five
   groups and each group in turn is left out of the risk model (inner folds, with a fifth
   of the real benign chat each); the pooled out-of-fold scores of hard negatives and of
   real benign chat set the lowest threshold within the policy's budgets;
4. ``h``'s conversations are scored: recall, hard-negative false-positive rate overall
   and per subgroup (Wilson intervals), ROC-AUC, precision, subject accuracy, the
   account-level error rate (B3/A3), early detection (F_latency); the real benign test
   half gives the false flags on real chat.

The same steps with every author give the shipped model (:func:`fit_all`). Everything
here reads and returns numbers and ids; text goes only through the text boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from classifier import (
    FEATURE_NAMES,
    ConfigError,
    Conversation,
    ConversationState,
    Errors,
    FactorContext,
    IndicatorExtractor,
    Pipeline,
    RiskFactorBuilder,
    RiskModel,
    TextBoundary,
    gate,
    load_catalogue,
    refusal_reason,
)
from classifier.training import ThresholdPolicy, fit_model

from .authors import (
    AUTHORS_DIR,
    GENERATOR,
    HARD_NEGATIVE_SUBGROUPS,
    Author,
    authors,
    load_author,
)
from .benign import load_chitchat
from .metrics import f_latency, recall_at_fpr, wilson_interval
from .recognisers import author_turns, build_recognisers

__all__ = [
    "HARD_NEGATIVE_SUBGROUPS",
    "Corpus",
    "CrossAuthorConfig",
    "Featurised",
    "FittedModel",
    "FoldResult",
    "conversation_scores",
    "cross_author",
    "digest_of",
    "factor_stability",
    "featurise",
    "fit_fold",
    "inner_groups",
    "load_corpus",
    "measure",
    "peer_baseline",
    "permutation_importance",
    "summary_table",
    "text_baseline",
    "training_rows",
]


@dataclass(frozen=True)
class CrossAuthorConfig:
    """What a cross-author run uses; the defaults are the release configuration."""

    include_sealed: bool = False
    authors: tuple[str, ...] | None = None  # default: every registered author
    generator_n: int = 1200
    benign_fit: int | None = None  # real benign chat (train half) in training (None: all)
    benign_test: int | None = None  # real benign chat test half (None: all of it)
    max_fpr: float = 0.001  # on real benign chat
    # budgets out of fold, below the targets (5% and 10%): a new author's wording moves
    # the rates up (a held-out development author's worst subgroup was more than twice
    # the budget); chosen on the held-out results of a01, a02 and the generator only
    max_hard_negative_fpr: float = 0.04
    max_subgroup_fpr: float = 0.06
    recogniser_benign_hit_rate: float = 0.005
    kind: str = "gbt"
    inner_folds: int | None = 5  # author groups for the threshold (None: one per author)
    relationship_metadata: bool = True  # False: measure without the provider's metadata
    # a negative's earlier prefixes (where a score could rise) as negatives too, with this
    # much weight in all per conversation (0: the whole conversation's pairs only)
    prefix_negative_weight: float = 0.0
    random_state: int = 0

    def policy(self) -> ThresholdPolicy:
        return ThresholdPolicy(self.max_fpr, self.max_hard_negative_fpr,
                               self.max_subgroup_fpr)


_FEATURISED_FIELDS = ("ids", "labels", "subgroups", "authors", "offenders", "paces", "mats",
                      "pairs", "earlier", "earlier_pairs")


@dataclass
class Featurised:
    """Per conversation: every ordered pair's factor vector, and evaluation labels.

    ``mats`` and ``pairs`` are the factors of the whole conversation (what the model is
    fitted on); ``earlier`` and ``earlier_pairs`` stack the factors of every earlier
    prefix after which a score could rise (what a stream, and the pipeline, score as
    well: a conversation is flagged when any of them reaches the threshold)."""

    ids: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    subgroups: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    offenders: list[str | None] = field(default_factory=list)
    paces: list[str] = field(default_factory=list)
    mats: list[np.ndarray] = field(default_factory=list)
    pairs: list[list[tuple[str, str]]] = field(default_factory=list)
    earlier: list[np.ndarray] = field(default_factory=list)
    earlier_pairs: list[list[tuple[str, str]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, keep: Sequence[bool]) -> Featurised:
        out = Featurised()
        for name in _FEATURISED_FIELDS:
            setattr(out, name, [v for v, k in zip(getattr(self, name), keep, strict=True) if k])
        return out

    def __add__(self, other: Featurised) -> Featurised:
        out = Featurised()
        for name in _FEATURISED_FIELDS:
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out

    def with_rows(self, transform: Callable[[np.ndarray], np.ndarray]) -> Featurised:
        """The same conversations with every factor row (whole conversations and earlier
        prefixes, stacked) passed through ``transform``, which keeps the shape."""
        blocks = self.mats + self.earlier
        sizes = [len(X) for X in blocks]
        if not sum(sizes):
            return self.take([True] * len(self))
        stacked = transform(np.vstack([X.reshape(-1, len(FEATURE_NAMES)) for X in blocks]))
        parts = np.split(stacked, np.cumsum(sizes)[:-1])
        out = self.take([True] * len(self))
        out.mats, out.earlier = parts[:len(self.mats)], parts[len(self.mats):]
        return out


def featurise(conversations: Sequence[Conversation], author: str,
              extractor: IndicatorExtractor, *, metadata: bool = True) -> Featurised:
    """Factor vectors of every ordered pair of every conversation (scope-refused ones,
    never scanned, are left out). ``metadata=False`` drops the provider's relationship
    metadata (to measure what it adds)."""
    builder = RiskFactorBuilder(extractor.catalogue)
    boundary = TextBoundary(extractor)
    out = Featurised()
    kept = [c for c in conversations if refusal_reason(c) is None]
    for start in range(0, len(kept), 400):
        chunk = kept[start:start + 400]
        for conv, cols in zip(chunk, boundary.extract(chunk), strict=True):
            state = ConversationState(conv.conversation_id, extractor.catalogue)
            context = FactorContext.of(conv)
            if not metadata:
                context = FactorContext(context.declared, context.assurance)
            prefix, _ = builder.prefix_matrices(state, cols, context)
            X, pairs = builder.pair_matrix(state, context)
            out.earlier.append(np.vstack([m for m, _ in prefix]) if prefix else
                               np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32))
            out.earlier_pairs.append([p for _, ps in prefix for p in ps])
            out.ids.append(conv.conversation_id)
            out.labels.append(int(conv.label or 0))
            out.subgroups.append(conv.subgroup or "unknown")
            out.authors.append(author)
            out.offenders.append(conv.offender)
            out.paces.append(str((conv.annotations or {}).get("pace", "unknown")))
            out.mats.append(X)
            out.pairs.append(pairs)
    return out


def training_rows(F: Featurised, prefix_negative_weight: float = 0.0,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows to fit on: for a positive, the offender's pair towards the participant it
    wrote to most; for a negative, every pair, weighted so that each conversation counts
    once, and (``prefix_negative_weight`` > 0) every pair of its earlier prefixes, with
    that much weight in all (the pipeline flags on any of them)."""
    rows, ys, ws = [], [], []
    i_pair = FEATURE_NAMES.index("log_pair_messages")
    i_dyad = FEATURE_NAMES.index("adult_minor_dyad")
    for X, pairs, label, offender in zip(F.mats, F.pairs, F.labels, F.offenders, strict=True):
        if not len(X):
            continue
        if label == 1:
            mine = [k for k, (a, _) in enumerate(pairs) if a == offender]
            k = (max(mine, key=lambda j: X[j, i_pair]) if mine
                 else int(np.argmax(X[:, i_dyad])))
            rows.append(X[k])
            ys.append(1)
            ws.append(1.0)
        else:
            rows.extend(X)
            ys.extend([0] * len(X))
            ws.extend([1.0 / len(X)] * len(X))
    if prefix_negative_weight > 0:
        for E, label in zip(F.earlier, F.labels, strict=True):
            if label == 0 and len(E):
                rows.extend(E)
                ys.extend([0] * len(E))
                ws.extend([prefix_negative_weight / len(E)] * len(E))
    return (np.vstack(rows).astype(np.float32), np.asarray(ys), np.asarray(ws))


def _fit(F: Featurised, config: CrossAuthorConfig) -> Any:
    X, y, w = training_rows(F, config.prefix_negative_weight)
    return fit_model(config.kind, X, y, random_state=config.random_state, sample_weight=w)


def conversation_scores(model: Any, F: Featurised) -> tuple[np.ndarray, list[str | None]]:
    """Each conversation's score as the pipeline flags it: the peak over the whole
    conversation and every earlier prefix after which a score could rise (riskiest pair,
    gated), and the older party of the pair at that peak (the subject a flag names)."""
    blocks = [(X, pairs) for X, pairs in zip(F.mats, F.pairs, strict=True)]
    blocks += list(zip(F.earlier, F.earlier_pairs, strict=True))
    sizes = [len(X) for X, _ in blocks]
    if not sum(sizes):
        return np.zeros(len(F)), [None] * len(F)
    X = np.vstack([b.reshape(-1, len(FEATURE_NAMES)) for b, _ in blocks]).astype(np.float32)
    proba = model.predict_proba(X)[:, 1] * gate(X)
    scores, subjects = np.zeros(len(F)), []
    starts = np.concatenate([[0], np.cumsum(sizes)])
    n = len(F)
    for i in range(n):
        best, subject = -1.0, None
        # the earlier prefixes first, in order: on a tie the earliest peak names the
        # subject, as in the pipeline
        for b in (n + i, i) if i < len(F.earlier) else (i,):
            lo, hi = starts[b], starts[b + 1]
            if hi > lo:
                k = int(np.argmax(proba[lo:hi]))
                if proba[lo + k] > best:
                    best, subject = float(proba[lo + k]), blocks[b][1][k][0]
        scores[i] = max(best, 0.0)
        subjects.append(subject)
    return scores, subjects


class FittedModel:
    """A risk model fitted in memory (scikit-learn), usable where a :class:`RiskModel`
    is: ``predict`` (gated), ``threshold``, ``version``, ``explain``."""

    def __init__(self, model: Any, threshold: float, version: str) -> None:
        self.model = model
        self.threshold = threshold
        self.version = version
        self.metadata: dict[str, Any] = {"threshold_policy": "cross-author (in memory)"}
        self.baseline = np.zeros(len(FEATURE_NAMES), dtype=np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        if not len(X):
            return np.zeros(0)
        return self.model.predict_proba(X)[:, 1] * gate(X)

    # the shipped model's contributions, computed the same way (``predict`` and
    # ``baseline`` are all it needs)
    explain = RiskModel.explain
    explain_many = RiskModel.explain_many


@dataclass
class Corpus:
    """Conversations by author, and the real benign chat halves."""

    by_author: dict[str, list[Conversation]]
    benign_fit: list[Conversation]
    benign_test: list[Conversation]
    registry: dict[str, Author]


def load_corpus(config: CrossAuthorConfig) -> Corpus:
    registry = {a.id: a for a in authors(include_sealed=config.include_sealed)}
    ids = config.authors or tuple(registry)
    missing = [a for a in ids if registry[a].path is not None and not registry[a].path.exists()]
    if missing and len(missing) == sum(registry[a].path is not None for a in ids):
        # none of the files (an installed package): the generator alone would be measured
        raise ConfigError(Errors.E012.format(missing=len(missing),
                                             registered=len(ids), folder=AUTHORS_DIR))
    by_author = {}
    for a in ids:
        if a in missing:
            continue  # registered, not delivered yet
        by_author[a] = load_author(registry[a], generator_n=config.generator_n)
    benign_train = list(load_chitchat("train"))
    benign_test = list(load_chitchat("test"))
    if config.benign_test is not None:
        benign_test = benign_test[:config.benign_test]
    return Corpus(by_author, benign_train[:config.benign_fit], benign_test, registry)


@dataclass
class FittedFold:
    """Everything trained for one held-out author (or for none: the shipped model)."""

    extractor: IndicatorExtractor
    model: Any
    threshold: float
    recogniser: Any
    train_authors: tuple[str, ...]
    oof: dict[str, Any] = field(default_factory=dict)


def inner_groups(train_authors: Sequence[str], folds: int | None) -> list[tuple[str, ...]]:
    """The training authors dealt round-robin into ``folds`` groups (``None``: one group
    per author); every author is out of fold exactly once.

    >>> inner_groups(["a", "b", "c", "d", "e"], 2)
    [('a', 'c', 'e'), ('b', 'd')]
    """
    authors = list(train_authors)
    k = len(authors) if folds is None else max(1, min(folds, len(authors)))
    return [tuple(authors[g::k]) for g in range(k)]


def fit_fold(corpus: Corpus, train_authors: Sequence[str], config: CrossAuthorConfig, *,
             progress: Callable[[str], None] | None = None) -> FittedFold:
    """Recognisers, risk model and cross-author threshold from ``train_authors`` only."""
    say = progress or (lambda _: None)
    benign = corpus.benign_fit
    say("recognisers")
    rec = build_recognisers([a for a in train_authors if a != GENERATOR], benign,
                            benign_hit_rate=config.recogniser_benign_hit_rate)
    catalogue = load_catalogue(recogniser=False).with_recogniser(rec)
    extractor = IndicatorExtractor(catalogue=catalogue)
    meta = config.relationship_metadata
    parts = {a: featurise(corpus.by_author[a], a, extractor, metadata=meta) for a in
             tqdm(train_authors, desc="factors", leave=False, disable=None)}
    # real benign chat, dealt round-robin to the inner folds
    benign_F = featurise(benign, "real_benign", extractor, metadata=meta)
    groups = inner_groups(train_authors, config.inner_folds)
    owner = np.array([k % len(groups) for k in range(len(benign_F))])
    oof_scores, oof_labels, oof_hard, oof_groups = [], [], [], []
    for k, held in enumerate(tqdm(groups, desc="inner folds", leave=False, disable=None)):
        fit_F = sum((parts[a] for a in train_authors if a not in held), Featurised())
        fit_F = fit_F + benign_F.take(owner != k)
        model = _fit(fit_F, config)
        held_F = sum((parts[a] for a in held), Featurised())
        for F, hard in ((held_F, True), (benign_F.take(owner == k), False)):
            s, _ = conversation_scores(model, F)
            oof_scores += s.tolist()
            oof_labels += F.labels
            oof_hard += [hard and lab == 0 for lab in F.labels]
            oof_groups += F.subgroups
    threshold = config.policy().choose(np.array(oof_scores), np.array(oof_labels),
                                       np.array(oof_hard), np.array(oof_groups))
    say("model")
    all_F = sum((parts[a] for a in train_authors), Featurised()) + benign_F
    model = _fit(all_F, config)
    return FittedFold(extractor, model, threshold, rec, tuple(train_authors),
                      {"scores": oof_scores, "labels": oof_labels, "hard": oof_hard,
                       "subgroups": oof_groups})


@dataclass
class FoldResult:
    """What one held-out author measured (numbers only)."""

    author: str
    status: str
    threshold: float
    metrics: dict[str, Any]
    coverage: dict[str, Any] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    peer: dict[str, Any] = field(default_factory=dict)


def _roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return math.nan
    # the probability that a random positive outscores a random negative (ties: half)
    order = np.argsort(np.concatenate([neg, pos]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([neg, pos])[order]
    i = 0
    while i < len(values):  # average ranks of ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    r_pos = ranks[len(neg):].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def measure(fold: FittedFold, F: Featurised, conversations: Sequence[Conversation],
            benign_F: Featurised | None = None, *, latency: bool = True) -> dict[str, Any]:
    """Every figure of a held-out author at the fold's threshold."""
    scores, subjects = conversation_scores(fold.model, F)
    labels = np.asarray(F.labels)
    flagged = scores >= fold.threshold
    pos, neg = labels == 1, labels == 0
    tp, fp = int((flagged & pos).sum()), int((flagged & neg).sum())
    fn = int((~flagged & pos).sum())
    out: dict[str, Any] = {
        "n_positive": int(pos.sum()), "n_hard_negative": int(neg.sum()),
        "recall": tp / max(int(pos.sum()), 1), "recall_ci95": list(wilson_interval(tp, tp + fn)),
        "fpr": fp / max(int(neg.sum()), 1), "fpr_ci95": list(wilson_interval(fp, int(neg.sum()))),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "roc_auc": _roc_auc(scores, labels), "tp": tp, "fp": fp, "fn": fn,
    }
    groups = np.asarray(F.subgroups)
    sub = {}
    for g in sorted(set(F.subgroups) - {"grooming"}):
        sel = (groups == g) & neg
        k, n = int((flagged & sel).sum()), int(sel.sum())
        sub[g] = {"n": n, "flagged": k, "fpr": k / n if n else 0.0,
                  "ci95": list(wilson_interval(k, n))}
    out["subgroups"] = sub
    worst = max(sub.items(), key=lambda kv: kv[1]["fpr"]) if sub else ("-", {"fpr": 0.0})
    out["worst_subgroup"], out["worst_subgroup_fpr"] = worst[0], worst[1]["fpr"]
    # the right subject: whom the flag names, and the account-level error rate (B3/A3)
    named = [(subjects[i], F.offenders[i]) for i in np.flatnonzero(flagged & pos)]
    right = sum(1 for s, o in named if s == o)
    out["subject_accuracy"] = right / len(named) if named else math.nan
    accounts: dict[str, bool] = {}
    for i in np.flatnonzero(flagged):
        key = f"{F.ids[i]}/{subjects[i]}"
        confirmed = bool(labels[i] == 1 and subjects[i] == F.offenders[i])
        accounts[key] = accounts.get(key, False) or confirmed
    a3 = len(accounts)
    b3 = sum(1 for ok in accounts.values() if not ok)
    out["accounts_flagged"], out["accounts_cleared"] = a3, b3
    out["account_error_rate"] = b3 / a3 if a3 else 0.0
    if benign_F is not None and len(benign_F):
        b_scores, _ = conversation_scores(fold.model, benign_F)
        k = int((b_scores >= fold.threshold).sum())
        out["real_benign"] = {"n": len(benign_F), "flagged": k, "fpr": k / len(benign_F),
                              "ci95": list(wilson_interval(k, len(benign_F)))}
    if latency:
        out |= _latency(fold, F, conversations, flagged, out["precision"], out["recall"])
    return out


def _latency(fold: FittedFold, F: Featurised, conversations: Sequence[Conversation],
             flagged: np.ndarray, precision: float, recall: float) -> dict[str, Any]:
    """Messages seen before the flag (per pace) and F_latency, with the fold's model."""
    pipeline = Pipeline(model=FittedModel(fold.model, fold.threshold, "fold"),
                        extractor=fold.extractor)
    by_id = {c.conversation_id: c for c in conversations}
    to_flag: list[int] = []
    by_pace: dict[str, list[int]] = {}
    for i in np.flatnonzero(flagged & (np.asarray(F.labels) == 1)):
        k = pipeline.first_crossing(by_id[F.ids[i]])
        if k is not None:
            to_flag.append(k + 1)
            by_pace.setdefault(F.paces[i], []).append(k + 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f_latency": f_latency(f1, to_flag),
            "messages_to_flag_median": float(np.median(to_flag)) if to_flag else math.nan,
            "messages_to_flag_by_pace": {p: float(np.median(v)) for p, v in by_pace.items()}}


def cross_author(config: CrossAuthorConfig | None = None, *,
                 held_out: Sequence[str] | None = None, latency: bool = True,
                 extras: bool = False, peer: bool = False,
                 progress: Callable[[str], None] | None = None,
                 corpus: Corpus | None = None, jobs: int = 1) -> list[FoldResult]:
    """Leave each author out in turn (or only ``held_out``); see module docs.

    ``extras``: also the held-out author's wording coverage (with recognisers that never
    saw it), each factor's permutation importance on it, and the naive text baseline
    trained on the same authors (needs ``[train]``). ``peer``: also the embedding
    nearest-neighbour peer indexed on the same authors (needs ``[peer]``; slow: every
    message is embedded, once per run). ``jobs``: folds run in this many processes at
    once (each loads the corpus from ``config`` and holds its own models: about 1.5 GB
    each); the results are those of one process, in the same order. The peer runs in
    one process.
    """
    config = config or CrossAuthorConfig()
    corpus = corpus or load_corpus(config)
    say = progress or (lambda _: None)
    names = list(held_out or corpus.by_author)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(Errors.E005.format(name="jobs", expected="an int >= 1",
                                             got=type(jobs).__name__))
    if jobs > 1 and len(names) > 1 and not peer:
        return _parallel_folds(config, corpus, names, latency, extras, jobs, say)
    encoder = None
    if peer:
        from .peer import minilm_encoder

        encoder = minilm_encoder()
    results = []
    for h in names:
        say(f"held-out author {h}")
        result = _fold(corpus, config, h, latency=latency, extras=extras, progress=say)
        if peer:
            say("embedding peer")
            train = [a for a in corpus.by_author if a != h]
            result.peer = peer_baseline(corpus, train, h, result.metrics["fpr"],
                                        encoder=encoder)
        results.append(result)
    return results


def _fold(corpus: Corpus, config: CrossAuthorConfig, h: str, *, latency: bool,
          extras: bool, progress: Callable[[str], None]) -> FoldResult:
    """One held-out author: fit on the others, measure on it."""
    train = [a for a in corpus.by_author if a != h]
    fold = fit_fold(corpus, train, config, progress=progress)
    F = featurise(corpus.by_author[h], h, fold.extractor,
                  metadata=config.relationship_metadata)
    benign_F = featurise(corpus.benign_test, "real_benign", fold.extractor,
                         metadata=config.relationship_metadata)
    metrics = measure(fold, F, corpus.by_author[h], benign_F, latency=latency)
    result = FoldResult(h, corpus.registry[h].status, fold.threshold, metrics)
    if extras:
        from .coverage import coverage

        result.coverage = coverage(corpus.by_author[h], fold.extractor).to_dict()
        result.importance = permutation_importance(fold.model, F)
        result.baseline = text_baseline(corpus, train, h, metrics["fpr"])
    return result


def _corpus_digest(corpus: Corpus) -> str:
    """What identifies a corpus: every author's and both benign halves' conversation ids."""
    parts = [f"{a}:{digest_of(convs)}" for a, convs in corpus.by_author.items()]
    parts += [digest_of(corpus.benign_fit), digest_of(corpus.benign_test)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


_WORKER: dict[str, Any] = {}  # a fold worker's corpus, loaded once per process


def _init_worker(config: CrossAuthorConfig, digest: str) -> None:
    corpus = load_corpus(config)
    _WORKER.update(corpus=corpus, config=config, same=_corpus_digest(corpus) == digest)


def _worker_fold(h: str, latency: bool, extras: bool) -> FoldResult:
    if not _WORKER["same"]:  # a corpus the config does not reproduce: not measured
        raise ConfigError(Errors.E005.format(name="corpus", expected=(
            "the corpus load_corpus(config) gives (a fold worker loads it from config)"),
            got="another corpus"))
    return _fold(_WORKER["corpus"], _WORKER["config"], h, latency=latency, extras=extras,
                 progress=lambda _: None)


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _one_thread_each() -> Iterator[None]:
    """One thread per thread pool (OpenMP, BLAS) in the processes spawned meanwhile, where
    the caller has not set its own: two workers' OpenMP pools on two cores spun against
    each other (the two-fold test took 186 s, with one thread each 30 s). A spawned
    process reads these when its libraries load, so nothing else is needed."""
    unset = [name for name in _THREAD_VARIABLES if name not in os.environ]
    os.environ.update(dict.fromkeys(unset, "1"))
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


def _parallel_folds(config: CrossAuthorConfig, corpus: Corpus, names: Sequence[str],
                    latency: bool, extras: bool, jobs: int,
                    say: Callable[[str], None]) -> list[FoldResult]:
    """The folds in ``jobs`` fresh processes (spawned: no thread pool or model is
    inherited), collected in the order of ``names``. Only author names and numeric
    results cross the process boundary; every worker reads the data itself."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with _one_thread_each(), ProcessPoolExecutor(
            max_workers=min(jobs, len(names)), mp_context=ctx, initializer=_init_worker,
            initargs=(config, _corpus_digest(corpus))) as pool:
        futures = {pool.submit(_worker_fold, h, latency, extras): h for h in names}
        done: dict[str, FoldResult] = {}
        for k, future in enumerate(as_completed(futures), 1):
            h = futures[future]
            done[h] = future.result()
            say(f"held-out author {h} done ({k}/{len(names)})")
    return [done[h] for h in names]


def permutation_importance(model: Any, F: Featurised, *, seed: int = 0) -> dict[str, float]:
    """Per factor: how much ROC-AUC on ``F`` falls when that factor is shuffled across
    conversations (a factor the model leans on and that carries over scores high)."""
    labels = np.asarray(F.labels)
    base, _ = conversation_scores(model, F)
    auc = _roc_auc(base, labels)
    rng = np.random.default_rng(seed)
    out = {}
    for j, name in enumerate(FEATURE_NAMES):
        def shuffle(rows: np.ndarray, j: int = j) -> np.ndarray:
            rows = rows.copy()
            rows[:, j] = rng.permutation(rows[:, j])
            return rows

        scores, _ = conversation_scores(model, F.with_rows(shuffle))
        out[name] = float(auc - _roc_auc(scores, labels))
    return out


def peer_baseline(corpus: Corpus, train: Sequence[str], held: str, model_fpr: float, *,
                  encoder: Any = None) -> dict[str, Any]:
    """The embedding nearest-neighbour peer (:mod:`evaluation.peer`; reads substance)
    indexed on the same authors' turns and real benign chat: its ROC-AUC on the held-out
    author's scanned conversations, and at the model's false-positive rate there its
    recall and its worst subgroup (where only age structure tells, it cannot)."""
    from .peer import EmbeddingPeer

    turns = [t for a in train for t in author_turns(corpus.by_author[a], a)]
    turns += author_turns(corpus.benign_fit, "real_benign")
    peer = EmbeddingPeer(encoder=encoder).fit(turns)
    test = [c for c in corpus.by_author[held] if refusal_reason(c) is None]
    scores, _ = peer.scores(test)
    labels = np.array([int(c.label or 0) for c in test])
    recall, cut = recall_at_fpr(scores, labels, model_fpr)
    groups = np.array([c.subgroup or "unknown" for c in test])
    sub = {g: float((scores[(groups == g) & (labels == 0)] > cut).mean())
           for g in sorted(set(groups[labels == 0].tolist()))}
    worst = max(sub.items(), key=lambda kv: kv[1]) if sub else ("-", math.nan)
    return {"roc_auc": _roc_auc(scores, labels), "recall_at_model_fpr": recall,
            "model_fpr": model_fpr, "subgroups": sub, "worst_subgroup": worst[0],
            "worst_subgroup_fpr": worst[1]}


def text_baseline(corpus: Corpus, train: Sequence[str], held: str,
                  model_fpr: float) -> dict[str, Any]:
    """The naive TF-IDF baseline (reads substance) trained on the same authors: its ROC-AUC
    on the held-out author and its recall at the model's false-positive rate there."""
    from .baseline import TextBaseline

    fit = [c for a in train for c in corpus.by_author[a]] + corpus.benign_fit
    model = TextBaseline().fit(fit)
    test = corpus.by_author[held]
    scores = model.scores(test)
    labels = np.array([int(c.label or 0) for c in test])
    recall, _ = recall_at_fpr(scores, labels, model_fpr)
    return {"roc_auc": _roc_auc(scores, labels), "recall_at_model_fpr": recall,
            "model_fpr": model_fpr}


def summary_table(results: Sequence[FoldResult]) -> list[dict[str, Any]]:
    """One row per held-out author plus the mean and the worst author."""
    rows = []
    keys = ("recall", "fpr", "worst_subgroup_fpr", "roc_auc", "precision",
            "subject_accuracy", "account_error_rate", "f_latency")
    for r in results:
        m = r.metrics
        rows.append({"author": r.author, "status": r.status, "threshold": r.threshold,
                     **{k: m.get(k, math.nan) for k in keys},
                     "worst_subgroup": m.get("worst_subgroup"),
                     "real_benign_fpr": m.get("real_benign", {}).get("fpr", math.nan)})
    if rows:
        mean = {k: float(np.nanmean([row[k] for row in rows])) for k in
                (*keys, "real_benign_fpr")}
        worst = {k: (float(np.nanmin([row[k] for row in rows])) if k in (
            "recall", "roc_auc", "precision", "subject_accuracy", "f_latency")
            else float(np.nanmax([row[k] for row in rows])))
            for k in (*keys, "real_benign_fpr")}
        rows.append({"author": "mean", "status": "", "threshold": math.nan, **mean,
                     "worst_subgroup": ""})
        rows.append({"author": "worst", "status": "", "threshold": math.nan, **worst,
                     "worst_subgroup": ""})
    return rows


def digest_of(conversations: Sequence[Conversation]) -> str:
    h = hashlib.sha256()
    for c in conversations:
        h.update(c.conversation_id.encode())
    return h.hexdigest()



ABLATIONS: dict[str, tuple[str, ...]] = {
    "message counts (log_messages, log_pair_messages)": ("log_messages", "log_pair_messages"),
    "group": ("group",),
    "the younger party's indicators": tuple(n for n in FEATURE_NAMES
                                            if n.startswith("younger_") and n not in (
                                                "younger_p_minor", "younger_age",
                                                "younger_age_evidence",
                                                "younger_profile_mismatch")),
    "stages (coverage, order)": ("stage_coverage", "escalation_order"),
    "family cues and metadata": ("family_context", "family_link", "relationship_known",
                                 "log_contact_age_days", "log_mutual_contacts"),
    "profile mismatches and corrections": ("older_profile_mismatch",
                                           "younger_profile_mismatch", "older_age_corrected",
                                           "older_adult_cues"),
    "the older party's age questions": ("older_age_question",),
    "age-evidence strengths": ("younger_age_evidence", "older_age_evidence"),
}


def factor_stability(config: CrossAuthorConfig | None = None, *,
                     held_out: Sequence[str] | None = None, corpus: Corpus | None = None,
                     ablations: dict[str, tuple[str, ...]] | None = None,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """For each group of factors: ROC-AUC without it minus with it, in-author (a random
    30% of the training authors' conversations) and cross-author (the held-out author).
    A group that helps in-author but hurts cross-author is a shortcut."""
    config = config or CrossAuthorConfig()
    corpus = corpus or load_corpus(config)
    ablations = ablations or ABLATIONS
    say = progress or (lambda _: None)
    out: dict[str, Any] = {name: {"in_author": [], "cross_author": [], "authors": []}
                           for name in ablations}
    for h in held_out or list(corpus.by_author):
        say(f"factor stability, held-out author {h}")
        train = [a for a in corpus.by_author if a != h]
        rec = build_recognisers([a for a in train if a != GENERATOR], corpus.benign_fit,
                                benign_hit_rate=config.recogniser_benign_hit_rate)
        extractor = IndicatorExtractor(
            catalogue=load_catalogue(recogniser=False).with_recogniser(rec))
        meta = config.relationship_metadata
        fit_F = sum((featurise(corpus.by_author[a], a, extractor, metadata=meta) for a in train),
                    Featurised()) + featurise(corpus.benign_fit, "real_benign", extractor,
                                              metadata=meta)
        test_F = featurise(corpus.by_author[h], h, extractor, metadata=meta)
        rng = np.random.default_rng(config.random_state)
        inner = rng.random(len(fit_F)) < 0.3
        for name, columns in {"(none)": (), **ablations}.items():
            idx = [FEATURE_NAMES.index(c) for c in columns]

            def without(F: Featurised, idx: list[int] = idx) -> Featurised:
                def zero(rows: np.ndarray) -> np.ndarray:
                    rows = rows.copy()
                    rows[:, idx] = 0.0
                    return rows

                return F.with_rows(zero)

            a_fit, a_in, a_test = without(fit_F.take(~inner)), without(fit_F.take(inner)), \
                without(test_F)
            m_in = _fit(a_fit, config)
            auc_in = _roc_auc(conversation_scores(m_in, a_in)[0], np.asarray(a_in.labels))
            m_all = _fit(without(fit_F), config)
            auc_cross = _roc_auc(conversation_scores(m_all, a_test)[0],
                                 np.asarray(a_test.labels))
            if name == "(none)":
                full_in, full_cross = auc_in, auc_cross
                continue
            out[name]["in_author"].append(auc_in - full_in)
            out[name]["cross_author"].append(auc_cross - full_cross)
            out[name]["authors"].append(h)
    for v in out.values():
        v["in_author_mean"] = float(np.mean(v["in_author"])) if v["in_author"] else math.nan
        v["cross_author_mean"] = (float(np.mean(v["cross_author"])) if v["cross_author"]
                                  else math.nan)
    return out
