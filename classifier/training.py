"""Training the risk model (extra ``[train]``: scikit-learn and skl2onnx).

Two calibrated pipelines on the risk-factor vector:

- ``logistic``: standardisation, then logistic regression with class weighting,
  calibrated with Platt scaling (sigmoid, 3-fold);
- ``gbt``: histogram gradient-boosted trees with *monotone* constraints on the
  risk-increasing factors (:data:`classifier._features.MONOTONE_INCREASING`), class
  weighting, calibrated the same way.

The operating threshold is not inside the graph: it is chosen by an explicit policy
(the lowest threshold whose false-positive rate on benign *validation* conversations is
within a budget) and written beside the model in ``metadata.json``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ConfigError, Errors
from ._features import (
    CONSTANTS,
    FACTOR_VERSION,
    FEATURE_NAMES,
    MONOTONE_DECREASING,
    MONOTONE_INCREASING,
)

__all__ = ["ThresholdPolicy", "export_onnx", "fit_model", "onnx_parity", "write_model_dir"]

MODEL_KINDS = ("logistic", "gbt")


@dataclass(frozen=True)
class ThresholdPolicy:
    """The lowest threshold whose false-positive rates on validation data stay within
    budget: ``max_fpr`` on real benign chat, ``max_hard_negative_fpr`` on hard negatives
    (conversations that look risky between people for whom it is normal) and
    ``max_subgroup_fpr`` on each hard-negative subgroup (teenage peers, parent and
    child, ...), so that no one kind of ordinary relationship carries the false flags.

    The validation scores must come from models that did not see the validation author
    (cross-author, out of fold): a threshold set on in-author scores is too low.

    >>> p = ThresholdPolicy(max_fpr=0.5)
    >>> p.choose(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 0, 0, 1])) > 0.2
    True
    >>> s, y = np.array([0.9, 0.8, 0.7, 0.3, 0.2]), np.array([1, 0, 0, 0, 0])
    >>> hard, groups = np.array([0, 1, 1, 1, 1], bool), np.array(["", "a", "b", "b", "b"])
    >>> ThresholdPolicy(max_fpr=1.0, max_hard_negative_fpr=0.5).choose(s, y, hard) < 0.7
    True
    >>> ThresholdPolicy(max_fpr=1.0, max_hard_negative_fpr=0.5, max_subgroup_fpr=0.5
    ...                 ).choose(s, y, hard, groups) > 0.8
    True
    """

    max_fpr: float = 0.001
    max_hard_negative_fpr: float | None = None
    max_subgroup_fpr: float | None = None

    def describe(self) -> str:
        text = (f"lowest threshold with false-positive rate <= {self.max_fpr:.2%} on real "
                "benign validation conversations")
        if self.max_hard_negative_fpr is not None:
            text += f" and <= {self.max_hard_negative_fpr:.2%} on hard negatives"
            if self.max_subgroup_fpr is not None:
                text += f" (<= {self.max_subgroup_fpr:.2%} in each subgroup)"
            text += ", scores out of fold across authors"
        return text

    @staticmethod
    def _cut(negatives: np.ndarray, budget: float) -> float:
        neg = np.sort(np.asarray(negatives))[::-1]
        if neg.size == 0:
            return 0.0
        allowed = int(np.floor(budget * neg.size))  # false positives we may keep
        # flag strictly above the (allowed+1)-th highest negative score
        cut = neg[allowed] if allowed < neg.size else 0.0
        return float(np.nextafter(cut, 1.0))

    def choose(self, scores: np.ndarray, labels: np.ndarray,
               hard_negative: np.ndarray | None = None,
               subgroups: np.ndarray | None = None) -> float:
        """``hard_negative`` marks which negatives are hard negatives (the rest: benign);
        ``subgroups`` names each conversation's subgroup (for ``max_subgroup_fpr``)."""
        scores, labels = np.asarray(scores), np.asarray(labels)
        if not (labels == 0).any():
            return 0.5
        if hard_negative is None or self.max_hard_negative_fpr is None:
            return self._cut(scores[labels == 0], self.max_fpr)
        hard = np.asarray(hard_negative, dtype=bool) & (labels == 0)
        benign = (labels == 0) & ~hard
        cuts = [self._cut(scores[benign], self.max_fpr),
                self._cut(scores[hard], self.max_hard_negative_fpr)]
        if subgroups is not None and self.max_subgroup_fpr is not None:
            groups = np.asarray(subgroups)
            cuts += [self._cut(scores[hard & (groups == g)], self.max_subgroup_fpr)
                     for g in sorted(set(groups[hard].tolist()))]
        return max(cuts)


