"""Cold start of the command line, as a ratio against importing its runtime.

    python benchmarks/bench_cold_start.py [--repeat 5]

Reference: a fresh ``python -c "import spacy, onnxruntime"``. Measured: a fresh
``solicitation-classifier score`` of one conversation (the first of the shipped sample),
which imports the library, loads the catalogue's compiled patterns from the cache, builds
the extractor, loads the ONNX model, scores and writes. The two alternate, so that noise
on a shared machine falls on both; medians are reported. Target: <= 2x.

The first run, with an empty user cache, reads the compiled catalogue and the Hyperscan
database from the package's seed (classifier/data/seed/; it compiles them only when the
installed spaCy or Hyperscan differ from those the seed was built with) and is reported
separately; later runs read the user's cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classifier import sample_path

TARGET = 2.0


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cli = str(Path(sys.executable).with_name("solicitation-classifier"))
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as work:
        one = Path(work, "one.jsonl")
        one.write_text(sample_path().read_text(encoding="utf-8").splitlines()[0] + "\n",
                       encoding="utf-8")
        env = dict(os.environ, SOLICITATION_CACHE_DIR=str(Path(work, "cache")))
        score = [cli, "score", str(one), "-o", str(Path(work, "out.jsonl"))]
        imports = [sys.executable, "-c", "import spacy, onnxruntime"]
        first = wall(score, env)  # an empty user cache: the package's seed
        ref, ours = [], []
        for _ in range(args.repeat):
            ref.append(wall(imports, env))
            ours.append(wall(score, env))
    r, o = statistics.median(ref), statistics.median(ours)
    print(f"{'what':<52} {'median s':>9} {'ratio':>7} {'target':>7}")
    print(f"{'python -c import spacy, onnxruntime':<52} {r:>9.2f} {1:>7.2f}")
    print(f"{'solicitation-classifier score, one conversation':<52} {o:>9.2f} "
          f"{o / r:>7.2f} {'<= 2':>7} {'met' if o / r <= TARGET else 'MISSED'}")
    print(f"{'  the same, first run (empty user cache)':<52} {first:>9.2f} {first / r:>7.2f}")


if __name__ == "__main__":
    main()
