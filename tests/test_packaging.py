"""The wheel carries everything the runtime loads, under the one import package.

The wheel is built from a copy of the source tree in a temporary directory (so the build
writes nothing into the checkout) and its file list is compared with the source: every
module and data file of ``classifier/``, ``models/`` and ``evaluation/`` (installed as
``classifier.models`` and ``classifier.evaluation``) must be in it, nothing may install at
the top level but ``classifier``, and the authors' conversations stay out of it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> where it installs
PACKAGE_DIRS = {"classifier": "classifier", "models": "classifier/models",
                "evaluation": "classifier/evaluation"}
# the independent authors' corpora are for evaluation from the repository, not the runtime
AUTHORS_DATA = re.compile(r"(classifier/)?evaluation/data/authors/a\d+_")


def _source_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]


def _expected(files: list[str]) -> set[str]:
    expected = set()
    for path in files:
        top, _, rest = path.partition("/")
        if top not in PACKAGE_DIRS or not rest or AUTHORS_DATA.match(path):
            continue
        if "__pycache__" in path or path.endswith((".pyc", ".ipynb")):
            continue
        expected.add(f"{PACKAGE_DIRS[top]}/{rest}")
    return expected


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    files = _source_files()
    src = tmp_path_factory.mktemp("src")
    for path in files:
        target = src / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / path).read_bytes())
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "-w", str(dist), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_carries_every_module_and_data_file(wheel_names):
    expected = _expected(_source_files())
    assert {"classifier/models/model.onnx", "classifier/models/metadata.json",
            "classifier/models/model_card.md",
            "classifier/compliance/data/obligations.json",
            "classifier/data/legal_basis.json",
            "classifier/indicators/data/en.jsonl"} <= expected
    missing = sorted(expected - set(wheel_names))
    assert not missing, missing
    seeds = [n for n in wheel_names if n.startswith("classifier/data/seed/")]
    assert {n.rsplit(".", 1)[-1] for n in seeds} == {"json", "db"}, seeds  # both entries


def test_wheel_installs_one_package_and_no_authors_data(wheel_names):
    tops = {name.split("/")[0] for name in wheel_names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"classifier"}
    assert not [n for n in wheel_names if AUTHORS_DATA.match(n)]
    assert "classifier/evaluation/data/authors/authors.json" in wheel_names
    entry_points = [n for n in wheel_names if n.endswith("entry_points.txt")]
    assert entry_points


def test_the_seed_cache_spares_the_first_run_its_compilation(tmp_path, monkeypatch):
    """With an empty user cache the extractor loads its bundled catalogue and Hyperscan
    database from the package's seed (classifier/data/seed/) without compiling either;
    a stale seed (the catalogue changed) fails here: run scripts/update_seed_cache.py."""
    from importlib.metadata import version

    from classifier import _cache
    from classifier.indicators import IndicatorExtractor, _catalogue, _prefilter

    seeds = {p.name for p in (Path(_cache.__file__).parent / "data" / "seed").iterdir()}
    spacy_tag = f"spacy{version('spacy')}"
    if not any(spacy_tag in name for name in seeds):
        pytest.skip(f"the seed was built for another spaCy than {version('spacy')}")
    monkeypatch.setenv("SOLICITATION_CACHE_DIR", str(tmp_path / "empty"))

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled although the seed holds it")

    monkeypatch.setattr(_catalogue, "_parse", no_compiling)
    hyperscan_seeded = any(n.endswith(f"-{version('hyperscan')}.db") for n in seeds) if (
        _prefilter.hyperscan_available()) else False
    if hyperscan_seeded:
        monkeypatch.setattr(_prefilter.Prefilter, "_compile_hyperscan", no_compiling)
    ext = IndicatorExtractor()
    assert ext.extract("how old are you").counts.sum() >= 1
    written = sorted(p.name for p in (tmp_path / "empty").glob("*"))
    assert written == [], written
    assert _cache._body(b"SCC1" + b"0" * 32 + b"damaged") is None
