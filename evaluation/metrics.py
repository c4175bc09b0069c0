"""Error measures used by training and evaluation (numbers in, numbers out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["f_beta", "f_latency", "latency_penalty", "wilson_interval"]

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
