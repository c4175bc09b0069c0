"""Error measures used by training and evaluation (numbers in, numbers out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["f_beta", "f_latency", "latency_penalty", "recall_at_fpr", "wilson_interval"]

_P = math.log(3) / 89  # Vogt et al. 2021: penalty 0.5 after 90 messages


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95% by default).

    >>> [round(v, 4) for v in wilson_interval(0, 100)]
    [0.0, 0.037]
    """
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def f_beta(precision: float, recall: float, beta: float) -> float:
    """F-beta from precision and recall (0 when both are 0)."""
    b2 = beta * beta
    denom = b2 * precision + recall
    return (1 + b2) * precision * recall / denom if denom else 0.0


def latency_penalty(k: int) -> float:
    """penalty(k) = -1 + 2 / (1 + exp(-p (k - 1))), k = messages seen before the flag."""
    return -1.0 + 2.0 / (1.0 + math.exp(-_P * (k - 1)))


def f_latency(f1: float, messages_to_flag: Sequence[int]) -> float:
    """F_latency = F1 x speed, speed = 1 - median penalty over true positives.

    >>> round(f_latency(1.0, [1, 1, 1]), 6)
    1.0
    >>> round(f_latency(1.0, [90]), 3)
    0.5
    """
    if not len(messages_to_flag):
        return 0.0
    speed = 1.0 - float(np.median([latency_penalty(k) for k in messages_to_flag]))
    return f1 * speed


def classification_summary(scores: np.ndarray, labels: np.ndarray, subgroups: Sequence[str],
                           threshold: float, *, refused: int = 0) -> dict:
    """Conversation-level errors at a threshold: overall and per subgroup, with Wilson
    95% intervals. A subgroup whose conversations are all positive reports its recall;
    any other subgroup its false-positive rate."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    flagged = scores >= threshold
    pos, neg = labels == 1, labels == 0
    tp, fp = int((flagged & pos).sum()), int((flagged & neg).sum())
    fn = int((~flagged & pos).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    n_neg = int(neg.sum())
    out: dict = {
        "n_conversations": len(labels), "n_positive": int(pos.sum()), "n_negative": n_neg,
        "refused_by_scope": refused, "tp": tp, "fp": fp, "fn": fn,
        "precision": precision, "recall": recall, "recall_ci95": list(wilson_interval(tp, tp + fn)),
        "f1": f_beta(precision, recall, 1.0), "f0_5": f_beta(precision, recall, 0.5),
        "fpr": fp / n_neg if n_neg else 0.0, "fpr_ci95": list(wilson_interval(fp, n_neg)),
        "false_flags_per_10k_benign": 1e4 * fp / n_neg if n_neg else 0.0,
        "subgroups": {},
    }
    groups = np.asarray(subgroups)
    for g in sorted(set(subgroups)):
        sel = groups == g
        n, k = int(sel.sum()), int((flagged & sel).sum())
        out["subgroups"][g] = {
            "n": n, "flagged": k, "rate": k / n if n else 0.0,
            "ci95": list(wilson_interval(k, n)),
            "measure": "recall" if bool(labels[sel].all()) else "false_positive_rate"}
    return out


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise, as average precision).

    >>> round(average_precision(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0])), 4)
    0.8333
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    y = np.asarray(labels)[order]
    if not y.sum():
        return 0.0
    tp = np.cumsum(y)
    precision = tp / np.arange(1, len(y) + 1)
    return float((precision * y).sum() / y.sum())


def brier(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error of the scores as probabilities."""
    return float(np.mean((np.asarray(scores) - np.asarray(labels)) ** 2)) if len(labels) else 0.0


def reliability_curve(scores: np.ndarray, labels: np.ndarray, bins: int = 10,
                      ) -> list[tuple[float, float, int]]:
    """(mean score, observed positive rate, count) per equal-width score bin."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    return [(float(scores[idx == b].mean()), float(labels[idx == b].mean()), int((idx == b).sum()))
            for b in range(bins) if (idx == b).any()]


def threshold_sweep(scores: np.ndarray, labels: np.ndarray,
                    thresholds: Sequence[float] | None = None) -> list[dict]:
    """Precision, recall and FPR (each rate with its Wilson 95% interval: ``recall_low``,
    ``recall_high``, ``fpr_low``, ``fpr_high``) and false flags per 10k benign at each
    threshold; ``n_positive`` and ``n_negative`` say how many conversations a rate rests on.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    if thresholds is None:
        thresholds = [0.05 * i for i in range(1, 20)] + [0.975, 0.99, 0.995, 0.999]
    rows = []
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    for t in thresholds:
        flagged = scores >= t
        tp, fp = int((flagged & (labels == 1)).sum()), int((flagged & (labels == 0)).sum())
        recall_ci, fpr_ci = wilson_interval(tp, n_pos), wilson_interval(fp, n_neg)
        rows.append({"threshold": float(t), "precision": tp / (tp + fp) if tp + fp else 1.0,
                     "recall": tp / n_pos if n_pos else 0.0,
                     "recall_low": recall_ci[0], "recall_high": recall_ci[1],
                     "fpr": fp / n_neg if n_neg else 0.0,
                     "fpr_low": fpr_ci[0], "fpr_high": fpr_ci[1],
                     "false_flags_per_10k": 1e4 * fp / n_neg if n_neg else 0.0,
                     "n_positive": n_pos, "n_negative": n_neg})
    return rows


def account_error_rate(flagged_accounts: Sequence[tuple[str, bool]]) -> tuple[float, int, int]:
    """The annual report's error rate (Impl. Reg. 2024/2916, B3/A3): of the accounts
    flagged automatically, the share that review cleared. Input: one (account, confirmed)
    pair per flag; an account counts as cleared when none of its flags was confirmed.

    >>> account_error_rate([("a", True), ("b", False), ("b", False), ("c", False), ("c", True)])
    (0.3333333333333333, 1, 3)
    """
    confirmed: dict[str, bool] = {}
    for account, ok in flagged_accounts:
        confirmed[account] = confirmed.get(account, False) or ok
    a3 = len(confirmed)
    b3 = sum(1 for ok in confirmed.values() if not ok)
    return (b3 / a3 if a3 else 0.0), b3, a3


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float,
                  ) -> tuple[float, float]:
    """Recall at the cut that flags at most ``fpr`` of the negatives (strictly above the
    cut), and that cut: how a score that was never thresholded compares at another
    model's false-positive rate.

    >>> recall_at_fpr(np.array([0.9, 0.5, 0.8, 0.1]), np.array([1, 1, 0, 0]), 0.5)
    (1.0, 0.1)
    """
    neg = np.sort(scores[labels == 0])[::-1]
    k = int(np.floor(fpr * len(neg)))
    cut = float(neg[k]) if k < len(neg) else -math.inf
    recall = float((scores[labels == 1] > cut).mean()) if (labels == 1).any() else math.nan
    return recall, cut
