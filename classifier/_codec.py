"""The binary form of a :class:`ConversationState`: numbers and ids only, versioned.

Layout (little-endian): magic ``CS2``, the first 8 bytes of the catalogue's sha256, the
vector lengths, participant and pair counts, the conversation id, the conversation's
scalars, then per participant its id, scalars, its indicator counts sparse (how many are
not zero, their positions and their saturating uint16 values: most indicators never fire)
and the first time each category appeared (a bit per category, then the times of those
seen), then per ordered pair the two participants' positions (-1: nobody yet) and its
saturating uint16 counts. Decoding checks the magic, the
catalogue, the lengths, the positions and that nothing trails; any damage is a
:class:`StateError` (E301/E302), never a crash.
"""

from __future__ import annotations

import struct

import numpy as np

from ._errors import Errors, StateError
from ._state import NEVER, NOBODY, AgeStats, ConversationState, ParticipantState
from .indicators import Catalogue

__all__ = ["decode_state", "encode_state", "restore_state"]

_MAGIC = b"CS5"
_COUNT_MAX = np.iinfo(np.uint16).max
_HEAD = struct.Struct("<HHHH")
_CONV = struct.Struct("<dd hhh Bh I I ?")
_SCALARS = struct.Struct("<IIII dd I ddff I ddff ddI")
_PAIR = struct.Struct("<hh")
_DENSE = 0xFFFF  # in place of the count of non-zero indicators: the counts follow whole


