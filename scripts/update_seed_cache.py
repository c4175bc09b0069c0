"""Rebuild the package's seed cache (classifier/data/seed/): the compiled form of every
bundled catalogue and its Hyperscan database, for the versions installed here.

    python scripts/update_seed_cache.py

Run it after a catalogue changes (tests/test_packaging.py fails when the seed is stale
for the installed versions). The entries are what the user's cache would hold; see
classifier/_cache.py.
"""

import os
import shutil
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
seed = root / "classifier" / "data" / "seed"
with tempfile.TemporaryDirectory() as tmp:
    os.environ["SOLICITATION_CACHE_DIR"] = tmp
    from classifier.indicators import IndicatorExtractor, available_languages

    os.makedirs(seed, exist_ok=True)
    for old in seed.iterdir():
        old.unlink()
    # the seed is not read while it is rebuilt: the package's own entries are gone
    for language in available_languages():
        IndicatorExtractor(language=language)
    for entry in sorted(Path(tmp).iterdir()):
        if not entry.name.startswith("."):
            shutil.copyfile(entry, seed / entry.name)
            print(f"classifier/data/seed/{entry.name} ({entry.stat().st_size:,} bytes)")
