"""The evaluation harness: measured errors, written for auditors into MLflow.

``solicitation-classifier evaluate --data FILE... --model DIR --tracking-uri URI``

Measures (conversation level unless said): false-positive rate with a Wilson 95%
interval overall and per subgroup, false flags per 10,000 benign conversations,
precision, recall, F0.5, PR-AUC, the annual-report error rate at account level (accounts
flagged then cleared by review over accounts flagged; labels stand in for review), Brier
score and reliability curve, a threshold sweep, early detection (messages seen before the
flag, F_latency) and, for PAN12 data, predator identification at user level.

Everything logged is aggregate: no per-message or per-conversation rows, ids or text. A
test runs an evaluation with a canary string in the data and scans every artifact and
the tracking database for it.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from classifier import Conversation, RiskModel, Scorer, read_jsonl

from .metrics import (
    account_error_rate,
    average_precision,
    brier,
    classification_summary,
    f_beta,
    f_latency,
    reliability_curve,
    threshold_sweep,
)

__all__ = ["EVAL_EXPERIMENT", "Evaluation", "evaluate", "load_labelled"]

EVAL_EXPERIMENT = "solicitation-risk/evaluation"
AUDIT_EXPERIMENT = "solicitation-risk/substance-audit"


@dataclass
class Evaluation:
    """What one evaluation measured (aggregates only)."""

    dataset: str
    dataset_digest: str
    model: dict[str, Any]
    summary: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    sweep: list[dict[str, float]] = field(default_factory=list)
    reliability: list[tuple[float, float, int]] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    rejected: int = 0
    run_id: str | None = None


def load_labelled(paths: Sequence[str | Path]) -> tuple[list[Conversation], int, str]:
    """Conversations with labels from interchange files; returns (good, rejected, digest)."""
    convs: list[Conversation] = []
    rejected = 0
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).read_bytes())
        for r in read_jsonl(path):
            if r.conversation is None or r.conversation.label is None:
                rejected += 1
                continue
            convs.append(r.conversation)
    return convs, rejected, h.hexdigest()


def _pan12_user_measures(convs: Sequence[Conversation], results: Sequence[Any]) -> dict:
    """PAN12 problem 1 at user level: which authors are predators."""
    truth = {c.offender for c in convs if c.subgroup == "pan12" and c.offender}
    found = {r.subject for c, r in zip(convs, results, strict=True)
             if c.subgroup == "pan12" and r.flagged and r.subject}
    if not truth and not found:
        return {}
    tp = len(truth & found)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(truth) if truth else 0.0
    return {"pan12_user_precision": precision, "pan12_user_recall": recall,
            "pan12_user_f0_5": f_beta(precision, recall, 0.5),
            "pan12_user_f1": f_beta(precision, recall, 1.0)}


def evaluate(data: Sequence[str | Path], *, model_dir: str | Path | None = None,
             tracking_uri: str | None = None, baseline_train: Sequence[Conversation] = (),
             dataset_name: str | None = None, log: bool = True) -> Evaluation:
    """Score labelled data, measure the errors and (``log``) write an MLflow run."""
    model = RiskModel.load(model_dir)
    scorer = Scorer(model)
    convs, rejected, digest = load_labelled(data)
    results = list(tqdm(scorer.score_batch(convs), disable=None, leave=False, desc="evaluate",
                        total=len(convs)))
    scored = [(c, r) for c, r in zip(convs, results, strict=True) if r.status == "scored"]
    refused = len(convs) - len(scored)
    scores = np.asarray([r.score for _, r in scored], dtype=np.float64)
    labels = np.asarray([int(c.label or 0) for c, _ in scored])
    groups = [c.subgroup or "unknown" for c, _ in scored]
    summary = classification_summary(scores, labels, groups, scorer.threshold, refused=refused)
    to_flag = [r.flagged_at_message + 1 for c, r in scored
               if r.flagged and c.label == 1 and r.flagged_at_message is not None]
    err, b3, a3 = account_error_rate([(r.subject or c.conversation_id,
                                       bool(c.label == 1 and (c.offender in (None, r.subject))))
                                      for c, r in scored if r.flagged])
    extra = {
        "pr_auc": average_precision(scores, labels), "brier": brier(scores, labels),
        "f_latency": f_latency(summary["f1"], to_flag),
        "messages_to_flag_median": float(np.median(to_flag)) if to_flag else float("nan"),
        "messages_to_flag_p90": float(np.percentile(to_flag, 90)) if to_flag else float("nan"),
        "account_error_rate": err, "accounts_flagged": a3, "accounts_cleared": b3,
        "records_rejected": rejected,
        **_pan12_user_measures([c for c, _ in scored], [r for _, r in scored]),
    }
    name = dataset_name or "+".join(_dataset_name(Path(p)) for p in data)
    meta = dict(model.metadata)
    ev = Evaluation(dataset=name, dataset_digest=digest,
                    model={k: meta.get(k) for k in ("model_version", "model_sha256",
                                                    "catalogue_version", "catalogue_sha256",
                                                    "threshold_policy", "peer_gate")}
                    | {"threshold": scorer.threshold, "path": str(model.path)},
                    summary=summary, extra=extra, sweep=threshold_sweep(scores, labels),
                    reliability=reliability_curve(scores, labels), rejected=rejected)
    if baseline_train:
        from classifier.training import ThresholdPolicy

        from .baseline import TextBaseline

        # fit on 80% of the baseline's training data, set its threshold on the other 20%
        # (by id hash), with the same policy as the model: fair, not tuned on its own fit
        def held(c: Conversation) -> bool:
            return hashlib.sha256(c.conversation_id.encode()).digest()[2] < 52
        fit_part = [c for c in baseline_train if not held(c)]
        val_part = [c for c in baseline_train if held(c)]
        text_model = TextBaseline().fit(fit_part)
        b_threshold = ThresholdPolicy(meta.get("threshold_policy_max_fpr", 0.001)).choose(
            text_model.scores(val_part), np.asarray([int(c.label or 0) for c in val_part]))
        b_scores = text_model.scores([c for c, _ in scored])
        ev.baseline = classification_summary(b_scores, labels, groups, b_threshold)
        ev.baseline["pr_auc"] = average_precision(b_scores, labels)
        ev.baseline["threshold"] = b_threshold
    if log:
        ev.run_id = log_evaluation(ev, tracking_uri or default_tracking_uri(),
                                   Path(model.path))
    return ev


def default_tracking_uri() -> str:
    """The embedded default: a SQLite file in the working directory."""
    return f"sqlite:///{Path('mlruns.db').resolve()}"


def experiment_id(mlflow: Any, name: str, tracking_uri: str) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        location = (db.parent / "mlartifacts").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _tables(ev: Evaluation) -> list[tuple[str, list[str], list[list[str]]]]:
    s, x, m = ev.summary, ev.extra, ev.model
    rates = [
        ["false-positive rate (benign)", f"{_pct(s['fpr'])} (95% CI {_pct(s['fpr_ci95'][0])} - "
         f"{_pct(s['fpr_ci95'][1])})"],
        ["false flags per 10,000 benign conversations", f"{s['false_flags_per_10k_benign']:.1f}"],
        ["recall", f"{s['recall']:.4f} (95% CI {s['recall_ci95'][0]:.4f} - "
         f"{s['recall_ci95'][1]:.4f})"],
        ["precision", f"{s['precision']:.4f}"], ["F0.5", f"{s['f0_5']:.4f}"],
        ["PR-AUC", f"{x['pr_auc']:.4f}"], ["Brier score", f"{x['brier']:.4f}"],
        ["F_latency", f"{x['f_latency']:.4f}"],
        ["messages before the flag (median / p90)",
         f"{x['messages_to_flag_median']} / {x['messages_to_flag_p90']}"],
        ["account-level error rate (B3/A3)", f"{_pct(x['account_error_rate'])} "
         f"({x['accounts_cleared']} of {x['accounts_flagged']} accounts)"],
        ["conversations (positive / benign / refused by scope / rejected)",
         f"{s['n_positive']} / {s['n_negative']} / {s['refused_by_scope']} / {ev.rejected}"],
    ]
    rates += [[k.replace("_", " "), f"{v:.4f}"] for k, v in x.items() if k.startswith("pan12")]
    subgroup = [[g, str(v["n"]), str(v["flagged"]),
                 f"{_pct(v['rate'])} ({_pct(v['ci95'][0])} - {_pct(v['ci95'][1])})",
                 v["measure"].replace("_", " ")] for g, v in s["subgroups"].items()]
    tables = [
        ("Model", ["field", "value"], [[k, str(v)] for k, v in m.items()]
         + [["dataset", ev.dataset], ["dataset sha256", ev.dataset_digest]]),
        ("Error rates", ["measure", "value"], rates),
        ("Subgroups", ["subgroup", "n", "flagged", "rate (95% CI)", "measure"], subgroup),
    ]
    if ev.baseline:
        b = ev.baseline
        tables.append(("Naive text baseline (TF-IDF + logistic regression; reads substance)",
                       ["measure", "risk-factor model", "text baseline"],
                       [["recall", f"{s['recall']:.4f}", f"{b['recall']:.4f}"],
                        ["precision", f"{s['precision']:.4f}", f"{b['precision']:.4f}"],
                        ["F0.5", f"{s['f0_5']:.4f}", f"{b['f0_5']:.4f}"],
                        ["false-positive rate", _pct(s["fpr"]), _pct(b["fpr"])],
                        ["PR-AUC", f"{x['pr_auc']:.4f}", f"{b['pr_auc']:.4f}"]]
                       + [[f"FPR {g}", _pct(v["rate"]), _pct(b["subgroups"][g]["rate"])]
                          for g, v in s["subgroups"].items()
                          if v["measure"] == "false_positive_rate" and g in b["subgroups"]]))
    return tables


def _dataset_name(path: Path) -> str:
    """A file's name in the run's name; an author's ``<author>/data.jsonl`` is the author.

    >>> _dataset_name(Path("evaluation/data/authors/a15_hobby_forums/data.jsonl"))
    'a15_hobby_forums'
    >>> _dataset_name(Path("eval-data.jsonl"))
    'eval-data'
    """
    return path.parent.name if path.stem == "data" and path.parent.name else path.stem


LIMITS = [
    "Positives and hard negatives are synthetic (the project's generator or independent "
    "authors, see docs/evaluation.md): they test wording, not real offenders; only the "
    "cross-author evaluation measures the model on authors it never saw.",
    "Labels stand in for human review in the account-level error rate.",
    "Wilson intervals assume independent conversations; subgroups with few conversations "
    "have wide intervals.",
    "The text baseline reads substance; it is shown for comparison only and is never saved.",
]


def render_report(ev: Evaluation) -> tuple[str, str]:
    """report.md and report.html from the same tables."""
    title = f"Evaluation of {ev.model.get('model_version')} on {ev.dataset}"
    md = [f"# {title}", "", f"Generated {datetime.now(UTC).isoformat(timespec='seconds')}.",
          ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for name, head, rows in _tables(ev):
        md += [f"## {name}", "", "| " + " | ".join(head) + " |",
               "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows] + [""]
        body.append(f"<h2>{html.escape(name)}</h2><table><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r)
                              + "</tr>" for r in rows) + "</table>")
    md += ["## Limits", ""] + [f"- {item}" for item in LIMITS] + [""]
    body.append("<h2>Limits</h2><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in LIMITS)
                + "</ul>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title)
            + "</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em}"
            "</style></head><body>" + "".join(body) + "</body></html>")
    return "\n".join(md), page


def _plots(ev: Evaluation, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = ev.summary
    fig, ax = plt.subplots(figsize=(4, 4))
    cm = np.array([[s["n_negative"] - s["fp"], s["fp"]], [s["fn"], s["tp"]]])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks([0, 1], ["not flagged", "flagged"])
    ax.set_yticks([0, 1], ["benign", "positive"])
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r["recall"] for r in ev.sweep], [r["precision"] for r in ev.sweep], marker=".")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall (PR-AUC {ev.extra['pr_auc']:.3f})")
    fig.tight_layout()
    fig.savefig(out / "pr_curve.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.plot([r[0] for r in ev.reliability], [r[1] for r in ev.reliability], marker="o")
    ax.set_xlabel("mean score")
    ax.set_ylabel("observed positive rate")
    ax.set_title(f"Calibration (Brier {ev.extra['brier']:.4f})")
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=100)
    plt.close(fig)

    negs = {g: v for g, v in s["subgroups"].items() if v["measure"] == "false_positive_rate"}
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(negs)
    rates = [100 * negs[g]["rate"] for g in names]
    err = [[max(0.0, 100 * (negs[g]["rate"] - negs[g]["ci95"][0])) for g in names],
           [max(0.0, 100 * (negs[g]["ci95"][1] - negs[g]["rate"])) for g in names]]
    ax.bar(range(len(names)), rates, yerr=err, capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylabel("false-positive rate, % (95% CI)")
    ax.set_title("False-positive rate by subgroup")
    fig.tight_layout()
    fig.savefig(out / "subgroup_fpr.png", dpi=100)
    plt.close(fig)


def log_evaluation(ev: Evaluation, tracking_uri: str, model_dir: Path) -> str:
    """One MLflow run: tags, metrics (overall and per subgroup) and artifacts."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    exp_id = experiment_id(mlflow, EVAL_EXPERIMENT, tracking_uri)
    run_name = (f"eval-{ev.model['model_version']}-{ev.dataset}-"
                f"{datetime.now(UTC).strftime('%Y%m%d')}")
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run, \
            tempfile.TemporaryDirectory() as tmp:
        m = ev.model
        mlflow.set_tags({
            "model_version": m["model_version"], "model_sha256": m["model_sha256"],
            "catalogue_version": m["catalogue_version"],
            "catalogue_sha256": m["catalogue_sha256"], "dataset": ev.dataset,
            "dataset_sha256": ev.dataset_digest, "evaluation_kind": "held-out evaluation",
            "threshold_policy": m["threshold_policy"], "threshold": str(m["threshold"]),
        })
        s = ev.summary
        metrics = {k: s[k] for k in ("precision", "recall", "f0_5", "f1", "fpr",
                                     "false_flags_per_10k_benign", "tp", "fp", "fn",
                                     "n_positive", "n_negative", "refused_by_scope")}
        metrics |= {"fpr_ci95_low": s["fpr_ci95"][0], "fpr_ci95_high": s["fpr_ci95"][1]}
        metrics |= {k: v for k, v in ev.extra.items() if np.isfinite(v)}
        for g, v in s["subgroups"].items():
            key = "recall" if v["measure"] == "recall" else "fpr"
            metrics[f"{key}.{g}"] = v["rate"]
            metrics[f"{key}_ci95_high.{g}"] = v["ci95"][1]
        if ev.baseline:
            metrics |= {f"baseline.{k}": ev.baseline[k]
                        for k in ("precision", "recall", "f0_5", "fpr", "pr_auc")}
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        out = Path(tmp)
        _plots(ev, out)
        with open(out / "threshold_sweep.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(ev.sweep[0]))
            w.writeheader()
            w.writerows(ev.sweep)
        with open(out / "subgroups.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["subgroup", "n", "flagged", "rate", "ci95_low", "ci95_high", "measure"])
            for g, v in s["subgroups"].items():
                w.writerow([g, v["n"], v["flagged"], v["rate"], *v["ci95"], v["measure"]])
        md, page = render_report(ev)
        (out / "report.md").write_text(md)
        (out / "report.html").write_text(page)
        (out / "summary.json").write_text(json.dumps(
            {"summary": s, "extra": ev.extra, "baseline": ev.baseline, "model": m}, indent=2))
        card = model_dir / "model_card.md"
        if card.is_file():
            (out / "model_card.md").write_text(card.read_text())
        mlflow.log_artifacts(str(out))
        _log_onnx(mlflow, model_dir)
        return run.info.run_id


def log_audit(result: Any, tracking_uri: str) -> str:
    """The substance audit as its own run (metrics and a short report; no text)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    exp_id = experiment_id(mlflow, AUDIT_EXPERIMENT, tracking_uri)
    name = f"audit-topic-attacker-{datetime.now(UTC).strftime('%Y%m%d')}"
    with mlflow.start_run(experiment_id=exp_id, run_name=name) as run:
        d = result.to_dict()
        mlflow.set_tags({"evaluation_kind": "substance audit",
                         "target": "risk-factor attacker within 5 points of chance",
                         "target_met": str(abs(result.risk_factor_gap) <= 5.0)})
        mlflow.log_metrics({k: float(v) for k, v in d.items()})
        md = "\n".join([
            "# Substance audit", "",
            "An attacker model (multinomial logistic regression) predicts the topic of real "
            "benign conversations (chitchat-dataset prompts) from two inputs.", "",
            "| input | topic accuracy |", "|---|---|",
            f"| chance (most frequent topic) | {100 * result.chance:.1f}% |",
            f"| risk-factor vector (what this library keeps) | "
            f"{100 * result.risk_factor_accuracy:.1f}% |",
            f"| bag of words (what a content reader keeps) | "
            f"{100 * result.bag_of_words_accuracy:.1f}% |", "",
            f"Risk factors: {result.risk_factor_gap:+.1f} points over chance "
            f"(target: within 5). {result.n_topics} topics, {result.n_train} train and "
            f"{result.n_test} test conversations.", ""])
        mlflow.log_text(md, "report.md")
        return run.info.run_id


def _log_onnx(mlflow: Any, model_dir: Path) -> None:
    """The ONNX model with its signature (risk factors in, score out); no data example."""
    import onnx
    from mlflow.models import infer_signature

    from classifier import FEATURE_NAMES

    example = np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)
    signature = infer_signature(example, np.zeros((1, 2), dtype=np.float32))
    mlflow.onnx.log_model(onnx.load(str(model_dir / "model.onnx")), name="model",
                          signature=signature)

