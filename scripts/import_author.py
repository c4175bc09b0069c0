"""Import an independent author's corpus: copy data.jsonl, write the corpus card.

    python scripts/import_author.py /path/to/author/folder AUTHOR_ID

The author's folder holds BRIEF.md (the brief they were given), method.md (how they wrote
it) and data.jsonl. The card records the brief verbatim, the author's method notes, the
composition computed here, and the content check (the author's own, and the project's
test in tests/test_authors.py). Nothing here reads the conversations' text beyond
validating the records and counting.
"""

import shutil
import sys
from pathlib import Path

from classifier.evaluation.authors import (
    AUTHORS_DIR,
    check_minimums,
    composition,
    composition_table,
    load_author,
)
from classifier.evaluation.content import content_problems

source, author_id = Path(sys.argv[1]), sys.argv[2]
target = AUTHORS_DIR / author_id
target.mkdir(parents=True, exist_ok=True)
shutil.copyfile(source / "data.jsonl", target / "data.jsonl")
convs = load_author(author_id)
comp = composition(convs)
problems = check_minimums(comp)
hits = content_problems(convs)
card = [f"# Corpus card: {author_id}", "",
        "Written by an independent author (a helper working alone: it never saw the indicator "
        "catalogue, the generator, the project's code or any other author's data). It was told "
        "not to read the repository. Its working files stay outside the repository; this folder "
        "holds the data and this card.", "",
        "## Composition (computed at import)", "", composition_table(comp), "",
        "Requirements (120+ positives, 30+ per hard-negative subgroup): "
        + ("met." if not problems else "NOT met: " + "; ".join(problems)), "",
        "## Content check", "",
        f"The project's content-rule scan (tests/test_authors.py) at import: {len(hits)} hits. "
        "The author's own check is in its method notes below.", "",
        "## The brief given to the author (verbatim)", "",
        (source / "BRIEF.md").read_text(encoding="utf-8").replace("\n#", "\n###"), "",
        "## How it was written (the author's method notes, verbatim)", "",
        (source / "method.md").read_text(encoding="utf-8").replace("\n#", "\n###"), ""]
(target / "card.md").write_text("\n".join(card), encoding="utf-8")
print(f"{author_id}: {comp['conversations']} conversations; requirements "
      f"{problems or 'met'}; content hits {len(hits)}")
