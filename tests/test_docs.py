"""The documentation stands alone, is current, and never sends a user to private modules."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = re.compile(r"\bclassifier\.(_[a-z]\w*)|from classifier\._|import classifier\._")


def _user_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "notebooks").glob("*.ipynb")),
             *sorted((ROOT / "examples").glob("*.py")), ROOT / "evaluation" / "README.md",
             ROOT / "notebooks" / "README.md"]
    return [f for f in files if f.is_file()]


def test_generated_reference_pages_are_current():
    from classifier._docs import errors_page, risk_factors_page

    assert (ROOT / "docs" / "errors.md").read_text() == errors_page(), \
        "run python scripts/update_docs.py"
    assert (ROOT / "docs" / "risk-factors.md").read_text() == risk_factors_page(), \
        "run python scripts/update_docs.py"


def test_user_facing_files_import_nothing_private():
    hits = []
    for path in _user_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if PRIVATE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}")
    assert hits == []


def test_nothing_points_outside_the_repository():
    hits = []
    for path in [*_user_files(), *sorted(ROOT.rglob("*.py"))]:
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "../shared" in text or "DESIGN.md" in text or "DEVELOPERS.md" in text:
            hits.append(str(path.relative_to(ROOT)))
    assert hits == []


def test_every_error_code_is_documented():
    from classifier import Errors

    page = (ROOT / "docs" / "errors.md").read_text()
    assert all(f"`{code}`" in page for code in Errors.codes())
