"""The cross-author report: tables computed once, rendered as Markdown, HTML and MLflow.

Computing is apart from rendering (as fairlearn's ``MetricFrame`` beside its plots):
:func:`cross_author_tables` turns fold results into plain tables (title, header, rows,
a note that explains what is surprising), and the renderers only lay them out. An auditor
who opens the MLflow run lands on the headline table in the run's description; every
table is also logged as an MLflow table.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .crossauthor import FoldResult, summary_table

__all__ = ["CROSS_AUTHOR_EXPERIMENT", "Table", "cross_author_tables", "log_cross_author",
           "render_html", "render_markdown"]

CROSS_AUTHOR_EXPERIMENT = "solicitation-risk/cross-author"

STATUS_NOTE = ("status: *development* = its text was read while the catalogue was grown "
               "(figures optimistic); *validation* = its text was never read, aggregates were "
               "seen during development; *sealed* = untouched until this final measurement; "
               "the *generator* wrote the catalogue's own phrase families (its row measures "
               "the catalogue against itself).")


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""

    def columns(self) -> dict[str, list[str]]:
        return {h: [r[i] for r in self.rows] for i, h in enumerate(self.header)}


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _num(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def cross_author_tables(results: Sequence[FoldResult],
                        stability: Mapping[str, Any] | None = None) -> list[Table]:
    """Every table of the report, from fold results (and a factor-stability run)."""
    headline = []
    for row in summary_table(results):
        headline.append((row["author"], row["status"], _num(row["recall"]), _pct(row["fpr"]),
                         f"{row['worst_subgroup'] or ''} {_pct(row['worst_subgroup_fpr'])}".strip(),
                         _num(row["roc_auc"]), _num(row["precision"]),
                         _num(row["subject_accuracy"]), _pct(row["account_error_rate"]),
                         _num(row["f_latency"]), _pct(row["real_benign_fpr"])))
    tables = [Table(
        "Leave-one-author-out: each author measured by a model that never saw it",
        ("author", "status", "recall", "hard-negative FPR", "worst subgroup", "ROC-AUC",
         "precision", "subject accuracy", "B3/A3", "F_latency", "real benign FPR"),
        tuple(headline),
        STATUS_NOTE + " B3/A3 is the annual report's error rate: of the accounts flagged, the "
        "share review would clear; it counts flags on negatives and flags that name the "
        "child instead of the adult, so it can exceed the hard-negative FPR even when that "
        "is small (few positives per author, every false flag weighs).")]
    sub_rows = []
    for r in results:
        for g, v in r.metrics["subgroups"].items():
            sub_rows.append((r.author, g, str(v["n"]), str(v["flagged"]), _pct(v["fpr"]),
                             f"{_pct(v['ci95'][0])} - {_pct(v['ci95'][1])}"))
        rb = r.metrics.get("real_benign")
        if rb:
            sub_rows.append((r.author, "real benign chat (test half)", str(rb["n"]),
                             str(rb["flagged"]), _pct(rb["fpr"]),
                             f"{_pct(rb['ci95'][0])} - {_pct(rb['ci95'][1])}"))
    tables.append(Table("False-positive rate per subgroup (Wilson 95% intervals)",
                        ("author", "subgroup", "n", "flagged", "FPR", "95% CI"),
                        tuple(sub_rows),
                        "About 30 conversations per subgroup and author: one false flag is "
                        "3.2 points, and the intervals are wide."))
    pace_rows = [(r.author, p, _num(v)) for r in results
                 for p, v in (r.metrics.get("messages_to_flag_by_pace") or {}).items()]
    if pace_rows:
        tables.append(Table("Median messages before the flag, by pace",
                            ("author", "pace", "median messages"), tuple(pace_rows)))
    if any(r.coverage for r in results):
        labels = sorted({lab for r in results for lab in (r.coverage.get("labels") or {})})
        cov_rows = []
        for r in results:
            c = r.coverage.get("labels") or {}
            cov_rows.append((r.author, r.status, _pct(r.coverage.get("overall")),
                             *(f"{_pct(c[lab]['coverage'])} / {_pct(c[lab]['benign_hit_rate'])}"
                               if lab in c else "-" for lab in labels)))
        tables.append(Table(
            "Wording coverage of annotated risky turns (held-out author; recognisers trained "
            "without it): recognised / benign-turn hit rate",
            ("author", "status", "all", *labels), tuple(cov_rows),
            "A turn counts as recognised when it raises an indicator of its category (an age "
            "disclosure also when it yields age evidence). The benign-turn hit rate is the "
            "share of the author's hard-negative turns that raise that category."))
    if any(r.importance for r in results):
        names = sorted({n for r in results for n in r.importance},
                       key=lambda n: -sum(r.importance.get(n, 0.0) for r in results))
        imp_rows = [(n, *(_num(r.importance.get(n)) for r in results)) for n in names[:25]]
        tables.append(Table("Factor importance per held-out author (ROC-AUC drop when the "
                            "factor is shuffled)", ("factor", *(r.author for r in results)),
                            tuple(imp_rows)))
    if any(r.baseline for r in results):
        tables.append(Table(
            "Beside the model: the naive text baseline (TF-IDF + logistic regression; reads "
            "substance; never saved)",
            ("author", "model ROC-AUC", "baseline ROC-AUC", "model recall",
             "baseline recall at the model's FPR"),
            tuple((r.author, _num(r.metrics["roc_auc"]), _num(r.baseline.get("roc_auc")),
                   _num(r.metrics["recall"]), _num(r.baseline.get("recall_at_model_fpr")))
                  for r in results),
            "The baseline is trained on the same authors and scored on the same held-out "
            "author; its recall is read at the false-positive rate the model reached there."))
    if any(r.peer for r in results):
        tables.append(Table(
            "Beside the model: the embedding nearest-neighbour peer (all-MiniLM-L6-v2 "
            "sentence embeddings, 10 nearest labelled turns, per-sender aggregation, as Roblox "
            "Sentinel works; reads substance; never saved)",
            ("author", "model ROC-AUC", "peer ROC-AUC", "model recall",
             "peer recall at the model's FPR", "peer worst subgroup at that FPR"),
            tuple((r.author, _num(r.metrics["roc_auc"]), _num(r.peer.get("roc_auc")),
                   _num(r.metrics["recall"]), _num(r.peer.get("recall_at_model_fpr")),
                   f"{r.peer.get('worst_subgroup', '-')} "
                   f"{_pct(r.peer.get('worst_subgroup_fpr', math.nan))}")
                  for r in results if r.peer),
            "The peer's index holds the same training authors' annotated risky turns and "
            "their benign turns and real benign chat; it is scored on the same held-out "
            "conversations the model scanned, its recall and subgroups read at the model's "
            "false-positive rate there. It ranks wording it has neighbours for and cannot "
            "tell two teenagers from an adult and a child."))
    if stability:
        tables.append(Table(
            "Factor stability: ROC-AUC change when a group of factors is removed",
            ("factors removed", "in-author (random 30% of training authors)",
             "cross-author (held-out authors, mean)"),
            tuple((name, _num(v.get("in_author_mean")), _num(v.get("cross_author_mean")))
                  for name, v in stability.items()),
            "Negative: the factors help. A group that helps in-author (negative in the first "
            "column) but not across authors (zero or positive in the second) is a shortcut of "
            "the training authors' wording; such factors were removed (reply latency, time of "
            "day, who started, who asks whose age)."))
    return tables


def render_markdown(tables: Sequence[Table], *, title: str, run_id: str | None = None,
                    created: datetime | None = None) -> str:
    created = created or datetime.now(UTC)
    lines = [f"# {title}", "", f"Created {created.isoformat(timespec='seconds')}"
             + (f"; MLflow run `{run_id}`." if run_id else "."), ""]
    for t in tables:
        lines += [f"## {t.title}", "", "| " + " | ".join(t.header) + " |",
                  "|" + "---|" * len(t.header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in t.rows]
        if t.note:
            lines += ["", t.note]
        lines.append("")
    return "\n".join(lines)


def render_html(tables: Sequence[Table], *, title: str, run_id: str | None = None,
                created: datetime | None = None) -> str:
    created = created or datetime.now(UTC)
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>Created {html.escape(created.isoformat(timespec='seconds'))}"
            + (f"; MLflow run <code>{html.escape(run_id)}</code>" if run_id else "") + "</p>"]
    for t in tables:
        body.append(f"<h2>{html.escape(t.title)}</h2><table><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r)
                              + "</tr>" for r in t.rows) + "</table>")
        if t.note:
            body.append(f"<p class='note'>{html.escape(t.note)}</p>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title)
            + "</title><style>body{font-family:sans-serif;max-width:72em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em}"
            ".note{color:#444;max-width:60em}</style></head><body>" + "".join(body)
            + "</body></html>")


def log_cross_author(results: Sequence[FoldResult], tracking_uri: str, *,
                     tags: Mapping[str, str] | None = None,
                     stability: Mapping[str, Any] | None = None,
                     model_card: str | None = None) -> str:
    """One MLflow run an auditor can read: the headline in its description, every table
    as an MLflow table, per-author metrics, report.md and report.html."""
    import tempfile
    from pathlib import Path

    import mlflow

    from .harness import experiment_id

    mlflow.set_tracking_uri(tracking_uri)
    exp_id = experiment_id(mlflow, CROSS_AUTHOR_EXPERIMENT, tracking_uri)
    tables = cross_author_tables(results, stability)
    title = "Cross-author evaluation (leave one author out)"
    name = f"cross-author-{datetime.now(UTC).strftime('%Y%m%d-%H%M')}"
    with mlflow.start_run(experiment_id=exp_id, run_name=name) as run:
        created = datetime.now(UTC)
        description = render_markdown(tables[:1], title=title, run_id=run.info.run_id,
                                      created=created)
        mlflow.set_tags({"evaluation_kind": "leave-one-author-out",
                         "mlflow.note.content": description, **dict(tags or {})})
        metrics = {}
        for r in results:
            for key in ("recall", "fpr", "worst_subgroup_fpr", "roc_auc", "precision",
                        "subject_accuracy", "account_error_rate", "f_latency"):
                v = r.metrics.get(key)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    metrics[f"cross_author.{r.author}.{key}"] = float(v)
        for row in summary_table(results)[-2:]:
            for key, v in row.items():
                if isinstance(v, float) and math.isfinite(v):
                    metrics[f"cross_author.{row['author']}.{key}"] = v
        mlflow.log_metrics(metrics)
        for i, t in enumerate(tables):
            mlflow.log_table(t.columns(), artifact_file=f"tables/{i:02d}.json")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "report.md").write_text(render_markdown(tables, title=title,
                                                           run_id=run.info.run_id,
                                                           created=created))
            (out / "report.html").write_text(render_html(tables, title=title,
                                                         run_id=run.info.run_id,
                                                         created=created))
            if model_card:
                (out / "model_card.md").write_text(model_card)
            mlflow.log_artifacts(str(out))
        return run.info.run_id
