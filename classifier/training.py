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
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ConfigError, Errors
from ._features import FEATURE_NAMES, MONOTONE_INCREASING

__all__ = ["ThresholdPolicy", "export_onnx", "fit_model", "onnx_parity", "write_model_dir"]

MODEL_KINDS = ("logistic", "gbt")


@dataclass(frozen=True)
class ThresholdPolicy:
    """Choose the lowest threshold whose benign FPR on validation data is <= ``max_fpr``."""

    max_fpr: float = 0.001

    def describe(self) -> str:
        return (f"lowest threshold with false-positive rate <= {self.max_fpr:.2%} on benign "
                "validation conversations")

    def choose(self, scores: np.ndarray, labels: np.ndarray) -> float:
        neg = np.sort(np.asarray(scores)[np.asarray(labels) == 0])[::-1]
        if neg.size == 0:
            return 0.5
        allowed = int(np.floor(self.max_fpr * neg.size))  # false positives we may keep
        # flag strictly above the (allowed+1)-th highest benign score
        cut = neg[allowed] if allowed < neg.size else 0.0
        return float(np.nextafter(cut, 1.0))


def fit_model(kind: str, X: np.ndarray, y: np.ndarray, *, random_state: int = 0) -> Any:
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
        cst = [1 if name in MONOTONE_INCREASING else 0 for name in FEATURE_NAMES]
        base = HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=20,
            l2_regularization=1.0, monotonic_cst=cst, class_weight="balanced",
            early_stopping=False, random_state=random_state)
        model = CalibratedClassifierCV(base, method="sigmoid", cv=3)
    else:
        raise ConfigError(Errors.M007.format(choices=", ".join(MODEL_KINDS), kind=kind))
    return model.fit(np.asarray(X, dtype=np.float32), np.asarray(y))


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
        "threshold": threshold,
        "threshold_policy": policy.describe(),
        "threshold_policy_max_fpr": policy.max_fpr,
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