def fit_model(kind: str, X: np.ndarray, y: np.ndarray, *, random_state: int = 0,
              sample_weight: np.ndarray | None = None) -> Any:
    """Fit one calibrated pipeline (see module docs)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        base = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
        model = Pipeline([("scale", StandardScaler()),
                          ("clf", CalibratedClassifierCV(base, method="sigmoid", cv=3))])
    elif kind == "gbt":
        cst = [1 if name in MONOTONE_INCREASING else -1 if name in MONOTONE_DECREASING else 0
               for name in FEATURE_NAMES]
        base = HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=20,
            l2_regularization=1.0, monotonic_cst=cst, class_weight="balanced",
            early_stopping=False, random_state=random_state)
        model = CalibratedClassifierCV(base, method="sigmoid", cv=3)
    else:
        raise ConfigError(Errors.M007.format(choices=", ".join(MODEL_KINDS), kind=kind))
    X = np.asarray(X, dtype=np.float32)
    if sample_weight is None:
        return model.fit(X, np.asarray(y))
    if kind == "logistic":
        return model.fit(X, np.asarray(y), clf__sample_weight=sample_weight)
    return model.fit(X, np.asarray(y), sample_weight=sample_weight)


def export_onnx(model: Any, n_features: int) -> bytes:
    """Convert a fitted pipeline to ONNX (float32 input ``risk_factors``, no ZipMap)."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, n_features), dtype=np.float32)
    onx = to_onnx(model, sample, options={"zipmap": False}, target_opset=17)
    # skl2onnx collects opset imports in a set: order them, or the bytes (and sha256)
    # would change with Python's hash seed from one process to the next
    imports = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in imports:
        entry = onx.opset_import.add()
        entry.domain, entry.version = domain, version
    return onx.SerializeToString()


