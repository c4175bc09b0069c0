"""The runtime works with only its runtime dependencies, from wherever it is installed.

CI runs this folder from a wheel installed in a fresh virtual environment outside the
checkout (scripts/test.sh), so that a file missing from the wheel fails here. A fresh
interpreter is started in which every optional extra raises ImportError on import; the
library must still import, extract, build state, score with the shipped ONNX model,
stream, and build the compliance matrix.
"""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ["sklearn", "skl2onnx", "mlflow", "pyspark", "pandas", "matplotlib", "torch",
           "chitchat_dataset", "sqlalchemy", "fastapi", "starlette", "uvicorn", "argon2",
           "pyotp", "psycopg"]

SCRIPT = f"""
import sys
BLOCKED = {BLOCKED!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked optional extra: ' + name)
sys.meta_path.insert(0, Block())
import classifier
from classifier import (IndicatorExtractor, Pipeline, ScoreResult, Scorer, StreamScorer,
                        conversation_state, read_jsonl, sample_path)
ext = IndicatorExtractor()
hits = ext.extract('are your parents home')
assert hits.counts[ext.index('supervision_check.parents_home')] == 1
conv = next(iter(read_jsonl(sample_path()))).conversation
state = conversation_state(conv, ext)
result = Scorer(extractor=ext).score(conv)  # the shipped ONNX model, onnxruntime only
assert isinstance(result, ScoreResult) and result.flagged
assert result.flagged_at_message is not None and result.subject
stream = StreamScorer(Pipeline(extractor=ext))
flags = [stream.add(conv.conversation_id, m.sender, m.ts, m.text if m.is_text else None,
                    declared_ages={{p.id: p.declared_age for p in conv.participants}})
         for m in conv.messages]
assert any(flags)
from classifier.integrations import score_rows  # the platform-neutral part: no extra
try:
    import classifier.integrations.spark
except ImportError as exc:
    assert "[spark] extra" in str(exc), exc
else:
    raise AssertionError("the Spark integration imported without pyspark")
loaded = sorted(m.split('.')[0] for m in sys.modules)
assert not set(BLOCKED) & set(loaded), set(BLOCKED) & set(loaded)
print('ok', state.n_messages, ext.prefilter.engine, classifier.__file__)
"""


def test_runtime_needs_only_runtime_dependencies():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok ")


def test_compliance_register_is_traceable_from_the_installed_package():
    from classifier.compliance import check_traceability, load_register, tagged_test_index

    assert check_traceability(load_register(), tagged_test_index()) == []


def test_shipped_files_are_importable_resources():
    from importlib import resources

    files = {p.name for p in resources.files("classifier.models").iterdir()}
    assert {"model.onnx", "metadata.json", "model_card.md"} <= files
    for pkg, name in (("classifier", "data/sample.jsonl"),
                      ("classifier", "data/legal_basis.json"),
                      ("classifier.indicators", "data/en.jsonl"),
                      ("classifier.guard", "data/notices.json"),
                      ("classifier.compliance", "data/obligations.json"),
                      ("classifier.compliance", "data/test_index.json")):
        assert (resources.files(pkg) / name).is_file(), (pkg, name)
