"""The ``solicitation-classifier`` command.

Subcommands grow with the data flow: ``extract`` (indicators -> state) and ``demo`` (the
main job on embedded defaults). Output is numbers and ids only; message text is never
printed, and a bad record is reported by line and field while the good ones go on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from . import _cli_guard
from ._conversation import Conversation, conversation_to_dict, read_jsonl
from ._progress import progress
from ._state import ConversationState
from .indicators import IndicatorExtractor

SAMPLE = "sample.jsonl"


def sample_path() -> Path:
    """Path of the bundled sample conversations (synthetic, non-explicit)."""
    return Path(str(resources.files("classifier") / "data" / SAMPLE))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def state_summary(state: ConversationState, feature_names: Sequence[str]) -> dict[str, Any]:
    """The numeric summary of one conversation written by ``extract`` (no text)."""
    participants = []
    for pid, p in state.participants.items():
        participants.append({
            "id": pid,
            "messages": p.n_messages,
            "scanned": p.n_scanned,
            "not_scanned": p.n_not_scanned,
            "with_indicators": p.n_with_indicators,
            "indicators": {feature_names[k]: int(c) for k, c in enumerate(p.counts) if c},
            "disclosed_age": None if not p.disclosed_age.n else {
                "n": p.disclosed_age.n, "mean": p.disclosed_age.mean,
                "low": p.disclosed_age.low, "high": p.disclosed_age.high},
            "school_age": None if not p.school_age.n else {
                "n": p.school_age.n, "low": p.school_age.low, "high": p.school_age.high},
        })
    return {"conversation_id": state.conversation_id, "participants": participants,
            "state_bytes": len(state.to_bytes())}


def run_extract(inputs: Sequence[Path], out: TextIO | None, extractor: IndicatorExtractor,
                report: TextIO) -> int:
    """Extract indicators from interchange files; prints a summary; returns the exit code."""
    names = extractor.feature_names()
    categories = [ind.category for ind in extractor.catalogue.indicators]
    n_conv = n_bad = n_msgs = n_scanned = n_not_scanned = n_hit_msgs = 0
    by_category: Counter[str] = Counter()
    start = time.perf_counter()
    for path in inputs:
        total = _count_lines(path)
        for result in progress(read_jsonl(path), label=f"extract {path.name}", total=total):
            if result.error is not None:
                n_bad += 1
                print(f"{path.name}: {result.error}", file=report)
                continue
            conv = result.conversation
            assert conv is not None
            state = ConversationState.from_conversation(conv, extractor)
            n_conv += 1
            for p in state.participants.values():
                n_msgs += p.n_messages
                n_scanned += p.n_scanned
                n_not_scanned += p.n_not_scanned
                n_hit_msgs += p.n_with_indicators
                for k, c in enumerate(p.counts):
                    if c:
                        by_category[categories[k]] += int(c)
            if out is not None:
                out.write(json.dumps(state_summary(state, names)) + "\n")
    elapsed = time.perf_counter() - start
    print(f"catalogue {extractor.catalogue.name} {extractor.catalogue.version} "
          f"({len(names)} indicators, {extractor.catalogue.n_patterns} patterns), "
          f"prefilter engine: {extractor.prefilter.engine}", file=report)
    print(f"{n_conv} conversations read, {n_bad} records rejected; {n_msgs} messages: "
          f"{n_scanned} scanned, {n_not_scanned} not scanned (not text); "
          f"{n_hit_msgs} messages carried at least one indicator", file=report)
    if by_category:
        width = max(len(c) for c in by_category)
        print("indicator matches by category:", file=report)
        for cat in extractor.catalogue.categories:
            if by_category[cat]:
                print(f"  {cat:<{width}}  {by_category[cat]}", file=report)
    print(f"done in {elapsed:.2f} s", file=report)
    return 0 if n_bad == 0 else 2


def run_data(args: argparse.Namespace) -> int:
    """``data synth|benign|pan12|espd``: write interchange JSONL and print a summary."""
    from classifier.evaluation import generate, load_chitchat, load_espd, load_pan12

    errors: list[Any] = []
    extra = ""
    if args.source == "synth":
        convs: Any = progress(generate(args.n, seed=args.seed, split=args.split,
                                       positive_share=args.positive_share, noise=args.noise),
                              label=f"synth {args.split}", total=args.n)
    elif args.source == "benign":
        convs = progress(load_chitchat(args.split, errors=errors), label=f"benign {args.split}")
    elif args.source == "pan12":
        corpus = load_pan12(args.directory)
        errors = corpus.errors
        convs = progress(corpus.conversations, label="pan12", total=len(corpus.conversations))
        lines_path = Path(args.output).with_suffix(".predator_lines.json")
        lines_path.write_text(json.dumps(corpus.predator_lines, sort_keys=True))
        extra = f"; problem-2 line labels in {lines_path}"
    else:
        convs = progress(load_espd(args.file, errors=errors), label="espd")
    subgroups: Counter[str] = Counter()
    n = 0
    with open(args.output, "w", encoding="utf-8") as fh:
        for conv in convs:
            fh.write(json.dumps(conversation_to_dict(conv), ensure_ascii=False) + "\n")
            subgroups[f"{conv.subgroup}"] += 1
            n += 1
    for err in errors:
        print(err, file=sys.stderr)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(subgroups.items()))
    print(f"wrote {n} conversations to {args.output} ({mix}); {len(errors)} records "
          f"rejected{extra}", file=sys.stderr)
    return 0 if not errors else 2


def run_score(src: Path, output: str, model_dir: Path | None, threshold: float | None,
              report: TextIO, *, queue: str | None = None) -> int:
    """``score``: one output line per conversation (DESIGN section 5), and a summary;
    with ``queue``, every flagged conversation becomes a case for human review."""
    from ._model import RiskModel
    from ._scoring import Scorer

    extractor = IndicatorExtractor()
    model = RiskModel.load(model_dir, catalogue_sha256=extractor.catalogue.sha256)
    scorer = Scorer(model, extractor=extractor, threshold=threshold)
    from datetime import UTC, datetime

    from .guard import ScanPolicy

    policy = ScanPolicy()
    guard = None
    if queue:
        from .guard import Guard, Keys, Store

        store = Store(queue)
        store.migrate()
        guard = Guard(store, Keys.from_env())
    counts: Counter[str] = Counter()
    start = time.perf_counter()
    # lines in input order; allowed conversations are scored in batches (one extraction
    # batch and one model call per ~20k messages)
    pending: list[tuple[Conversation | None, dict[str, Any] | None]] = []
    pending_messages = 0

    def flush(fh: TextIO) -> None:
        nonlocal pending_messages
        scored_all = iter(scorer.score_many([c for c, _ in pending if c is not None]))
        for conv, line in pending:
            if conv is not None:
                scored = next(scored_all)
                counts["flagged" if scored.flagged else scored.status] += 1
                if guard is not None and guard.triage(conv, scored, extractor):
                    counts["queued"] += 1
                line = scored.to_dict()
            fh.write(json.dumps(line) + "\n")
        pending.clear()
        pending_messages = 0

    with open(output, "w", encoding="utf-8") as fh:
        for result in progress(read_jsonl(src), label=f"score {src.name}",
                               total=_count_lines(src)):
            if result.error is not None:
                counts["rejected"] += 1
                print(f"{src.name}: {result.error}", file=report)
                continue
            assert result.conversation is not None
            decision = policy.decide(result.conversation, datetime.now(UTC))
            if not decision.allowed:  # before any text is read
                counts["refused"] += 1
                pending.append((None, {"conversation_id": result.conversation.conversation_id,
                                       "status": "refused", "reason": decision.reason}))
                continue
            policy.meter(result.conversation)
            pending.append((result.conversation, None))
            pending_messages += len(result.conversation.messages)
            if pending_messages >= 20_000:
                flush(fh)
        flush(fh)
    print(f"model {model.version}, threshold {scorer.threshold:.6f} "
          f"({model.metadata['threshold_policy']})", file=report)
    total = sum(v for k, v in counts.items() if k != "queued")
    print(f"{total} conversations: {counts['flagged']} flagged for human review, "
          f"{counts['scored']} below the threshold, {counts['refused']} refused by scope, "
          f"{counts['rejected']} records rejected; {time.perf_counter() - start:.2f} s; "
          f"results in {output}", file=report)
    if guard is not None:
        from .guard import record_scan

        record_scan(guard.store, policy)
        print(f"{counts['queued']} cases opened for human review in {queue} "
              f"(solicitation-classifier review list --store {queue} --actor NAME "
              "--role reviewer)", file=report)
    return 0 if not counts["rejected"] else 2


def _print_where(tracking_uri: str, run_id: str, experiment: str,
                 report: str = "report.html (and report.md)") -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    run = mlflow.get_run(run_id)
    print(f"MLflow run {run_id} ({run.info.run_name}) in experiment '{experiment}'\n"
          f"  report: {run.info.artifact_uri}/{report}\n"
          f"  open the runs: pip install mlflow && mlflow ui --backend-store-uri "
          f"{tracking_uri}", file=sys.stderr)


def run_evaluate(data: Sequence[Path], model: Path | None, tracking_uri: str | None,
                 baseline_train: Sequence[Path] | None) -> int:
    """``evaluate``: measure, log one MLflow run, print the headline figures."""
    from classifier.evaluation.harness import (
        EVAL_EXPERIMENT,
        default_tracking_uri,
        evaluate,
        load_labelled,
    )

    uri = tracking_uri or default_tracking_uri()
    train_convs: list[Any] = []
    if baseline_train is not None:
        if baseline_train:
            train_convs = load_labelled(baseline_train)[0]
        else:
            from classifier.evaluation import generate
            train_convs = list(generate(2000, seed=0, split="train"))
    ev = evaluate(data, model_dir=model, tracking_uri=uri, baseline_train=train_convs)
    s = ev.summary
    print(f"recall {s['recall']:.4f}, precision {s['precision']:.4f}, F0.5 {s['f0_5']:.4f}, "
          f"FPR {100 * s['fpr']:.2f}% (95% CI {100 * s['fpr_ci95'][0]:.2f}-"
          f"{100 * s['fpr_ci95'][1]:.2f}%), F_latency {ev.extra['f_latency']:.4f}"
          + (f"; text baseline recall {ev.baseline['recall']:.4f}, FPR "
             f"{100 * ev.baseline['fpr']:.2f}%" if ev.baseline else ""), file=sys.stderr)
    assert ev.run_id is not None
    _print_where(uri, ev.run_id, EVAL_EXPERIMENT)
    return 0 if not ev.rejected else 2


def run_substance_audit(tracking_uri: str | None) -> int:
    """``audit``: the substance audit as its own MLflow run."""
    from classifier.evaluation.audit import load_topics, substance_audit
    from classifier.evaluation.harness import AUDIT_EXPERIMENT, default_tracking_uri, log_audit

    uri = tracking_uri or default_tracking_uri()
    result = substance_audit(*load_topics())
    run_id = log_audit(result, uri)
    print(f"topic attacker accuracy: risk factors {100 * result.risk_factor_accuracy:.1f}%, "
          f"bag of words {100 * result.bag_of_words_accuracy:.1f}%, chance "
          f"{100 * result.chance:.1f}% ({result.n_topics} topics, {result.n_test} test "
          f"conversations); risk factors {result.risk_factor_gap:+.1f} points over chance",
          file=sys.stderr)
    _print_where(uri, run_id, AUDIT_EXPERIMENT, "report.md")
    return 0


def run_compliance(args: argparse.Namespace) -> int:
    """``compliance matrix|dpia``: documents built from the register, tests and runs."""
    from .compliance import check_traceability, load_register, matrix, tagged_tests

    tests = Path(__file__).resolve().parent.parent / "tests"
    register = load_register()
    tags = tagged_tests(tests) if tests.is_dir() else {}
    if args.action == "matrix":
        figures = {}
        if args.tracking_uri:
            from classifier.evaluation.dpia import measured_figures

            figures = measured_figures(args.tracking_uri)
        md, page = matrix(register, tags, figures)
        Path(f"{args.output}.md").write_text(md)
        Path(f"{args.output}.html").write_text(page)
        problems = check_traceability(register, tags)
        print(f"compliance matrix: {len(register)} obligations -> {args.output}.md, "
              f"{args.output}.html; {len(problems)} traceability problems", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 0 if not problems else 1
    from classifier.evaluation.dpia import dpia_annex

    Path(args.output).write_text(dpia_annex(args.model, args.tracking_uri,
                                            tests if tests.is_dir() else None))
    print(f"DPIA annex written to {args.output}", file=sys.stderr)
    return 0


def _demo_master_key() -> None:
    """The demo's master key: $SOLICITATION_MASTER_KEY, else a key file made for the demo."""
    import os

    from .guard import MASTER_KEY_ENV, Keys

    if os.environ.get(MASTER_KEY_ENV):
        return
    path = Path("demo-master.key")
    if not path.exists():
        path.write_text(Keys.generate())
        path.chmod(0o600)
    os.environ[MASTER_KEY_ENV] = path.read_text().strip()
    print(f"(demo only: master key in {path}; for the review commands run "
          f"export {MASTER_KEY_ENV}=$(cat {path}))", file=sys.stderr)