def _pack_str(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("<H", len(raw)) + raw


def _unpack_str(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<H", data, pos)
    pos += 2
    if pos + n > len(data):
        raise ValueError("truncated")
    return data[pos:pos + n].decode("utf-8"), pos + n


def encode_state(state: ConversationState) -> bytes:
    """Compact binary form; counts saturate at 65535."""
    ids = list(state.participants)
    index = {pid: i for i, pid in enumerate(ids)}
    index[NOBODY] = -1

    def at(pid: str | None) -> int:
        return -2 if pid is None else index.get(pid, -1)

    parts = [_MAGIC, bytes.fromhex(state.catalogue_sha256[:16]),
             _HEAD.pack(state.n_indicators, state.n_categories, len(ids), len(state.pairs)),
             _pack_str(state.conversation_id),
             _CONV.pack(state.first_ts, state.last_ts, at(state.first_sender),
                        at(state.last_sender), at(state.prev_sender), state.since_aq,
                        at(state.aq_by), state.n_turns, state.max_participants,
                        state.order_exact)]
    for pid in ids:
        p = state.participants[pid]
        da, sa = p.disclosed_age, p.school_age
        parts.append(_pack_str(pid))
        parts.append(_SCALARS.pack(
            p.n_messages, p.n_scanned, p.n_not_scanned, p.n_with_indicators,
            p.first_ts, p.last_ts,
            da.n, da.total, da.total_sq, da.low, da.high,
            sa.n, sa.total, sa.total_sq, sa.low, sa.high,
            p.corrected_age, p.corrected_at, p.n_retractions))
        nz = np.flatnonzero(p.counts)
        if 4 * len(nz) < 2 * len(p.counts):  # sparse: positions and values
            parts.append(struct.pack("<H", len(nz)))
            parts.append(nz.astype("<u2").tobytes())
            parts.append(np.minimum(p.counts[nz], _COUNT_MAX).astype("<u2").tobytes())
        else:  # dense (never larger than the vector itself)
            parts.append(struct.pack("<H", _DENSE))
            parts.append(np.minimum(p.counts, _COUNT_MAX).astype("<u2").tobytes())
        seen = p.first_seen != NEVER
        parts.append(np.packbits(seen, bitorder="little").tobytes())
        parts.append(p.first_seen[seen].astype("<f8").tobytes())
    for (a, b), row in state.pairs.items():
        parts.append(_PAIR.pack(index[a], index.get(b, -1)))
        parts.append(np.minimum(row, _COUNT_MAX).astype("<u2").tobytes())
    return b"".join(parts)


def decode_state(data: bytes, catalogue: Catalogue) -> ConversationState:
    """Restore a state written by :func:`encode_state`."""
    try:
        return _decode(data, catalogue)
    except (struct.error, ValueError, IndexError, UnicodeDecodeError, OverflowError) as exc:
        problem = type(exc).__name__
    raise StateError(Errors.E301.format(problem=problem))


def _decode(data: bytes, catalogue: Catalogue) -> ConversationState:
    if not isinstance(data, (bytes, bytearray, memoryview)) or bytes(data[:3]) != _MAGIC:
        raise StateError(Errors.E301.format(problem="not a conversation state"))
    data = bytes(data)
    if data[3:11] != bytes.fromhex(catalogue.sha256[:16]):
        raise StateError(Errors.E302.format(got=data[3:11].hex(),
                                            expected=catalogue.sha256[:16]))
    k, c, n_p, n_pairs = _HEAD.unpack_from(data, 11)
    pos = 11 + _HEAD.size
    cid, pos = _unpack_str(data, pos)
    (first_ts, last_ts, first_i, last_i, prev_i, since_aq, aq_i, n_turns, max_p,
     exact) = _CONV.unpack_from(data, pos)
    pos += _CONV.size
    if max_p < 2 or n_p > max_p:
        raise StateError(Errors.E301.format(problem="participant counts"))
    state = ConversationState(cid, catalogue, max_participants=max_p)
    if (k, c) != (state.n_indicators, state.n_categories):
        raise StateError(Errors.E301.format(problem="vector lengths differ"))
    ids = []
    for _ in range(n_p):
        pid, pos = _unpack_str(data, pos)
        v = _SCALARS.unpack_from(data, pos)
        pos += _SCALARS.size
        (n_nz,) = struct.unpack_from("<H", data, pos)
        pos += 2
        if n_nz == _DENSE:
            counts = np.frombuffer(data, "<u2", k, pos).astype(np.uint32)
            pos += 2 * k
        else:
            where = np.frombuffer(data, "<u2", n_nz, pos).astype(np.intp)
            values = np.frombuffer(data, "<u2", n_nz, pos + 2 * n_nz)
            pos += 4 * n_nz
            if n_nz > k or (n_nz and (where.max() >= k or np.any(np.diff(where) <= 0))):
                raise ValueError("indicator positions")
            counts = np.zeros(k, dtype=np.uint32)
            counts[where] = values
        n_mask = (c + 7) // 8
        seen = np.unpackbits(np.frombuffer(data, np.uint8, n_mask, pos), count=c,
                             bitorder="little").astype(bool)
        pos += n_mask
        first_seen = np.full(c, NEVER)
        first_seen[seen] = np.frombuffer(data, "<f8", int(seen.sum()), pos)
        pos += 8 * int(seen.sum())
        state.participants[pid] = ParticipantState(
            counts, first_seen, *v[:4], v[4], v[5], AgeStats(v[6], v[7], v[8], v[9], v[10]),
            AgeStats(v[11], v[12], v[13], v[14], v[15]), v[16], v[17], v[18])
        ids.append(pid)

    def who(i: int) -> str | None:
        if i == -2:
            return None
        if i == -1:
            return NOBODY
        if not 0 <= i < len(ids):
            raise ValueError("position")
        return ids[i]

    for _ in range(n_pairs):
        a, b = _PAIR.unpack_from(data, pos)
        pos += _PAIR.size
        row = np.frombuffer(data, "<u2", c + 1, pos).astype(np.uint32)
        pos += 2 * (c + 1)
        sender = who(a)
        if not sender:
            raise ValueError("pair sender")
        state.pairs[(sender, who(b) or NOBODY)] = row
    if pos != len(data):
        raise StateError(Errors.E301.format(problem="trailing bytes"))
    state.first_ts, state.last_ts, state.n_turns, state.order_exact = (
        first_ts, last_ts, n_turns, exact)
    state.first_sender, state.last_sender = who(first_i), who(last_i)
    state.prev_sender = who(prev_i)
    state.since_aq, state.aq_by = since_aq, who(aq_i)
    return state


def restore_state(data: bytes, sha: str) -> ConversationState:
    """Unpickle: the state's bytes against the bundled catalogue (which must match)."""
    from .indicators import load_catalogue

    catalogue = load_catalogue()
    if catalogue.sha256 != sha:
        raise StateError(Errors.E302.format(got=sha[:12], expected=catalogue.sha256[:12]))
    return decode_state(data, catalogue)
