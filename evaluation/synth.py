"""Deterministic synthetic conversations: labelled grooming positives and hard negatives.

Positives follow the documented stages of online grooming (O'Connell 2003: friendship
forming, relationship forming, risk assessment, exclusivity, approach; Luring
Communication Theory: access, deceptive trust, isolation, approach), never the sexual
stage. Pace, age evidence, false profile ages and the chat surface vary. Hard negatives
are named subgroups that use the same indicator-rich words between other people.

Every conversation is a pure function of (seed, split, index): the same call gives the
same data on every machine.

>>> convs = list(generate(4, seed=1, split="train"))
>>> [c.subgroup for c in convs] == [c.subgroup for c in generate(4, seed=1, split="train")]
True
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from classifier import Conversation, Message, Participant

from ._families import lines_for

__all__ = ["NEGATIVE_SUBGROUPS", "SPLITS", "SUBGROUPS", "generate"]

SPLITS = ("train", "test")
NEGATIVE_SUBGROUPS = (
    "adult_dating", "teen_peers", "parent_child", "coach_student", "helpline_protected",
    "helpline_unprotected", "gaming_peers", "adult_secrecy", "workplace", "everyday",
)
SUBGROUPS = ("grooming", *NEGATIVE_SUBGROUPS)
STAGES = ("groom.friendship", "groom.relationship", "groom.risk_assessment",
          "groom.exclusivity", "groom.approach")
_APPROACH = ("groom.platform", "groom.photo", "groom.meeting", "groom.gift")
_START = datetime(2025, 9, 1, tzinfo=UTC)
_THINGS = ("drawings", "dance video", "skate clips", "gaming stream", "art", "music covers")
_APPS = ("snap", "discord", "kik", "insta")
_NAMES = ("sam", "alex", "jo", "maria", "chris", "lee")


class _Writer:
    """Builds one conversation: picks lines from the split's families, adds noise."""

    def __init__(self, rng: random.Random, split: str, noise: float) -> None:
        self.rng = rng
        self.split = split
        self.noise = noise
        self.slots: dict[str, object] = {}
        self.messages: list[tuple[str, str]] = []

    def line(self, key: str) -> str:
        text = self.rng.choice(lines_for(key, self.split)).format(**self.slots)
        return _noisy(text, self.rng) if self.rng.random() < self.noise else text

    def say(self, sender: str, key: str) -> None:
        self.messages.append((sender, self.line(key)))

    def small_talk(self, a: str, b: str, k: int) -> None:
        for i in range(k):
            self.say(a if i % 2 == 0 else b, "smalltalk")


def _noisy(text: str, rng: random.Random) -> str:
    """Chat surface: typos, slang, emoji, casing, repeated letters, run-together words."""
    kind = rng.randrange(7)
    words = text.split(" ")
    if kind == 0 and len(text) > 4:  # a dropped or swapped letter
        i = rng.randrange(1, len(text) - 2)
        return text[:i] + text[i + 1] + text[i] + text[i + 2:] if rng.random() < 0.5 \
            else text[:i] + text[i + 1:]
    if kind == 1:
        slang = {"you": "u", "are": "r", "your": "ur", "to": "2", "for": "4", "please": "pls",
                 "right now": "rn", "want to": "wanna", "going to": "gonna"}
        out = " ".join(words)
        for long, short in slang.items():
            out = out.replace(f" {long} ", f" {short} ")
        return out
    if kind == 2:
        return text + rng.choice([" 😂", " 😊", " 🙂", " 👀", " lol", " :)", " haha"])
    if kind == 3:
        return text.upper() if rng.random() < 0.3 else text.capitalize()
    if kind == 4:
        i = rng.randrange(len(words))
        w = words[i]
        if w and w[-1].isalpha():
            words[i] = w + w[-1] * rng.randint(1, 3)
        return " ".join(words)
    if kind == 5 and len(words) > 2:
        i = rng.randrange(len(words) - 1)
        return " ".join([*words[:i], words[i] + words[i + 1], *words[i + 2:]])
    return text + rng.choice(["?", "!", "!!", "...", ""])


