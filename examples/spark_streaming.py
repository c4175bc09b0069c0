"""Flag conversations in a Structured Streaming query, as soon as each crosses the threshold.

Run it (the [spark] extra and a Java 17+ runtime are needed)::

    python examples/spark_streaming.py                  # a demo inbox from the bundled sample
    python examples/spark_streaming.py --inbox DIR --out DIR --checkpoint DIR

The inbox holds JSON Lines files of message rows (one message per line: conversation_id,
message_id, sender, ts as epoch seconds, text, and optionally modality, declared_age,
protected_role, e2ee). Each file is one micro-batch here (``maxFilesPerTrigger``); the
query processes what is there and stops (``availableNow``), and a later run continues
from the checkpoint, with each conversation's numeric state kept in Spark's state store.

Flags (and rejected rows) are written as JSON Lines to ``--out``. No message text is in
the output, the state store or the checkpoint.

On a cluster that ships the Kafka connector, read the topic instead of files::

    source = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", "broker:9092")
              .option("subscribe", "messages").load()
              .select(F.from_json(F.col("value").cast("string"), MESSAGE_SCHEMA).alias("m"))
              .select("m.*"))
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from classifier import read_jsonl, sample_path
from classifier.integrations import conversation_rows
from classifier.integrations.spark import flag_stream, local_session

MESSAGE_SCHEMA = ("conversation_id string, message_id string, sender string, ts double, "
                  "text string, modality string, declared_age long, protected_role string, "
                  "e2ee boolean")


def demo_inbox(inbox: Path, *, files: int = 3) -> None:
    """Write the bundled sample conversations as message rows, spread over a few files."""
    inbox.mkdir(parents=True, exist_ok=True)
    rows = [r for res in read_jsonl(sample_path()) for r in conversation_rows(res.conversation)]
    rows.sort(key=lambda r: r["ts"])  # arrival order
    size = -(-len(rows) // files)
    for k in range(files):
        with open(inbox / f"messages-{k:03d}.jsonl", "w", encoding="utf-8") as fh:
            for r in rows[k * size:(k + 1) * size]:
                fh.write(json.dumps(r) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inbox", type=Path, help="directory of message-row JSONL files")
    parser.add_argument("--out", type=Path, help="where flags are written (JSON Lines)")
    parser.add_argument("--checkpoint", type=Path, help="the query's checkpoint directory")
    parser.add_argument("--model-dir", help="a model directory (default: the shipped model)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="solicitation-stream-"))
    inbox = args.inbox or work / "inbox"
    if args.inbox is None:
        demo_inbox(inbox)
    out = args.out or work / "flags"
    checkpoint = args.checkpoint or work / "checkpoint"

    spark = local_session("solicitation-classifier-stream")
    source = (spark.readStream.schema(MESSAGE_SCHEMA).option("maxFilesPerTrigger", 1)
              .json(str(inbox)))
    query = (flag_stream(source, model_dir=args.model_dir).writeStream.format("json")
             .option("path", str(out)).option("checkpointLocation", str(checkpoint))
             .outputMode("append").trigger(availableNow=True).start())
    query.awaitTermination()
    flags = spark.read.schema("conversation_id string, status string, record string, "
                              "field string, flagged_at_message long, score double").json(
        str(out))
    rows = flags.orderBy("conversation_id").collect()
    for r in rows:
        if r.status == "flagged":
            print(f"flagged {r.conversation_id} at message {r.flagged_at_message} "
                  f"(score {r.score:.3f})")
        else:
            print(f"rejected {r.conversation_id} {r.record} field {r.field}")
    print(f"{sum(r.status == 'flagged' for r in rows)} flag(s); output in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
