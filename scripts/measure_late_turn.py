"""How much a long ordinary prelude hides a grooming conversation (the model card's limit).

    python scripts/measure_late_turn.py AUTHOR [AUTHOR ...] [--prelude 0 50 150 300]

Each positive of the given authors is scored as written and again after K messages of
real benign chat (the chitchat test half, ``[eval]``) put before its first message: the
prelude's turns alternate between the offender and the other party, one minute apart,
ending an hour before the conversation starts. Hard negatives are scored with the same
prelude. Prints recall and hard-negative FPR at the shipped model's threshold per K.
Only aggregates are printed; no text leaves the scorer.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from datetime import timedelta

from classifier.evaluation.authors import authors, load_author
from classifier.evaluation.benign import load_chitchat

from classifier import Message, Scorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("authors", nargs="+")
    ap.add_argument("--prelude", nargs="+", type=int, default=[0, 50, 150, 300])
    args = ap.parse_args()
    registry = {a.id: a for a in authors()}
    scorer = Scorer()
    texts = [m.text for c in load_chitchat("test") for m in c.messages if m.is_text]
    pool = itertools.cycle(texts)
    print(f"{'author':<32} {'K':>4} {'recall':>7} {'HN FPR':>7}  "
          f"(threshold {scorer.threshold:.3f})")
    for a in args.authors:
        convs = [c for c in load_author(registry[a]) if c.label is not None]
        for k in args.prelude:
            tp = fn = fp = tn = 0
            batch = []
            for c in convs:
                if k and c.messages:
                    ids = [c.offender] if c.offender else []
                    ids += [p.id for p in c.participants if p.id not in ids]
                    pair = ids[:2] if len(ids) > 1 else ids * 2
                    start = c.messages[0].ts - timedelta(hours=1, minutes=k)
                    prelude = tuple(Message(pair[i % 2], start + timedelta(minutes=i), next(pool))
                                    for i in range(k))
                    c = replace(c, messages=prelude + c.messages)
                batch.append(c)
            for c, r in zip(batch, scorer.score_batch(batch), strict=True):
                if r.status != "scored":
                    continue
                if c.label == 1:
                    tp, fn = tp + r.flagged, fn + (not r.flagged)
                else:
                    fp, tn = fp + r.flagged, tn + (not r.flagged)
            print(f"{a:<32} {k:>4} {tp / max(1, tp + fn):>7.3f} {fp / max(1, fp + tn):>7.1%}")


if __name__ == "__main__":
    main()
