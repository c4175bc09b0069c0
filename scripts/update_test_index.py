"""Regenerate classifier/compliance/data/test_index.json from the tests' obligation tags.

The index ships in the wheel, so that `solicitation-classifier compliance matrix` can name
the tests that prove each obligation where no tests/ folder exists.
"""

import json
from pathlib import Path

from classifier.compliance import TEST_INDEX, tagged_tests

root = Path(__file__).resolve().parent.parent
index = tagged_tests(root / "tests")
TEST_INDEX.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
print(f"{TEST_INDEX}: {sum(len(v) for v in index.values())} tests for {len(index)} obligations")
