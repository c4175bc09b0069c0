"""The benchmarks still run (tiny sizes; their figures are not asserted: no timing here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_scale_benchmark_runs_on_a_tiny_corpus():
    proc = subprocess.run([sys.executable, str(BENCH / "bench_scale.py"),
                           "--conversations", "30", "--agreement-messages", "200",
                           "--memory-messages", "3000", "--open", "100"],
                          capture_output=True, text=True,
                          cwd=BENCH, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in ("end to end, batches", "real benign chat only", "conversation length",
                 "a score after every message", "extractor alone", "RSS growth once",
                 "targets (ratios measured in this run)"):
        assert line in proc.stdout
    targets = proc.stdout.split("targets (ratios measured in this run)")[1].splitlines()[2:]
    assert len(targets) == 7 and all(t.endswith((" met", " MISSED")) for t in targets)


def test_cold_start_benchmark_runs_and_reports_its_ratio():
    proc = subprocess.run([sys.executable, str(BENCH / "bench_cold_start.py"), "--repeat", "1"],
                          capture_output=True, text=True, cwd=BENCH, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "solicitation-classifier score, one conversation" in proc.stdout
    assert "first run (empty user cache)" in proc.stdout