def run_demo_evaluation() -> int:
    """The demo's last step: an evaluation run on embedded defaults (synthetic test data,
    a SQLite tracking store in the working directory)."""
    try:
        import mlflow  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        print("\nevaluation skipped: install the [eval] and [train] extras", file=sys.stderr)
        return 0
    from classifier.evaluation import generate

    data = Path("demo-eval-data.jsonl")
    from ._conversation import write_jsonl

    write_jsonl(generate(600, seed=42, split="test"), data)
    print(f"\nevaluating the shipped model on 600 synthetic held-out conversations ({data}), "
          "with the naive text baseline beside it", file=sys.stderr)
    return run_evaluate([data], None, None, [])


def _open_out(path: str | None) -> TextIO | None:
    if path is None:
        return None
    if path == "-":
        return sys.stdout
    return open(path, "w", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="solicitation-classifier",
        description="Detect possible solicitation of children from key indicators and "
                    "objectively identified risk factors (Reg. (EU) 2021/1232).")
    sub = parser.add_subparsers(dest="command", required=True)
    p_ext = sub.add_parser("extract", help="extract risk indicators from interchange JSONL")
    p_ext.add_argument("inputs", nargs="+", type=Path)
    p_ext.add_argument("-o", "--output", help="write one numeric summary per conversation "
                       "(JSONL; '-' for stdout)")
    p_ext.add_argument("--language", default="en")
    p_ext.add_argument("--prefilter", default="auto",
                       choices=("auto", "hyperscan", "re", "none"))
    p_data = sub.add_parser("data", help="make evaluation data in the interchange format")
    data_sub = p_data.add_subparsers(dest="source", required=True)
    p_synth = data_sub.add_parser("synth", help="synthetic grooming and hard-negative chats")
    p_synth.add_argument("--n", type=int, required=True)
    p_synth.add_argument("--seed", type=int, default=0)
    p_synth.add_argument("--split", choices=("train", "test"), required=True)
    p_synth.add_argument("--positive-share", type=float, default=0.35)
    p_synth.add_argument("--noise", type=float, default=0.3)
    p_synth.add_argument("-o", "--output", required=True)
    p_benign = data_sub.add_parser("benign", help="real benign chat (chitchat-dataset)")
    p_benign.add_argument("--split", choices=("train", "test"), required=True)
    p_benign.add_argument("-o", "--output", required=True)
    p_pan = data_sub.add_parser("pan12", help="convert a PAN12 corpus directory")
    p_pan.add_argument("directory", type=Path)
    p_pan.add_argument("-o", "--output", required=True)
    p_espd = data_sub.add_parser("espd", help="convert an eSPD datapack (JSON)")
    p_espd.add_argument("file", type=Path)
    p_espd.add_argument("-o", "--output", required=True)
    p_train = sub.add_parser("train", help="rebuild the risk model (extras [train], [eval])")
    p_train.add_argument("-o", "--output", default=None,
                         help="model directory (default: the shipped models/)")
    p_train.add_argument("--small", action="store_true",
                         help="a small, fast configuration (for trying things out)")
    p_score = sub.add_parser("score", help="score interchange JSONL with the risk model")
    p_score.add_argument("input", type=Path)
    p_score.add_argument("-o", "--output", required=True)
    p_score.add_argument("--model", type=Path, default=None)
    p_score.add_argument("--threshold", type=float, default=None)
    p_score.add_argument("--queue", default=None, metavar="STORE_URL",
                         help="open a review case for every flagged conversation in this "
                              "guard store (needs $SOLICITATION_MASTER_KEY)")
    p_eval = sub.add_parser("evaluate", help="measure errors and log an MLflow run "
                            "(extras [eval], [train] for the baseline)")
    p_eval.add_argument("--data", nargs="+", type=Path, required=True)
    p_eval.add_argument("--model", type=Path, default=None)
    p_eval.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: sqlite:///mlruns.db here)")
    p_eval.add_argument("--baseline-train", nargs="*", type=Path, default=None,
                        help="train the naive text baseline on these files (no files: "
                             "generated synthetic train data) and report it side by side")
    p_audit = sub.add_parser("substance-audit", help="can the risk factors reveal the "
                             "topic? (extras [eval], [train])")
    p_audit.add_argument("--tracking-uri", default=None)
    _cli_guard.add_parsers(sub)
    p_comp = sub.add_parser("compliance", help="compliance matrix and DPIA annex")
    comp_sub = p_comp.add_subparsers(dest="action", required=True)
    p_matrix = comp_sub.add_parser("matrix", help="obligation -> implementation -> tests")
    p_matrix.add_argument("-o", "--output", required=True,
                          help="path prefix: PREFIX.md and PREFIX.html")
    p_matrix.add_argument("--tracking-uri", default=None,
                          help="add the latest measured figures from these MLflow runs")
    p_dpia = comp_sub.add_parser("dpia", help="the technical annex of a DPIA (Markdown)")
    p_dpia.add_argument("--model", type=Path, default=None)
    p_dpia.add_argument("--tracking-uri", required=True)
    p_dpia.add_argument("-o", "--output", required=True)
    p_demo = sub.add_parser("demo", help="the main job on the bundled sample")
    p_demo.add_argument("-o", "--output", default=None)
    args = parser.parse_args(argv)

    if args.command == "data":
        return run_data(args)
    if args.command == "train":
        from classifier.evaluation.train import TrainConfig, train

        from ._model import default_model_dir

        config = TrainConfig(synth_n=600, val_n=300, test_n=600) if args.small else TrainConfig()
        train(args.output or default_model_dir(), config)
        return 0
    if args.command == "evaluate":
        missing = [p for p in args.data if not p.is_file()]
        if missing:
            parser.error(f"data file not found: {missing[0]}")
        return run_evaluate(args.data, args.model, args.tracking_uri, args.baseline_train)
    if args.command == "compliance":
        return run_compliance(args)
    if args.command in ("review", "report", "complaint", "purge", "audit", "transparency"):
        return _cli_guard.run(args)
    if args.command == "substance-audit":
        return run_substance_audit(args.tracking_uri)
    if args.command == "score":
        if not args.input.is_file():
            parser.error(f"input file not found: {args.input}")
        return run_score(args.input, args.output, args.model, args.threshold, sys.stderr,
                         queue=args.queue)
    if args.command == "extract":
        missing = [p for p in args.inputs if not p.is_file()]
        if missing:
            parser.error(f"input file not found: {missing[0]}")
        inputs = list(args.inputs)
        extractor = IndicatorExtractor(language=args.language, prefilter=args.prefilter)
    else:  # demo
        inputs = [sample_path()]
        print(f"solicitation-classifier demo: extracting risk indicators from the bundled "
              f"sample {inputs[0]}", file=sys.stderr)
        extractor = IndicatorExtractor()
    out = _open_out(args.output)
    try:
        code = run_extract(inputs, out, extractor, sys.stderr)
    finally:
        if out not in (None, sys.stdout):
            out.close()  # type: ignore[union-attr]
    if args.command == "demo":
        scored = (Path(args.output).with_suffix(".scores.jsonl") if args.output
                  else Path("demo-scores.jsonl"))
        print(f"\nscoring the sample with the shipped model -> {scored}, flagged "
              "conversations into the review queue sqlite:///guard.db", file=sys.stderr)
        _demo_master_key()
        code = max(code, run_score(inputs[0], str(scored), None, None, sys.stderr,
                                   queue="sqlite:///guard.db"))
        code = max(code, run_demo_evaluation())
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