def onnx_parity(model: Any, onnx_bytes: bytes, X: np.ndarray) -> float:
    """Largest absolute difference between scikit-learn and onnxruntime scores."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    X32 = np.asarray(X, dtype=np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: X32})[-1][:, 1]
    ref = model.predict_proba(X32)[:, 1]
    return float(np.max(np.abs(got - ref))) if len(X32) else 0.0


def write_model_dir(out: str | Path, *, onnx_bytes: bytes, threshold: float,
                    policy: ThresholdPolicy, catalogue: Any, baseline: Sequence[float],
                    kind: str, data_digests: Mapping[str, str], metrics: Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``model.onnx`` and ``metadata.json``; returns the metadata."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onnx_bytes)
    model_sha = hashlib.sha256(onnx_bytes).hexdigest()
    meta = {
        "model_version": f"{kind}-{model_sha[:12]}",
        "model_kind": kind,
        "model_sha256": model_sha,
        "feature_names": list(FEATURE_NAMES),
        "factor_version": FACTOR_VERSION,
        "factor_constants": CONSTANTS,
        "threshold": threshold,
        "threshold_policy": policy.describe(),
        "threshold_policy_max_fpr": policy.max_fpr,
        "threshold_policy_max_hard_negative_fpr": policy.max_hard_negative_fpr,
        "threshold_policy_max_subgroup_fpr": policy.max_subgroup_fpr,
        "catalogue_name": catalogue.name,
        "catalogue_version": catalogue.version,
        "catalogue_sha256": catalogue.sha256,
        "baseline": [float(v) for v in baseline],
        "training_data": dict(data_digests),
        "metrics": dict(metrics),
        **(dict(extra) if extra else {}),
    }
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def _hit_threshold(scores: np.ndarray, rate: float) -> float:
    """The lowest threshold that at most ``rate`` of these scores reach (ties at the
    quantile, common for short messages, would let through more: then just above them)."""
    q = float(np.quantile(scores, 1.0 - rate))
    if (scores >= q).mean() <= rate:
        return q
    # just above the tied scores, with room for the rounding of the runtime's summation
    # order (float32 sums of the same weights in another order)
    return q + 1e-4 * max(1.0, abs(q))


def fit_recognisers(turns: Sequence[tuple[str, str | None, str]], labels: Sequence[str], *,
                    benign_hit_rate: float = 0.005, min_count: int = 3, min_authors: int = 2,
                    C: float = 4.0, contrasts: Mapping[str, str] | None = None,
                    also_below: Mapping[str, tuple[str, float]] | None = None,
                    meta: Mapping[str, Any] | None = None) -> Any:
    """Fit one linear recogniser per label on annotated turns.

    Parameters
    ----------
    turns : sequence of (text, label, author)
        ``label`` is the annotated category of a risky turn, or None for a benign turn
        (hard negatives, real benign chat, a child's plain replies).
    labels : the categories to learn.
    benign_hit_rate : float
        Each threshold lets through at most this share of the benign training turns.
    min_count, min_authors : int
        A word (or word pair) enters the vocabulary only if it occurs in ``min_count``
        turns of at least ``min_authors`` authors: wording of one author alone is not
        learned.
    contrasts : mapping of label -> label, optional
        A label learned against another label's turns instead of the benign turns (the
        speaker's age group: a minor's turns against adults'); its threshold lets through
        ``benign_hit_rate`` of those. Such turns are not benign turns of any label (the
        same text may be given again with ``None``).
    also_below : mapping of label -> (label, rate), optional
        The threshold of the label also lets through at most ``rate`` of the turns of this
        other label, which are never fitted (real benign chat, whose speakers are adults:
        the threshold holds on real chat as well).

    Returns
    -------
    classifier.indicators.WordRecogniser
    """
    from collections import defaultdict

    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    from .indicators import WordRecogniser, tokens

    toks = [tokens(t) for t, _, _ in turns]
    seen_by: dict[Any, set[str]] = defaultdict(set)
    count: dict[Any, int] = defaultdict(int)
    for (_, _, author), ts in zip(turns, toks, strict=True):
        for key in set(ts) | set(itertools.pairwise(ts)):
            seen_by[key].add(author)
            count[key] += 1
    kept = [k for k, n in count.items() if n >= min_count and len(seen_by[k]) >= min_authors]
    words = sorted(k for k in kept if isinstance(k, str))
    pairs = sorted(k for k in kept if isinstance(k, tuple))
    column = {w: i for i, w in enumerate(words)}
    column |= {p: len(words) + i for i, p in enumerate(pairs)}
    rows, cols = [], []
    for r, ts in enumerate(toks):
        for key in (*ts, *itertools.pairwise(ts)):
            c = column.get(key)
            if c is not None:
                rows.append(r)
                cols.append(c)
    X = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                   shape=(len(turns), len(column)))  # counts: duplicates add up
    y_all = np.array([lab if lab is not None else "" for _, lab, _ in turns], dtype=object)
    negative = y_all == ""
    weights = np.zeros((len(column), len(labels)), dtype=np.float32)
    bias = np.zeros(len(labels), dtype=np.float32)
    thresholds = np.zeros(len(labels), dtype=np.float32)
    rates = {}
    contrasts, also = dict(contrasts or {}), dict(also_below or {})
    for j, label in enumerate(labels):
        mine = y_all == label
        other = y_all == contrasts[label] if label in contrasts else negative
        keep = mine | other
        if not mine.any() or not other.any():
            thresholds[j] = np.inf
            continue
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
        clf.fit(X[keep], mine[keep].astype(int))
        weights[:, j] = clf.coef_[0]
        bias[j] = clf.intercept_[0]
        thresholds[j] = _hit_threshold(X[other] @ weights[:, j] + bias[j], benign_hit_rate)
        if label in also:
            extra = y_all == also[label][0]
            if extra.any():
                thresholds[j] = max(thresholds[j], _hit_threshold(
                    X[extra] @ weights[:, j] + bias[j], also[label][1]))
        pos_scores = X[mine] @ weights[:, j] + bias[j]
        rates[label] = {"train_recall": float((pos_scores >= thresholds[j]).mean()),
                        "train_positives": int(mine.sum())}
    info = {"labels": list(labels), "turns": len(turns), "benign_turns": int(negative.sum()),
            "benign_hit_rate_target": benign_hit_rate, "min_count": min_count,
            "min_authors": min_authors, "C": C, "contrasts": contrasts, "also_below": also,
            "train": rates, **dict(meta or {})}
    return WordRecogniser(labels, words, pairs, weights, bias, thresholds, info)
