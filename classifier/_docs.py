"""Reference pages derived from the code (``docs/errors.md``, ``docs/risk-factors.md``).

Computing them here, not by hand, keeps the documentation and the code from drifting
apart; ``scripts/update_docs.py`` writes them and a test checks they are current.
"""

from __future__ import annotations

from ._errors import Errors
from ._features import (
    CONSTANTS,
    FACTOR_VERSION,
    MONOTONE_DECREASING,
    MONOTONE_INCREASING,
    PEER_GATE,
    RISK_FACTORS,
)

__all__ = ["errors_page", "readme_with_figures", "risk_factors_page"]

README_TABLE_BEGIN = ("<!-- cross-author table: generated from models/metadata.json by "
                      "scripts/update_docs.py -->")
README_TABLE_END = "<!-- cross-author table end -->"

_FAMILIES = {"E0": "Arguments and configuration", "E1": "The indicator catalogue",
             "E2": "Input records (JSON Lines, message rows, tables)",
             "E3": "Conversation state", "M0": "Risk models", "G0": "Guard: keys",
             "G1": "Guard: store, review, redress", "C0": "Command line",
             "W0": "Review console"}


def errors_page() -> str:
    """Every coded error, grouped by family."""
    lines = ["# Error codes", "",
             "Every error the library raises on purpose is a `classifier.ClassifierError` "
             "whose message starts with its code. The code is the same in Python, on the "
             "command line (one line, exit code 1) and in rejected-record reports (exit "
             "code 3). No message carries a value taken from the input (text, ids, keys): "
             "records are named by line or row and field.", "",
             "This page is generated from `classifier/_errors.py` "
             "(`python scripts/update_docs.py`).", ""]
    current = None
    for code, template in Errors.codes().items():
        family = code[:2]
        if family != current:
            current = family
            lines += ["", f"## {_FAMILIES.get(family, family)}", "", "| code | message |",
                      "|---|---|"]
        message = template[len(code) + 3:].replace("|", "\\|")
        lines.append(f"| `{code}` | {message} |")
    return "\n".join(lines) + "\n"


def risk_factors_page() -> str:
    """The closed risk-factor schema, factor by factor."""
    lines = [f"# Risk factors (version {FACTOR_VERSION})", "",
             "The model sees only these numbers, computed for every ordered pair of "
             "participants (A as the possible adult, B as the possible minor) from the "
             "conversation's numeric state; the riskiest pair decides and A is the subject. "
             "A model records the factor version it was trained with and refuses to load "
             "against another (M006).", "",
             "| # | factor | monotone | meaning |", "|---:|---|---|---|"]
    for i, (name, text) in enumerate(RISK_FACTORS, start=1):
        mono = ("increasing" if name in MONOTONE_INCREASING else
                "decreasing" if name in MONOTONE_DECREASING else "")
        lines.append(f"| {i} | `{name}` | {mono} | {text} |")
    lines += ["", "## Gates", "", PEER_GATE + ".", "", "## Constants", "",
              "| constant | value |", "|---|---|"]
    lines += [f"| `{k}` | `{v}` |" for k, v in CONSTANTS.items()]
    lines += ["", "In `assurance_weight`, the key `'None'` is a participant without "
              "`age_assurance` (the field left out or null)."]
    return "\n".join(lines) + "\n"


def readme_with_figures(readme: str, metadata: dict) -> str:
    """``readme`` with its cross-author table rewritten from a model's ``metadata`` (the
    model card's own table), so that the README never quotes figures of another build."""
    from .evaluation.train import cross_author_table

    begin = readme.index(README_TABLE_BEGIN) + len(README_TABLE_BEGIN)
    end = readme.index(README_TABLE_END)
    table = "\n".join(cross_author_table(metadata))
    return f"{readme[:begin]}\n{table}\n{readme[end:]}"
