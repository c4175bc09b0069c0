"""``solicitation-classifier train``: rebuild the shipped risk model, deterministically.

Data (all from fixed seeds and fixed hash splits):

- fit: synthetic train split (seed ``synth_seed``) + real benign chat, train half, whose
  id hashes to the *fit* part;
- validation (threshold policy, model choice): synthetic train split with another seed
  + the rest of the real benign train half;
- test (model card only): synthetic *test* split (held-out phrase families) + the real
  benign test half.

Both model kinds are fitted; the one with the higher validation recall at the policy
threshold ships (ties: the logistic model, which is faster). Conversations the scope
refuses (protected helpline participants) are never scanned, so they are left out and
counted.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from classifier import (
    FEATURE_NAMES,
    Conversation,
    IndicatorExtractor,
    RiskFactorBuilder,
    RiskModel,
    Scorer,
    conversation_state,
    conversation_to_dict,
    peer_gate,
)
from classifier._features import PEER_GATE
from classifier._scope import refusal_reason
from classifier.training import (
    MODEL_KINDS,
    ThresholdPolicy,
    export_onnx,
    fit_model,
    onnx_parity,
    write_model_dir,
)

from .benign import load_chitchat
from .metrics import classification_summary, f_latency
from .synth import generate

__all__ = ["TrainConfig", "build_matrix", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """What ``train`` builds; the defaults build the shipped model."""

    synth_n: int = 4000
    synth_seed: int = 0
    val_n: int = 2000
    val_seed: int = 1
    test_n: int = 4000
    test_seed: int = 0
    benign: bool = True  # real benign chat (needs chitchat-dataset)
    max_fpr: float = 0.001
    kinds: tuple[str, ...] = MODEL_KINDS
    random_state: int = 0


@dataclass
class Matrix:
    X: np.ndarray
    y: np.ndarray
    subgroups: list[str]
    ids: list[str]
    digest: str
    refused: int


def build_matrix(conversations: Iterable[Conversation], extractor: IndicatorExtractor,
                 label: str = "data") -> Matrix:
    """Risk-factor rows of conversations (scope-refused ones are counted, not kept)."""
    builder = RiskFactorBuilder(extractor.catalogue)
    rows, ys, groups, ids = [], [], [], []
    h = hashlib.sha256()
    refused = 0
    for conv in tqdm(conversations, disable=None, leave=False, desc=label):
        h.update(json.dumps(conversation_to_dict(conv), sort_keys=True).encode())
        if refusal_reason(conv) is not None:
            refused += 1
            continue
        state = conversation_state(conv, extractor)
        rows.append(builder.transform(state, {p.id: p.declared_age for p in conv.participants}))
        ys.append(int(conv.label or 0))
        groups.append(conv.subgroup or "unknown")
        ids.append(conv.conversation_id)
    X = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, len(FEATURE_NAMES)),
                                                                  np.float32)
    return Matrix(X, np.asarray(ys, dtype=np.int64), groups, ids, h.hexdigest(), refused)


def _benign_parts(part: str, benign: bool) -> list[Conversation]:
    if not benign:
        return []
    convs = load_chitchat("train") if part != "test" else load_chitchat("test")
    if part == "test":
        return list(convs)
    # the train half splits again, by the second byte of the id hash
    def second(c: Conversation) -> str:
        return "fit" if hashlib.sha256(c.conversation_id.encode()).digest()[1] < 160 else "val"
    return [c for c in convs if second(c) == part]


def _metrics(scores: np.ndarray, m: Matrix, threshold: float) -> dict[str, Any]:
    return classification_summary(scores, m.y, m.subgroups, threshold, refused=m.refused)


def _scores_of(model: Any, X: np.ndarray) -> np.ndarray:
    """Scores as the runtime computes them: calibrated probability x peer gate."""
    return model.predict_proba(X)[:, 1] * peer_gate(X) if len(X) else np.zeros(0)


def train(out_dir: str | Path, config: TrainConfig = TrainConfig(), *,
          report: Any = sys.stderr) -> dict[str, Any]:
    """Build a model directory (``model.onnx``, ``metadata.json``, ``model_card.md``)."""
    extractor = IndicatorExtractor()
    policy = ThresholdPolicy(config.max_fpr)

    def data(part: str) -> list[Conversation]:
        if part == "fit":
            synth = generate(config.synth_n, seed=config.synth_seed, split="train")
        elif part == "val":
            synth = generate(config.val_n, seed=config.val_seed, split="train")
        else:
            synth = generate(config.test_n, seed=config.test_seed, split="test")
        return list(synth) + _benign_parts(part, config.benign)

    fit = build_matrix(data("fit"), extractor, "risk factors (fit)")
    val = build_matrix(data("val"), extractor, "risk factors (validation)")
    test_convs = data("test")
    test = build_matrix(test_convs, extractor, "risk factors (test)")

    candidates = {}
    for kind in config.kinds:
        model = fit_model(kind, fit.X, fit.y, random_state=config.random_state)
        val_scores = _scores_of(model, val.X)
        threshold = policy.choose(val_scores, val.y)
        candidates[kind] = (model, threshold, _metrics(val_scores, val, threshold))
        vm = candidates[kind][2]
        print(f"{kind}: validation recall {vm['recall']:.4f}, precision {vm['precision']:.4f}, "
              f"FPR {vm['fpr']:.4%} at threshold {threshold:.6f}", file=report)
    kind = max(candidates, key=lambda k: (candidates[k][2]["recall"], candidates[k][2]["f0_5"],
                                          k == "logistic"))
    model, threshold, val_metrics = candidates[kind]
    onnx_bytes = export_onnx(model, len(FEATURE_NAMES))
    parity = onnx_parity(model, onnx_bytes, test.X)
    test_scores = _scores_of(model, test.X)
    test_metrics = _metrics(test_scores, test, threshold)
    benign = fit.X[fit.y == 0]
    baseline = np.median(benign, axis=0) if len(benign) else np.zeros(len(FEATURE_NAMES))
    metrics = {"validation": val_metrics, "test": test_metrics,
               "onnx_parity_max_abs_diff": parity,
               "candidates": {k: v[2] for k, v in candidates.items()}}
    digests = {"fit": fit.digest, "validation": val.digest, "test": test.digest}
    meta = write_model_dir(out_dir, onnx_bytes=onnx_bytes, threshold=threshold, policy=policy,
                           catalogue=extractor.catalogue, baseline=baseline, kind=kind,
                           data_digests=digests, metrics=metrics,
                           extra={"train_config": asdict(config), "peer_gate": PEER_GATE})
    # early detection on the test positives, with the exported model as a provider runs it
    scorer = Scorer(RiskModel.load(out_dir, catalogue_sha256=extractor.catalogue.sha256),
                    extractor=extractor)
    flagged_ids = {test.ids[i] for i in np.flatnonzero((test_scores >= threshold)
                                                        & (test.y == 1))}
    flagged_convs = [c for c in test_convs if c.conversation_id in flagged_ids]
    to_flag = [k + 1 for c in tqdm(flagged_convs, disable=None, leave=False,
                                   desc="early detection")
               if (k := scorer.first_crossing(c)) is not None]
    test_metrics["messages_to_flag_median"] = float(np.median(to_flag)) if to_flag else None
    test_metrics["messages_to_flag_p90"] = (float(np.percentile(to_flag, 90))
                                            if to_flag else None)
    test_metrics["f_latency"] = f_latency(test_metrics["f1"], to_flag)
    meta["metrics"]["test"] = test_metrics
    (Path(out_dir) / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True)
                                                 + "\n")
    (Path(out_dir) / "model_card.md").write_text(model_card(meta))
    print(f"shipped {meta['model_version']}: test recall {test_metrics['recall']:.4f}, "
          f"precision {test_metrics['precision']:.4f}, F0.5 {test_metrics['f0_5']:.4f}, "
          f"F_latency {test_metrics['f_latency']:.4f}; ONNX parity {parity:.2e}", file=report)
    return meta


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def model_card(meta: dict[str, Any]) -> str:
    """The model card, from metadata only (every figure has a source in metadata.json)."""
    t = meta["metrics"]["test"]
    v = meta["metrics"]["validation"]
    cfg = meta.get("train_config", {})
    lines = [
        f"# Model card: {meta['model_version']}",
        "",
        "## Intended use",
        "",
        "Scores text conversations for *possible* solicitation of children from the risk",
        "factors of `classifier/_features.py` (age difference, likely involvement of a",
        "child, direction-aware indicator rates, stage order, traffic). A flag starts a human",
        "review; it is never a report by itself (Reg. 2021/1232 Art 3(1)(g)). Not for",
        "profiling, not for content moderation, not for audio or images.",
        "",
        "## Model",
        "",
        f"- kind: `{meta['model_kind']}` (calibrated, sigmoid); ONNX sha256 "
        f"`{meta['model_sha256']}`",
        f"- indicator catalogue: {meta['catalogue_name']} {meta['catalogue_version']} "
        f"(sha256 `{meta['catalogue_sha256'][:16]}...`)",
        f"- threshold: **{meta['threshold']:.6f}**, policy: {meta['threshold_policy']}",
        f"- peer gate (outside the graph, applied at run time): {meta['peer_gate']}",
        f"- ONNX vs scikit-learn parity on the test set: max |diff| = "
        f"{meta['metrics']['onnx_parity_max_abs_diff']:.2e}",
        "",
        "## Data",
        "",
        f"- fit: synthetic train families (n={cfg.get('synth_n')}, seed "
        f"{cfg.get('synth_seed')}) + real benign chat (chitchat-dataset, train half, fit part)",
        f"- validation: synthetic train families (n={cfg.get('val_n')}, seed "
        f"{cfg.get('val_seed')}) + real benign chat (train half, validation part)",
        f"- test: synthetic **held-out** families (n={cfg.get('test_n')}, seed "
        f"{cfg.get('test_seed')}) + real benign chat test half",
        f"- digests: fit `{meta['training_data']['fit'][:16]}`, validation "
        f"`{meta['training_data']['validation'][:16]}`, test "
        f"`{meta['training_data']['test'][:16]}`",
        "- protected helpline conversations are refused by scope (never scanned): "
        f"{t['refused_by_scope']} in test",
        "",
        "## Metrics on the test set (held-out phrase families + real benign test half)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| conversations (positive / benign) | {t['n_conversations']} ({t['n_positive']} / "
        f"{t['n_negative']}) |",
        f"| precision | {t['precision']:.4f} |",
        f"| recall | {t['recall']:.4f} |",
        f"| F0.5 | {t['f0_5']:.4f} |",
        f"| F1 | {t['f1']:.4f} |",
        f"| false-positive rate (benign) | {_pct(t['fpr'])} (95% CI {_pct(t['fpr_ci95'][0])} - "
        f"{_pct(t['fpr_ci95'][1])}) |",
        f"| false flags per 10,000 benign conversations | "
        f"{t['false_flags_per_10k_benign']:.1f} |",
        f"| F_latency | {t['f_latency']:.4f} |",
        f"| messages seen before the flag (median / p90) | {t['messages_to_flag_median']} / "
        f"{t['messages_to_flag_p90']} |",
        f"| validation FPR (policy data) | {_pct(v['fpr'])} ({v['fp']} of {v['n_negative']}) |",
        "",
        "## Subgroups (test)",
        "",
        "| subgroup | n | flagged | rate (95% CI) | measure |",
        "|---|---:|---:|---|---|",
    ]
    for g, s in t["subgroups"].items():
        lines.append(f"| {g} | {s['n']} | {s['flagged']} | {_pct(s['rate'])} "
                     f"({_pct(s['ci95'][0])} - {_pct(s['ci95'][1])}) | {s['measure']} |")
    lines += [
        "",
        "## Limits",
        "",
        "- Positives are synthetic (see `evaluation/DATA.md`); recall on real grooming is",
        "  unknown. Held-out families measure generalisation to new wording of the same",
        "  generator, not to real offenders.",
        "- Real benign data is adult English chat; false flags among teenagers and families",
        "  are measured only on synthetic hard negatives.",
        "- Adults who claim to be teenagers and hide every adult cue look like peers to the",
        "  age factors by design (recital 6); they are caught only through one-sided",
        "  indicator rates, stage order and traffic.",
        "- English only; the catalogue is the only reader of text.",
        "",
    ]
    return "\n".join(lines)

