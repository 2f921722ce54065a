"""Damaged data at start: a torn WAL tail (a batch cut by a crash, its pages in any order) is zeroed (and
logged), zero padding after the records is a clean end, real corruption stops the start."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from tests.support.servers import Server

from ._http import RawConn, dump, dump_when, request
from .conftest import MakeServer

HEADER = struct.Struct("<III")  # payload_len, payload_crc, header_crc (see storage/wal_codec.py)


def _records(seg: Path) -> list[tuple[int, int]]:
    """(offset, total length) of every record in a clean segment (records, then zero padding)."""
    raw = seg.read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        length, _, _ = HEADER.unpack_from(raw, pos)
        if length == 0:
            break
        out.append((pos, HEADER.size + length))
        pos += HEADER.size + length
    assert not raw[pos:].strip(b"\0")
    return out


def _logical_end(seg: Path) -> int:
    """Where the next record goes: after the last one, in the zero padding."""
    offset, length = _records(seg)[-1]
    return offset + length


def _write_at(seg: Path, offset: int, data: bytes, truncate: bool = False) -> None:
    with open(seg, "r+b") as f:
        if truncate:
            f.truncate(offset)
        f.seek(offset)
        f.write(data)


def _record(payload: bytes) -> bytes:
    len_crc = struct.pack("<II", len(payload), zlib.crc32(payload))
    return len_crc + struct.pack("<I", zlib.crc32(len_crc)) + payload


def _last_segment(srv: Server) -> Path:
    segs = sorted((srv.data_dir / "member" / "wal").glob("*.wal"))
    assert segs
    return segs[-1]


def _prepare(make_server: MakeServer, n: int = 30) -> tuple[Server, int, tuple[int, object]]:
    srv = make_server().start()
    with RawConn(srv.port) as c:
        for i in range(n):
            assert c.call("PUT", f"/v2/keys/w/k{i}", form={"value": f"v{i}"}).status == 201
    state = dump(srv.port)
    assert srv.stop() == 0
    return srv, n, state


def _start_fails(srv: Server) -> int:
    with pytest.raises(RuntimeError):
        srv.start(wait_s=15)
    assert srv.proc is not None
    rc = srv.proc.returncode
    srv.proc = None
    return rc


def _cut_at_sector(offset: int, record: bytes) -> bytes:
    """What reaches the disk of `record` written at `offset` when only its first sector does (the rest
    stays zeros): a torn write as a crash leaves it."""
    return record[:-(-(offset + HEADER.size + 1) // 512) * 512 - offset]


LONG = _record(b"\x01" + b"\x00" * 16 + b"a long entry payload" * 100)
GARBAGE = b"this is not a WAL record, just garbage appended by someone\n" * 2
# name -> (the torn bytes for a record starting at offset, whether the file ends right after them, as a
# segment without zero room does, or the zero room stays after them)
TORN_TAILS = {
    "partial_record": (lambda offset: _cut_at_sector(offset, LONG), False),
    "lost_sector": (lambda offset: LONG[:-(-offset // 512) * 512 - offset + 1024] + bytes(512)
                    + LONG[-(-offset // 512) * 512 - offset + 1536:], False),
    "header_only": (lambda offset: _record(b"\x01" + b"z" * 100)[:12], False),
    "partial_record_at_eof": (lambda offset: LONG[:40], True),
    "partial_header_at_eof": (lambda offset: b"\x17\x00\x00\x00\xde\xad", True),
    # a power cut during a batch's fdatasync over the zero room: any of its pages may be missing
    # (zeros), later ones written
    "lost_page_at_record_boundary": (lambda offset: bytes(-(-offset // 4096) * 4096 - offset + 4096) + LONG * 3,
                                     False),
    "lost_sector_then_records": (lambda offset: TORN_TAILS["lost_sector"][0](offset) + LONG * 2, False),
    "garbage_after_padding": (lambda offset: bytes(8192) + GARBAGE, False),
}


@pytest.mark.parametrize("tail", sorted(TORN_TAILS))
def test_torn_tail_is_zeroed_and_logged(make_server: MakeServer, tail: str) -> None:
    srv, _, state = _prepare(make_server)
    seg = _last_segment(srv)
    good_end = _logical_end(seg)
    torn_of, at_eof = TORN_TAILS[tail]
    torn = torn_of(good_end)
    _write_at(seg, good_end, torn, truncate=at_eof)
    size = seg.stat().st_size
    srv.start()
    log = srv.log_tail(20000)
    assert f"WAL {seg}: torn last record at offset {good_end}" in log, log
    assert "zeroing" in log
    assert dump_when(srv.port, state[0] + 1) == (state[0] + 1, state[1])  # + the republished attributes
    assert seg.stat().st_size >= size  # zeroed, not truncated
    # the tail is really gone: new writes land after the good prefix and survive another restart
    r = request(srv.port, "PUT", "/v2/keys/w/after", form={"value": "a"})
    assert r.status == 201
    srv.kill9()
    srv.start()
    assert request(srv.port, "GET", "/v2/keys/w/after").json()["node"]["value"] == "a"
    assert request(srv.port, "GET", "/v2/keys/w/k29").json()["node"]["value"] == "v29"
    third_start = srv.log_tail(50000).split("ready to serve")[-2]
    assert "torn last record" not in third_start, third_start


def test_zero_padding_is_a_clean_end(make_server: MakeServer) -> None:
    """The zero room after the last record, even grown by 4 KiB of zeros, is no torn tail."""
    srv, _, state = _prepare(make_server)
    seg = _last_segment(srv)
    with open(seg, "ab") as f:
        f.write(bytes(4096))
    srv.start()
    assert dump_when(srv.port, state[0] + 1) == (state[0] + 1, state[1])
    log = srv.log_tail(20000)
    assert "torn last record" not in log and "WARNING" not in log.split("ready to serve")[-2], log


@pytest.mark.parametrize("where", ["payload", "length", "crc"])
def test_flipped_byte_in_earlier_record_refuses_to_start(make_server: MakeServer, where: str) -> None:
    srv, _, _ = _prepare(make_server)
    seg = _last_segment(srv)
    records = _records(seg)
    assert len(records) > 20
    offset, length = records[len(records) // 2]
    pos = {"payload": offset + HEADER.size + (length - HEADER.size) // 2, "length": offset + 1, "crc": offset + 5}[where]
    raw = bytearray(seg.read_bytes())
    raw[pos] ^= 0x41
    seg.write_bytes(bytes(raw))
    size = len(raw)

    rc = _start_fails(srv)
    assert rc != 0
    log = srv.log_tail(5000)
    assert str(seg) in log, log
    assert f"offset {offset}" in log, log
    assert "refusing to start" in log
    assert seg.stat().st_size == size  # nothing was "repaired" away


def test_flipped_byte_in_last_record_refuses_to_start(make_server: MakeServer) -> None:
    """A complete last record with a bad CRC is not a torn write: it was synced, so it may be acked."""
    srv, _, _ = _prepare(make_server)
    seg = _last_segment(srv)
    offset, length = _records(seg)[-1]
    raw = bytearray(seg.read_bytes())
    raw[offset + length - 1] ^= 0xFF
    seg.write_bytes(bytes(raw))
    assert _start_fails(srv) != 0
    assert f"offset {offset}" in srv.log_tail(5000)


def test_nonzero_garbage_tail_refuses_to_start_and_names_offset(make_server: MakeServer) -> None:
    """Arbitrary non-zero bytes right after the last record do not look like a torn write (bad header
    CRC, no zeroed sector): the server refuses rather than guess, naming file and offset. (etcd 3.4 also
    refuses most such tails: a garbage length trips its entry-size limit rather than io.ErrUnexpectedEOF.)
    After a zero header (in the padding) they are a torn tail instead: see TORN_TAILS."""
    srv, _, _ = _prepare(make_server)
    seg = _last_segment(srv)
    good_end = _logical_end(seg)
    _write_at(seg, good_end, GARBAGE)
    assert _start_fails(srv) != 0
    log = srv.log_tail(5000)
    assert str(seg) in log and f"offset {good_end}" in log, log


def test_corrupt_snapshot_refuses_to_start(make_server: MakeServer) -> None:
    srv = make_server(extra=["--snapshot-count", "20"]).start()
    with RawConn(srv.port) as c:
        for i in range(50):
            assert c.call("PUT", f"/v2/keys/s/k{i}", form={"value": f"v{i}"}).status == 201
    assert srv.stop() == 0
    snaps = sorted((srv.data_dir / "member" / "snap").glob("*.snap"))
    assert snaps
    newest = snaps[-1]
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    newest.write_bytes(bytes(raw))
    assert _start_fails(srv) != 0
    assert str(newest) in srv.log_tail(5000)


def test_unfinished_snapshot_temp_file_is_ignored(make_server: MakeServer) -> None:
    srv = make_server(extra=["--snapshot-count", "20"]).start()
    with RawConn(srv.port) as c:
        for i in range(50):
            assert c.call("PUT", f"/v2/keys/s/k{i}", form={"value": f"v{i}"}).status == 201
    state = dump(srv.port)
    srv.kill9()
    snap_dir = srv.data_dir / "member" / "snap"
    tmp = snap_dir / f"{'f' * 16}-{'f' * 16}.snap.tmp"
    tmp.write_bytes(b"PYETCDS1 half written")
    os.sync()
    srv.start()
    assert dump_when(srv.port, state[0] + 1) == (state[0] + 1, state[1])  # + the republished attributes
    assert not tmp.exists()
