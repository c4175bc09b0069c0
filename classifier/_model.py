"""The risk model at run time: an ONNX graph (onnxruntime) plus its auditable metadata.

A model directory holds ``model.onnx`` and ``metadata.json`` (feature names in order,
threshold and the policy that chose it, sha256 of the model and of the indicator
catalogue, training-data digests, metrics, baseline factor values for explanations) and
``model_card.md``. Loading checks the digests and the feature names, so a model can never
be run on a vector it was not trained for.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import Errors, ModelError
from ._features import FACTOR_VERSION, FEATURE_NAMES, gate

__all__ = ["MODEL_ENV", "ModelError", "RiskModel", "default_model_dir"]

MODEL_ENV = "SOLICITATION_MODEL_DIR"


def default_model_dir() -> Path:
    """``$SOLICITATION_MODEL_DIR``, else the shipped model (package ``classifier.models``,
    the repository's ``models/`` folder)."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    from importlib import resources

    return Path(str(resources.files("classifier.models")))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class RiskModel:
    """A loaded risk model. Use :meth:`load`."""

    path: Path
    metadata: Mapping[str, Any]
    session: Any
    input_name: str
    threshold: float
    version: str
    baseline: np.ndarray

    @classmethod
    def load(cls, path: str | Path | None = None, *, catalogue_sha256: str | None = None,
             ) -> RiskModel:
        """Load and verify a model directory.

        Raises
        ------
        ModelError
            Missing files, a model whose sha256 differs from its metadata, feature names
            that differ from this library's, or a different indicator catalogue.
        """
        import onnxruntime as ort

        path = Path(path) if path is not None else default_model_dir()
        meta_path, onnx_path = path / "metadata.json", path / "model.onnx"
        for p in (meta_path, onnx_path):
            if not p.is_file():
                raise ModelError(Errors.M001.format(path=path, name=p.name))
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            threshold = float(meta["threshold"])
        except (ValueError, KeyError, TypeError) as exc:
            problem = type(exc).__name__
        else:
            problem = None
        if problem is not None:
            raise ModelError(Errors.M005.format(path=path, problem=problem))
        digest = sha256_file(onnx_path)
        if digest != meta.get("model_sha256"):
            raise ModelError(Errors.M002.format(path=path, digest=digest[:12],
                                                expected=str(meta.get("model_sha256"))[:12]))
        if meta.get("factor_version") != FACTOR_VERSION:
            raise ModelError(Errors.M006.format(path=path, got=meta.get("factor_version"),
                                                expected=FACTOR_VERSION))
        if tuple(meta.get("feature_names", ())) != FEATURE_NAMES:
            raise ModelError(Errors.M003.format(path=path))
        if catalogue_sha256 is not None and meta.get("catalogue_sha256") != catalogue_sha256:
            raise ModelError(Errors.M004.format(path=path,
                                                got=str(meta.get("catalogue_sha256"))[:12],
                                                expected=catalogue_sha256[:12]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        return cls(path=path, metadata=meta, session=session,
                   input_name=session.get_inputs()[0].name,
                   threshold=threshold, version=str(meta.get("model_version")),
                   baseline=np.asarray(meta["baseline"], dtype=np.float32))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores for rows of risk factors: the model's calibrated probability times the
        gates (:func:`classifier._features.gate`: the peer gate of recital 6 and the
        evidence gate)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None, :]
        if not len(X):
            return np.zeros(0)
        return self.predict_raw(X) * gate(X)

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """The ONNX graph's probability of the positive class, without the peer gate."""
        outputs = self.session.run(None, {self.input_name: X})
        proba = outputs[-1] if outputs[-1].ndim == 2 else outputs[0]
        return np.asarray(proba[:, 1], dtype=np.float64)

    def explain(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Score of one vector and each factor's contribution.

        A factor's contribution is how much the score drops when that factor alone is set
        to its benign-typical value (``baseline``, the median over benign training data).
        """
        scores, contributions = self.explain_many(np.asarray(x, dtype=np.float32)[None, :])
        return float(scores[0]), contributions[0]

    def explain_many(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`explain` for rows of risk factors, in one model call: the scores, shape
        (n,), and the contributions, shape (n, n_factors)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        n, k = X.shape
        rows = np.repeat(X, k + 1, axis=0).reshape(n, k + 1, k)
        idx = np.arange(k)
        rows[:, idx + 1, idx] = self.baseline
        scores = self.predict(rows.reshape(n * (k + 1), k)).reshape(n, k + 1)
        return scores[:, 0], scores[:, :1] - scores[:, 1:]
