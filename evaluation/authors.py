"""Independent authors: corpora written by people who never saw the catalogue or the
generator, and the generator itself as one author among them.

Each author's folder under ``data/authors/<author>/`` holds ``data.jsonl`` (the
interchange format with evaluation-only annotations) and ``card.md`` (the brief the author
was given, how they wrote it, the composition, the content check). ``data/authors/
authors.json`` records each author's **status**, which says how far the project's own
development may have adapted to that author's wording:

- ``development``: its text was read while the catalogue was grown (figures measured on
  it are optimistic and labelled so);
- ``validation``: its text was never read; only aggregate figures were seen during
  development (model and catalogue choices may have been influenced by those aggregates);
- ``sealed``: nobody looked at it, not even its aggregates, until the final measurement.

The generator (``generator``) is the author of the catalogue and of the synthetic phrase
families: every figure on its data measures the catalogue against itself.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from classifier import Conversation, read_jsonl

from .synth import generate

__all__ = ["AUTHORS_DIR", "GENERATOR", "HARD_NEGATIVE_SUBGROUPS", "STATUSES", "Author",
           "authors", "composition", "load_author", "turn_category"]

AUTHORS_DIR = Path(__file__).parent / "data" / "authors"
GENERATOR = "generator"
STATUSES = ("development", "validation", "sealed")
# the hard-negative subgroups every independent author writes (at least 30 each)
HARD_NEGATIVE_SUBGROUPS = ("adult_dating", "teen_peers", "parent_child", "relatives",
                           "coach_teacher", "helpline_protected", "helpline_unprotected",
                           "gaming", "workplace")
# the generator's older names for the same subgroups
_GENERATOR_SUBGROUPS = {"coach_student": "coach_teacher", "gaming_peers": "gaming"}
# annotated turn labels (given to the authors) -> catalogue categories that recognise them
TURN_CATEGORIES: dict[str, tuple[str, ...]] = {
    "age_question": ("age_question",),
    "age_disclosure": ("age_disclosure", "school_grade"),
    "flattery": ("flattery",),
    "trust": ("trust",),
    "isolation": ("isolation",),
    "secrecy": ("secrecy",),
    "supervision_check": ("supervision_check",),
    "platform_move": ("platform_move",),
    "gift": ("gift",),
    "photo_request": ("photo_request",),
    "video_request": ("video_request",),
    "meeting_request": ("meeting_request",),
}


@dataclass(frozen=True)
class Author:
    """One author of evaluation data."""

    id: str
    status: str
    register: str
    note: str = ""

    @property
    def path(self) -> Path | None:
        return None if self.id == GENERATOR else AUTHORS_DIR / self.id / "data.jsonl"


def turn_category(label: str) -> tuple[str, ...]:
    """The catalogue categories that should recognise a turn annotated ``label``."""
    return TURN_CATEGORIES.get(label, ())


@lru_cache(maxsize=1)
def _registry(directory: str) -> tuple[Author, ...]:
    raw = json.loads((Path(directory) / "authors.json").read_text(encoding="utf-8"))
    return tuple(Author(a["id"], a["status"], a["register"], a.get("note", ""))
                 for a in raw["authors"])


def authors(*, include_sealed: bool = False, directory: str | Path = AUTHORS_DIR,
            ) -> tuple[Author, ...]:
    """The registered authors (sealed ones only when asked for: the final measurement)."""
    return tuple(a for a in _registry(str(directory))
                 if include_sealed or a.status != "sealed")


def _canonical(conv: Conversation) -> Conversation:
    subgroup = _GENERATOR_SUBGROUPS.get(conv.subgroup or "", conv.subgroup)
    return conv if subgroup == conv.subgroup else replace(conv, subgroup=subgroup)


def load_author(author: str | Author, *, generator_n: int = 1200,
                directory: str | Path = AUTHORS_DIR) -> list[Conversation]:
    """An author's conversations (the generator: ``generator_n`` of its test families).

    Raises
    ------
    classifier.RecordError
        If a record does not validate (an author's file is part of the release).
    """
    author_id = author.id if isinstance(author, Author) else author
    if author_id == GENERATOR:
        return [_canonical(c) for c in generate(generator_n, seed=101, split="test")]
    out = []
    for result in read_jsonl(Path(directory) / author_id / "data.jsonl"):
        if result.error is not None:
            raise result.error
        out.append(_canonical(result.conversation))  # type: ignore[arg-type]
    return out


def composition(convs: Iterable[Conversation]) -> dict[str, Any]:
    """Counts per subgroup and, for positives, per annotated age mode, pace and opening."""
    convs = list(convs)
    positives = [c for c in convs if c.label == 1]

    def notes(key: str) -> dict[str, int]:
        return dict(Counter(str((c.annotations or {}).get(key, "unknown")) for c in positives))

    return {
        "conversations": len(convs), "messages": sum(len(c.messages) for c in convs),
        "subgroups": dict(Counter(c.subgroup or "unknown" for c in convs)),
        "positives": {"age_mode": notes("age_mode"), "pace": notes("pace"),
                      "opening": notes("opening"),
                      "group": sum(len(c.participants) > 2 for c in positives)},
        "group_conversations": sum(len(c.participants) > 2 for c in convs),
        "annotated_turns": dict(Counter(
            (m.annotations or {}).get("stage") for c in convs for m in c.messages
            if (m.annotations or {}).get("stage"))),
    }


def composition_table(comp: dict[str, Any]) -> str:
    """The composition as Markdown (for a corpus card)."""
    lines = ["| subgroup | conversations |", "|---|---:|"]
    lines += [f"| {g} | {n} |" for g, n in sorted(comp["subgroups"].items())]
    lines += ["", f"{comp['conversations']} conversations, {comp['messages']} messages, "
              f"{comp['group_conversations']} with three or more participants.", "",
              "| positives by | counts |", "|---|---|"]
    for key in ("age_mode", "pace", "opening"):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(comp["positives"][key].items()))
        lines.append(f"| {key} | {counts} |")
    lines.append(f"| group | {comp['positives']['group']} |")
    lines += ["", "| annotated risky turns | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(comp["annotated_turns"].items())]
    return "\n".join(lines)


def check_minimums(comp: dict[str, Any], *, positives: int = 120, per_subgroup: int = 30,
                   subgroups: Sequence[str] = HARD_NEGATIVE_SUBGROUPS) -> list[str]:
    """What an independent author's set lacks against the required composition."""
    problems = []
    if comp["subgroups"].get("grooming", 0) < positives:
        problems.append(f"grooming: {comp['subgroups'].get('grooming', 0)} < {positives}")
    for g in subgroups:
        if comp["subgroups"].get(g, 0) < per_subgroup:
            problems.append(f"{g}: {comp['subgroups'].get(g, 0)} < {per_subgroup}")
    return problems
