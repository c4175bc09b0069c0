"""Extractor and state benchmark, printed as ratios measured in the same run.

    python benchmarks/bench_extractor.py [--messages 200000] [--stream 1000000]

Corpus: the real one-to-one chats of ``chitchat-dataset`` (extra ``[eval]``) when
installed, else synthetic chat-like messages. References measured on the same messages
in the same process: ``str.lower()`` and ``spacy.blank("en")`` tokenisation. Reported:
messages per second per core (one process, one thread), agreement of the prefiltered
extractor with the full matcher (spaCy on every message), state bytes per conversation,
cost per message against conversation length, and peak memory over a long stream.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import spacy

from classifier import Conversation, ConversationState, Message, conversation_state
from classifier.indicators import IndicatorExtractor, hyperscan_available

BATCH = 10_000


def corpus(n: int, seed: int = 0) -> tuple[list[str], str]:
    try:
        import chitchat_dataset

        msgs = [m["text"] for c in chitchat_dataset.Dataset().values()
                for turn in c["messages"] for m in turn]
        source = f"chitchat-dataset ({len(msgs)} real chat messages, repeated)"
    except ImportError:
        rng = random.Random(seed)
        text = ("hey lol ok how was your day i am good thanks what are you doing tonight "
                "the game was great did you see that movie my dog is cute haha yes no maybe "
                "are your parents home send me a pic im 13 school work")
        words = text.split()
        msgs = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 14)))
                for _ in range(50_000)]
        source = "synthetic chat-like messages (install [eval] for real chat)"
    out = (msgs * (n // len(msgs) + 1))[:n]
    return out, source


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def batched(ext: IndicatorExtractor, texts: Sequence[str]) -> np.ndarray:
    return np.concatenate([ext.extract_batch(texts[i:i + BATCH]).counts
                           for i in range(0, len(texts), BATCH)])


def conversation(n: int, t0: datetime) -> list[Message]:
    lines = ["hey", "how r u", "good hbu", "are your parents home", "no lol", "ok", "send a pic",
             "im 13", "cool", "what school do u go to"]
    return [Message("a" if i % 2 else "b", t0 + timedelta(seconds=30 * i), lines[i % len(lines)])
            for i in range(n)]


def build_state(msgs: Sequence[Message], ext: IndicatorExtractor) -> ConversationState:
    return conversation_state(Conversation("bench", (), tuple(msgs)), ext)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--stream", type=int, default=1_000_000)
    args = ap.parse_args()

    texts, source = corpus(args.messages)
    n = len(texts)
    print(f"corpus: {n} messages from {source}; mean length "
          f"{sum(map(len, texts)) / n:.1f} chars; 1 process, 1 thread")

    nlp = spacy.blank("en")
    t_lower = best_of(lambda: [t.lower() for t in texts])
    t_spacy = best_of(lambda: [None for _ in nlp.tokenizer.pipe(texts)], repeat=1)
    engines = ["hyperscan", "re"] if hyperscan_available() else ["re"]
    rows = []
    full = IndicatorExtractor(prefilter="none")
    t0 = time.perf_counter()
    reference = batched(full, texts)
    t_full = time.perf_counter() - t0
    rows.append(("full matcher (spaCy on every message)", t_full, 1.0, n))
    for engine in engines:
        ext = IndicatorExtractor(prefilter=engine)
        batched(ext, texts[:BATCH])  # warm up
        runs: list[np.ndarray] = []
        t = best_of(lambda ext=ext, runs=runs: runs.append(batched(ext, texts)), repeat=2)
        counts = runs[-1]
        agree = float(np.mean(np.all(counts == reference, axis=1)))
        candidates = sum(ext.extract_batch(texts[i:i + BATCH]).n_candidates
                         for i in range(0, n, BATCH))
        rows.append((f"extractor, prefilter={engine}", t, agree, candidates))

    print(f"\n{'what':<40} {'msg/s/core':>12} {'x spaCy tok':>12} {'x str.lower':>12} "
          f"{'agreement':>10} {'to spaCy':>9}")
    print(f"{'str.lower()':<40} {n / t_lower:>12,.0f} {t_spacy / t_lower:>12.2f} {1:>12.2f}")
    print(f"{'spacy.blank(en) tokenizer':<40} {n / t_spacy:>12,.0f} {1:>12.2f} "
          f"{t_lower / t_spacy:>12.3f}")
    for name, t, agree, cand in rows:
        print(f"{name:<40} {n / t:>12,.0f} {t_spacy / t:>12.2f} {t_lower / t:>12.3f} "
              f"{agree:>10.4%} {cand / n:>9.1%}")
    hit_rate = float(np.mean(reference.any(axis=1)))
    print(f"messages with at least one indicator (full matcher): {hit_rate:.1%}")

    # state size and cost against conversation length
    ext = IndicatorExtractor()
    t0_dt = datetime(2026, 5, 1, tzinfo=UTC)
    print(f"\n{'conversation length':>20} {'state bytes':>12} {'us/message':>12} {'ratio':>7}")
    base = None
    for length in (10, 100, 1000, 10000):
        msgs = conversation(length, t0_dt)
        reps = max(1, 20000 // length)
        t = best_of(lambda msgs=msgs, reps=reps: [
            build_state(msgs, ext) for _ in range(reps)])
        per = t / (reps * length) * 1e6
        base = base or per
        size = len(build_state(msgs, ext).to_bytes())
        print(f"{length:>20} {size:>12} {per:>12.2f} {per / base:>7.2f}")

    # peak memory over a long stream: states of 100-message conversations, batch-extracted
    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    peaks = []
    done = 0
    t = time.perf_counter()
    while done < args.stream:
        chunk = texts[done % n:done % n + BATCH] or texts[:BATCH]
        batch = ext.extract_batch(chunk)
        for start in range(0, len(chunk), 100):
            state = ConversationState(f"s{done + start}", ext.catalogue)
            for j in range(start, min(start + 100, len(chunk))):
                state.update("a" if j % 2 else "b", 1_777_000_000.0 + j, batch[j])
        done += len(chunk)
        if done % 100_000 < BATCH:
            peaks.append((done, rss_mb(), len(ext.nlp.vocab.strings)))
    elapsed = time.perf_counter() - t
    print(f"\nstream of {done:,} messages (extract + state) in {elapsed:.1f} s "
          f"({done / elapsed:,.0f} msg/s)")
    print(f"{'messages':>12} {'peak RSS MB':>12} {'StringStore':>12}")
    for d, mb, strings in peaks:
        print(f"{d:>12,} {mb:>12.1f} {strings:>12,}")
    print(f"peak RSS growth after the first 100k messages: {peaks[-1][1] - peaks[0][1]:.1f} MB")


if __name__ == "__main__":
    main()
