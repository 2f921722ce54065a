"""Binary codec for batches of Raft messages on the peer transport (pure, versioned).

Batch: magic b"PYR1", u32 count, then messages. Message: fixed header (struct _MSG), context bytes,
entries (each _ENTRY header + data), optional snapshot (_SNAP header, voters, data). Every length is
checked against the buffer: a truncated or garbled batch raises WireError, never a partial decode.
"""

from __future__ import annotations

import struct

from ..raft.types import ConfState, Entry, EntryType, Message, MsgType, Snapshot, SnapshotMeta

MAGIC = b"PYR1"
_COUNT = struct.Struct("<I")
_MSG = struct.Struct("<BQQQQQQBQIIB")  # type to frm term log_term index commit reject hint ctx_len n_ent has_snap
_ENTRY = struct.Struct("<QQBI")  # term index type data_len
_SNAP = struct.Struct("<QQIQ")  # index term n_voters data_len
_U64 = struct.Struct("<Q")


class WireError(ValueError):
    pass


def encode_batch(messages: list[Message]) -> bytes:
    parts = [MAGIC, _COUNT.pack(len(messages))]
    for m in messages:
        snap = m.snapshot
        parts.append(_MSG.pack(m.type, m.to, m.frm, m.term, m.log_term, m.index, m.commit, int(m.reject),
                               m.reject_hint, len(m.context), len(m.entries), int(snap is not None)))
        parts.append(m.context)
        for e in m.entries:
            parts.append(_ENTRY.pack(e.term, e.index, e.type, len(e.data)))
            parts.append(e.data)
        if snap is not None:
            voters = snap.meta.conf.voters
            data = snap.data  # read once: a leader's own snapshot is read from its file
            parts.append(_SNAP.pack(snap.meta.index, snap.meta.term, len(voters), len(data)))
            parts.extend(_U64.pack(v) for v in voters)
            parts.append(data)
    return b"".join(parts)


def decode_batch(buf: bytes) -> list[Message]:
    if not buf.startswith(MAGIC) or len(buf) < 8:
        raise WireError("not a pyetcd raft batch")
    view = memoryview(buf)
    (count,), pos = _COUNT.unpack_from(buf, 4), 8
    out = []
    try:
        for _ in range(count):
            (mtype, to, frm, term, log_term, index, commit, reject, hint, ctx_len, n_ent,
             has_snap) = _MSG.unpack_from(buf, pos)
            pos += _MSG.size
            ctx, pos = _take(view, pos, ctx_len)
            entries = []
            for _ in range(n_ent):
                e_term, e_index, e_type, d_len = _ENTRY.unpack_from(buf, pos)
                pos += _ENTRY.size
                data, pos = _take(view, pos, d_len)
                entries.append(Entry(e_term, e_index, EntryType(e_type), data))
            snap = None
            if has_snap:
                s_index, s_term, n_voters, d_len = _SNAP.unpack_from(buf, pos)
                pos += _SNAP.size
                voters = []
                for _ in range(n_voters):
                    voters.append(_U64.unpack_from(buf, pos)[0])
                    pos += 8
                data, pos = _take(view, pos, d_len)
                snap = Snapshot(SnapshotMeta(s_index, s_term, ConfState(tuple(voters))), data)
            out.append(Message(MsgType(mtype), to, frm, term, log_term, index, tuple(entries), commit,
                               bool(reject), hint, ctx, snap))
    except (struct.error, ValueError) as e:
        raise WireError(f"bad raft batch at byte {pos}: {e}") from None
    if pos != len(buf):
        raise WireError(f"{len(buf) - pos} trailing bytes after {count} messages")
    return out


def _take(view: memoryview, pos: int, n: int) -> tuple[bytes, int]:
    end = pos + n
    if end > len(view):
        raise WireError(f"length {n} at byte {pos} runs past the end")
    return bytes(view[pos:end]), end
