"""Risk-model scoring benchmark, printed as ratios measured in the same run.

    python benchmarks/bench_model.py     (needs the [train] extra for the references)

ONNX (onnxruntime, one thread) against scikit-learn's ``predict_proba`` on the same
rows, for a logistic model and for the shipped model; single-conversation latency
(risk factors from a ready state, then the model) in microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from bench_extractor import best_of  # same folder: run as python benchmarks/bench_model.py

from classifier import (
    FEATURE_NAMES,
    Conversation,
    Message,
    RiskFactorBuilder,
    RiskModel,
    conversation_state,
)
from classifier.indicators import IndicatorExtractor
from classifier.training import export_onnx, fit_model


def main() -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    n = 200_000
    X = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    y = (X[:, 2] + X[:, 15] + rng.normal(size=n) > 0).astype(int)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    print(f"{n} rows of {len(FEATURE_NAMES)} risk factors; onnxruntime with one thread\n")
    print(f"{'model':<28} {'ONNX rows/s':>14} {'sklearn rows/s':>15} {'ratio':>7} "
          f"{'1 row, us':>10}")
    for kind in ("logistic", "gbt"):
        model = fit_model(kind, X[:20000], y[:20000])
        sess = ort.InferenceSession(export_onnx(model, X.shape[1]), opts,
                                    providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        t_onnx = best_of(lambda s=sess, nm=name: s.run(None, {nm: X}))
        t_sk = best_of(lambda m=model: m.predict_proba(X), repeat=2)
        one = X[:1]
        t_one = best_of(lambda s=sess, nm=name, row=one: [s.run(None, {nm: row})
                                                       for _ in range(2000)]) / 2000
        print(f"{kind + ' (fitted here)':<28} {n / t_onnx:>14,.0f} {n / t_sk:>15,.0f} "
              f"{t_sk / t_onnx:>7.1f} {t_one * 1e6:>10.1f}")

    ext = IndicatorExtractor()
    shipped = RiskModel.load(catalogue_sha256=ext.catalogue.sha256)
    t_batch = best_of(lambda: shipped.predict(X))
    print(f"{'shipped ' + shipped.version:<28} {n / t_batch:>14,.0f} {'':>15} {'':>7} ", end="")
    t_one = best_of(lambda: [shipped.predict(X[:1]) for _ in range(2000)]) / 2000
    print(f"{t_one * 1e6:>10.1f}")

    # one conversation: risk factors from its state, then the shipped model
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    lines = ["hey", "how old r u", "im 13", "ur so mature", "are your parents home", "no",
             "dont tell anyone", "ok", "add me on snap", "send me a pic"]
    msgs = [Message("a" if i % 2 == 0 else "b", t0 + timedelta(minutes=i), lines[i % 10])
            for i in range(60)]
    state = conversation_state(Conversation("bench", (), tuple(msgs)), ext)
    builder = RiskFactorBuilder(ext.catalogue)
    t_feat = best_of(lambda: [builder.transform(state, {"a": None, "b": 13})
                           for _ in range(2000)]) / 2000
    t_score = best_of(lambda: [shipped.predict(builder.transform(state, {"a": None, "b": 13}))
                            for _ in range(2000)]) / 2000
    print(f"\none conversation (60 messages, state ready): risk factors {t_feat * 1e6:.1f} us, "
          f"factors + shipped model {t_score * 1e6:.1f} us")


if __name__ == "__main__":
    main()
