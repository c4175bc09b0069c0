"""Regenerate the reference pages of docs/ that are derived from code.

- docs/errors.md: every coded error, from classifier.Errors (written once in the code);
- docs/risk-factors.md: every risk factor with its description, from classifier.RISK_FACTORS;
- README.md: the cross-author table, from the shipped model's models/metadata.json.

tests/test_docs.py fails when a page differs from what this script writes.
"""

import json
from pathlib import Path

from classifier._docs import errors_page, readme_with_figures, risk_factors_page

root = Path(__file__).resolve().parent.parent
for name, text in (("errors.md", errors_page()), ("risk-factors.md", risk_factors_page())):
    (root / "docs" / name).write_text(text, encoding="utf-8")
    print(f"docs/{name}")
readme = root / "README.md"
meta = json.loads((root / "models" / "metadata.json").read_text(encoding="utf-8"))
readme.write_text(readme_with_figures(readme.read_text(encoding="utf-8"), meta), encoding="utf-8")
print("README.md (cross-author table)")
