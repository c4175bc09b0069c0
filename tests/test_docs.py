"""The documentation stands alone, is current, and never sends a user to private modules."""

from __future__ import annotations

import json
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


def test_the_readme_quotes_the_shipped_models_cross_author_figures():
    import json

    from classifier._docs import readme_with_figures

    readme = (ROOT / "README.md").read_text()
    meta = json.loads((ROOT / "models" / "metadata.json").read_text())
    assert readme == readme_with_figures(readme, meta), "run python scripts/update_docs.py"
    # and the table is the model card's
    table = readme.split("scripts/update_docs.py -->", 1)[1].split("cross-author table end")[0]
    card = (ROOT / "models" / "model_card.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows and all(row in card for row in rows)


def test_the_readme_review_workflow_runs_as_written(tmp_path):
    import os
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- review workflow -->", 1)[1].split("```bash\n", 1)[1]
    script = block.split("```", 1)[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("SOLICITATION_TOKEN", "SOLICITATION_MASTER_KEY", "SOLICITATION_MASTER_KEY_FILE",
                 "SOLICITATION_KEY_STORE", "SOLICITATION_AUDIT_KEY_FILE"):
        env.pop(name, None)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for expected in ("claimed", ": confirmed", "written to report.json", "upheld",
                     "audit log intact", "signature valid", "transparency report"):
        assert expected in out, expected
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o600
    summary = json.loads((tmp_path / "transparency.json").read_text())
    assert summary  # the annual figures were written


def test_user_facing_files_import_nothing_private():
    hits = []
    for path in _user_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if PRIVATE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}")
    assert hits == []


def test_docstring_examples_import_nothing_private():
    """The runnable examples are user-facing too: they import only public names."""
    hits = []
    for path in sorted((ROOT / "classifier").rglob("*.py")) + sorted(
            (ROOT / "evaluation").rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            example = line.strip()
            if example.startswith((">>>", "...")) and re.search(
                    r"(from|import) classifier(\.\w+)*\._", example):
                hits.append(f"{path.relative_to(ROOT)}:{n}")
    assert hits == []


def test_nothing_points_outside_the_repository():
    hits = []
    for path in [*_user_files(), *sorted(ROOT.rglob("*.py"))]:
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "../shared" in text or re.search(r"\bDESIGN\b|DEVELOPERS\.md", text):
            hits.append(str(path.relative_to(ROOT)))
    assert hits == []


def test_every_error_code_is_documented():
    from classifier import Errors

    page = (ROOT / "docs" / "errors.md").read_text()
    assert all(f"`{code}`" in page for code in Errors.codes())