def _length(rng: random.Random, low: int = 10, high: int = 400) -> int:
    """Conversation length, log-uniform between low and high messages."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _pid(rng: random.Random) -> str:
    return "u-" + "".join(rng.choice("0123456789abcdef") for _ in range(10))


def _grooming(w: _Writer, rng: random.Random) -> tuple[list[Participant], str]:
    adult, child = _pid(rng), _pid(rng)
    age, aage = rng.randint(10, 15), rng.randint(19, 55)
    w.slots.update(age=age, aage=aage, fake=rng.randint(15, 17), grade=max(age - 5, 5),
                   year=max(age - 4, 6))
    # profiles: children often claim 18 to pass an age gate, adults claim to be teens
    child_declared = rng.choices([None, age, 18], weights=[4, 3, 3])[0]
    adult_declared = rng.choices([None, aage, 16, rng.randint(19, 25)], weights=[4, 3, 2, 1])[0]
    stages = [s for s in STAGES if rng.random() > 0.2 or s == "groom.approach"]
    if len(stages) > 2 and rng.random() < 0.25:  # reorder two neighbouring stages
        i = rng.randrange(len(stages) - 1)
        stages[i], stages[i + 1] = stages[i + 1], stages[i]
    target = _length(rng)
    per_stage = max(target // len(stages) - 4, 0)  # small talk around each stage
    adult_age_mode = rng.choices(["disclose", "hide", "teen"], weights=[3, 4, 3])[0]
    for stage in stages:
        w.small_talk(adult, child, rng.randint(per_stage // 2, per_stage))
        if stage == "groom.friendship":
            w.say(adult, "groom.friendship")
            w.say(child, "child.reply")
            w.say(adult, "groom.age_question")
            evidence = rng.choices(["child.age", "child.grade", None], weights=[6, 3, 1])[0]
            if evidence:
                w.say(child, evidence)
            if adult_age_mode == "disclose":
                w.say(adult, "groom.adult_disclosure")
            elif adult_age_mode == "teen":
                w.say(adult, "groom.teen_claim")
            w.say(adult, "groom.flattery")
        elif stage == "groom.approach":
            for key in rng.sample(_APPROACH, rng.randint(1, len(_APPROACH))):
                w.say(adult, key)
                w.say(child, rng.choice(["child.reply", "child.hesitant"]))
        else:
            for _ in range(rng.randint(1, 2)):
                w.say(adult, stage)
                w.say(child, rng.choice(["child.reply", "child.context", "child.hesitant"]))
    return [Participant(adult, adult_declared), Participant(child, child_declared)], adult


def _negative(w: _Writer, rng: random.Random, subgroup: str) -> list[Participant]:
    a, b = _pid(rng), _pid(rng)
    teen, adult = rng.randint(12, 16), rng.randint(22, 60)
    w.slots.update(age=teen, aage=adult, grade=max(teen - 5, 5), year=max(teen - 4, 6),
                   name=rng.choice(_NAMES))
    target = _length(rng, 8, 200)
    # (participants' true ages, declared ages, scripted keys for a and for b)
    if subgroup == "adult_dating":
        ages, script = (adult, rng.randint(22, 60)), [("dating.age", "dating.age"),
                                                      ("dating.talk", "dating.talk")]
    elif subgroup == "teen_peers":
        ages, script = (teen, min(teen + rng.randint(-1, 1), 17)), [
            ("peers.age", "peers.age"), ("peers.talk", "peers.talk")]
    elif subgroup == "parent_child":
        ages, script = (adult, teen - 3), [("parent.talk", "child.to_parent")]
    elif subgroup == "coach_student":
        ages, script = (adult, teen), [("coach.talk", "student.reply")]
    elif subgroup in ("helpline_protected", "helpline_unprotected"):
        ages, script = (adult, teen), [("helpline.counsellor", "helpline.child")]
    elif subgroup == "gaming_peers":
        ages, script = (teen, rng.randint(13, 25)), [("gaming.talk", "gaming.talk")]
    elif subgroup == "adult_secrecy":
        ages, script = (adult, rng.randint(22, 60)), [("adult_secret.talk", "adult_secret.talk")]
    elif subgroup == "workplace":
        ages, script = (adult, rng.randint(22, 60)), [("workplace.talk", "workplace.talk")]
    else:
        ages, script = (adult, rng.randint(22, 60)), [("everyday.plans", "everyday.plans")]
    rounds = max(1, target // 6)
    for _ in range(rounds):
        key_a, key_b = rng.choice(script)
        w.say(a, key_a)
        w.say(b, key_b)
        w.small_talk(a, b, rng.randint(0, 3))
    role = "helpline" if subgroup == "helpline_protected" else None
    declared = [rng.choice([None, ages[0]]), rng.choice([None, ages[1]])]
    return [Participant(a, declared[0], role), Participant(b, declared[1])]


def _conversation(seed: int, split: str, index: int, positive_share: float,
                  noise: float) -> Conversation:
    # one independent stream per conversation: (seed, split, index) fixes it
    digest = hashlib.sha256(f"{seed}:{split}:{index}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    w = _Writer(rng, split, noise)
    w.slots.update(thing=rng.choice(_THINGS), app=rng.choice(_APPS))
    if rng.random() < positive_share:
        subgroup, label = "grooming", 1
        participants, offender = _grooming(w, rng)
    else:
        subgroup, label, offender = rng.choice(NEGATIVE_SUBGROUPS), 0, None
        participants = _negative(w, rng, subgroup)
    ts = _START + timedelta(days=rng.randint(0, 420), hours=rng.randint(0, 23),
                            minutes=rng.randint(0, 59))
    messages = []
    for sender, text in w.messages:
        messages.append(Message(sender, ts, text))
        ts += timedelta(seconds=int(rng.expovariate(1 / 90)) + 2)
        if rng.random() < 0.03:  # a pause of hours to a day
            ts += timedelta(hours=rng.randint(1, 30))
    return Conversation(
        conversation_id=f"synth-{split}-{seed}-{index:07d}",
        participants=tuple(participants),
        messages=tuple(messages),
        region="EU",
        e2ee=False,
        label=label,
        subgroup=subgroup,
        offender=offender,
    )


def generate(n: int, *, seed: int = 0, split: str = "train", positive_share: float = 0.35,
             noise: float = 0.3) -> Iterator[Conversation]:
    """Yield ``n`` synthetic conversations of one split.

    Parameters
    ----------
    n : int
    seed : int
    split : {"train", "test"}
        Lines come only from the families of this split (disjoint wording).
    positive_share : float
        Expected share of grooming conversations; the rest spread evenly over the
        hard-negative subgroups.
    noise : float
        Share of lines given a chat-surface change (typo, slang, emoji, casing, ...).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0.0 <= positive_share <= 1.0 or not 0.0 <= noise <= 1.0:
        raise ValueError("positive_share and noise must lie in [0, 1]")
    for index in range(n):
        yield _conversation(seed, split, index, positive_share, noise)
