"""The runtime imports, extracts and scores with only its runtime dependencies.

A fresh interpreter is started in which every optional extra (and Hyperscan) raises
ImportError on import; the library must still import, extract and build state.
"""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ["sklearn", "skl2onnx", "mlflow", "pyspark", "pandas", "matplotlib", "hyperscan",
           "torch", "chitchat_dataset", "sqlalchemy"]

SCRIPT = f"""
import sys
BLOCKED = {BLOCKED!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked optional extra: ' + name)
sys.meta_path.insert(0, Block())
import classifier
from classifier.indicators import IndicatorExtractor
ext = IndicatorExtractor()
assert ext.prefilter.engine == 're', ext.prefilter.engine
hits = ext.extract('are your parents home')
assert hits.counts.sum() == 1
from classifier import ConversationState, read_jsonl
from classifier._cli import sample_path
conv = next(iter(read_jsonl(sample_path()))).conversation
state = ConversationState.from_conversation(conv, ext)
from classifier._scoring import Scorer
result = Scorer(extractor=ext).score(conv)  # the shipped ONNX model, onnxruntime only
assert result.flagged and result.flagged_at_message is not None
from classifier.integrations import score_rows  # the platform-neutral part: no extra
try:
    import classifier.integrations.spark
except ImportError as exc:
    assert "[spark] extra" in str(exc), exc
else:
    raise AssertionError("the Spark integration imported without pyspark")
loaded = sorted(m.split('.')[0] for m in sys.modules)
assert not set(BLOCKED) & set(loaded)
print('ok', state.n_messages)
"""


def test_runtime_needs_only_runtime_dependencies():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok ")
