"""The evaluation harness: hand-computed metrics, a real SQLite MLflow store read back
through the client, the canary scan, and the substance audit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from classifier.evaluation import generate
from classifier.evaluation.metrics import (
    account_error_rate,
    classification_summary,
    f_latency,
    latency_penalty,
    threshold_sweep,
    wilson_interval,
)

from classifier import Conversation, Message, Participant, write_jsonl

pytestmark = pytest.mark.obligation("art3-1-e", "art3-1-b")

mlflow = pytest.importorskip("mlflow")
CANARY = "zzcanary4471qq"


def test_wilson_interval_by_hand():
    # p = 0.05, n = 100, z = 1.96: centre 0.0664, half-width 0.0452
    lo, hi = wilson_interval(5, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.0215, 0.1118)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_f_latency_by_hand():
    p = math.log(3) / 89
    assert latency_penalty(1) == 0.0
    assert latency_penalty(90) == pytest.approx(0.5)  # -1 + 2/(1+1/3)
    expected = 0.8 * (1 - (-1 + 2 / (1 + math.exp(-p * 9))))  # median k = 10
    assert f_latency(0.8, [5, 10, 40]) == pytest.approx(expected)


def test_classification_summary_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1])
    labels = np.array([1, 1, 1, 1, 0, 0])
    groups = ["grooming"] * 4 + ["teen_peers", "workplace"]
    s = classification_summary(scores, labels, groups, 0.5)
    assert (s["tp"], s["fp"], s["fn"]) == (3, 1, 1)
    assert s["precision"] == 0.75 and s["recall"] == 0.75 and s["fpr"] == 0.5
    assert s["f0_5"] == pytest.approx(0.75)
    assert s["subgroups"]["teen_peers"]["rate"] == 1.0
    assert s["subgroups"]["grooming"]["measure"] == "recall"
    sweep = threshold_sweep(scores, labels, [0.5, 0.95])
    assert sweep[0]["recall"] == 0.75 and sweep[1]["recall"] == 0.0
    for row in sweep:  # every rate comes with the interval of the few it rests on
        assert row["recall_low"] <= row["recall"] <= row["recall_high"]
        assert row["fpr_low"] <= row["fpr"] <= row["fpr_high"]
        assert (row["recall_low"], row["recall_high"]) == wilson_interval(
            round(row["recall"] * row["n_positive"]), row["n_positive"])
    assert sweep[1]["fpr_high"] > 0.3  # two negatives, none flagged: not a rate of 0


def test_account_error_rate_counts_accounts_not_flags():
    assert account_error_rate([]) == (0.0, 0, 0)
    assert account_error_rate([("a", False), ("a", False)]) == (1.0, 1, 1)


def _canary_data(path: Path) -> None:
    convs = list(generate(120, seed=9, split="test"))
    convs.append(Conversation(
        "canary-conv-77", (Participant("canary-user-a", 40), Participant("canary-user-b", 12)),
        tuple(Message("canary-user-a" if i % 2 == 0 else "canary-user-b",
                      convs[0].messages[0].ts, f"{text} {CANARY}")
              for i, text in enumerate(["how old r u", "im 12", "are your parents home", "no",
                                        "dont tell anyone", "ok", "send me a pic", "ok"])),
        label=1, subgroup="grooming", offender="canary-user-a"))
    write_jsonl(convs, path)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from classifier.evaluation.harness import evaluate

    tmp = tmp_path_factory.mktemp("eval")
    data = tmp / "heldout.jsonl"
    _canary_data(data)
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    ev = evaluate([data], tracking_uri=uri,
                  baseline_train=list(generate(200, seed=1, split="train")))
    return tmp, uri, ev


def test_run_is_readable_through_the_mlflow_client(evaluated):
    _, uri, ev = evaluated
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(ev.run_id)
    assert run.info.run_name.startswith(f"eval-{ev.model['model_version']}-heldout-")
    tags = run.data.tags
    for key in ("model_version", "model_sha256", "catalogue_version", "catalogue_sha256",
                "dataset_sha256", "evaluation_kind", "threshold_policy"):
        assert tags[key], key
    metrics = run.data.metrics
    assert metrics["recall"] == pytest.approx(ev.summary["recall"])
    assert metrics["fpr"] == pytest.approx(ev.summary["fpr"])
    assert "fpr.teen_peers" in metrics and "recall.grooming" in metrics
    assert "baseline.fpr" in metrics and "pr_auc" in metrics and "f_latency" in metrics
    names = {a.path for a in client.list_artifacts(ev.run_id)}
    assert {"report.md", "report.html", "confusion_matrix.png", "pr_curve.png",
            "calibration.png", "subgroup_fpr.png", "threshold_sweep.csv", "subgroups.csv",
            "model_card.md"} <= names
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "solicitation-risk/evaluation"


def test_no_text_ids_or_rows_leave_the_evaluation(evaluated):
    tmp, _, _ = evaluated
    forbidden = [CANARY.encode(), b"canary-conv-77", b"canary-user-a", b"synth-test-9-"]
    files = [p for p in tmp.rglob("*") if p.is_file() and p.name != "heldout.jsonl"]
    assert any(p.suffix == ".db" for p in files) and any(p.name == "report.md" for p in files)
    for p in files:
        blob = p.read_bytes()
        for needle in forbidden:
            assert needle not in blob, (p.name, needle)


def test_report_has_rates_subgroups_baseline_and_limits(evaluated):
    from classifier.evaluation.harness import render_report

    _, _, ev = evaluated
    md, page = render_report(ev)
    for section in ("## Error rates", "## Subgroups", "## Naive text baseline", "## Limits"):
        assert section in md
    assert "95% CI" in md and "<table>" in page and "teen_peers" in page


def test_substance_audit_on_a_small_topic_set():
    pytest.importorskip("sklearn")
    from classifier.evaluation.audit import load_topics, substance_audit

    rng = np.random.default_rng(0)
    topics = {"pets": ["my dog", "the cat", "a puppy"], "food": ["pizza", "pasta", "tacos"],
              "travel": ["a flight", "the beach", "a hotel"]}
    dataset = {}
    for i in range(240):
        prompt = list(topics)[i % 3]
        words = topics[prompt]
        dataset[f"t{i}"] = {"prompt": f"talk about {prompt}", "messages": [
            [{"text": f"i like {words[rng.integers(3)]}", "sender": "x",
              "timestamp": "2018-05-02T19:38:15Z"}],
            [{"text": f"me too, {words[rng.integers(3)]} is great", "sender": "y",
              "timestamp": "2018-05-02T19:39:15Z"}]]}
    convs, labels, splits = load_topics(dataset)
    result = substance_audit(convs, labels, splits)
    assert result.n_topics == 3 and result.n_train + result.n_test == 240
    assert result.bag_of_words_accuracy > 0.9
    assert abs(result.risk_factor_gap) < 15  # the risk factors carry no topic
    assert json.dumps(result.to_dict())


def test_cli_evaluate_prints_where_the_report_is(tmp_path, capsys):
    from classifier._cli import main

    data = tmp_path / "d.jsonl"
    write_jsonl(generate(60, seed=3, split="test"), data)
    assert main(["evaluate", "--data", str(data), "--tracking-uri",
                 f"sqlite:///{tmp_path / 'm.db'}"]) == 0
    err = capsys.readouterr().err
    assert "report.html" in err and "mlflow ui --backend-store-uri" in err


def test_the_shipped_models_authors_are_those_it_lists_in_registry_order():
    """train --as-shipped rebuilds on exactly the authors in models/metadata.json, although
    other authors have joined the registry since (the sealed ones, at least)."""
    from classifier.evaluation.authors import authors
    from classifier.evaluation.train import shipped_authors

    meta = json.loads((Path(__file__).resolve().parents[1] / "models" / "metadata.json")
                      .read_text(encoding="utf-8"))
    chosen = shipped_authors(meta)
    assert set(chosen) == set(meta["authors"]) and len(chosen) == len(meta["authors"])
    order = [a.id for a in authors(include_sealed=True)]
    assert list(chosen) == sorted(chosen, key=order.index)
    sealed = [a.id for a in authors(include_sealed=True) if a.status == "sealed"]
    assert sealed and not set(sealed) & set(chosen) and set(chosen) < set(order)


def test_the_late_turn_measurement_reproduces_recall_as_written_and_dilutes_with_a_prelude():
    """``scripts/measure_late_turn.py``: K = 0 is the author's recall as written (the same
    as scoring the file); a prelude of ordinary chat can only be measured, not hidden."""
    import subprocess
    import sys
    from pathlib import Path

    from classifier.evaluation.authors import authors, load_author

    from classifier import Scorer

    pytest.importorskip("chitchat_dataset")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(root / "scripts" / "measure_late_turn.py"),
                           "a04_kids_apps", "--prelude", "0", "100"],
                          capture_output=True, text=True, check=True)
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [r[:2] for r in rows] == [["a04_kids_apps", "0"], ["a04_kids_apps", "100"]]
    convs = load_author(next(a for a in authors() if a.id == "a04_kids_apps"))
    results = [(c, r) for c, r in zip(convs, Scorer().score_batch(convs), strict=True)
               if r.status == "scored" and c.label == 1]
    recall = sum(r.flagged for _, r in results) / len(results)
    assert float(rows[0][2]) == pytest.approx(recall, abs=5e-4)
    assert float(rows[1][2]) < float(rows[0][2])  # the dilution the model card names
