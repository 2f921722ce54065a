"""Damaged data at start: a torn WAL tail is truncated (and logged); real corruption stops the start."""

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
    """(offset, total length) of every record in a clean segment."""
    raw = seg.read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        length, _, _ = HEADER.unpack_from(raw, pos)
        out.append((pos, HEADER.size + length))
        pos += HEADER.size + length
    assert pos == len(raw)
    return out


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


TORN_TAILS = {
    "partial_record": _record(b"\x01" + b"\x00" * 16 + b"a long entry payload" * 5)[:40],
    "partial_header": b"\x17\x00\x00\x00\xde\xad",
    "zero_fill": b"\x00" * 4096,
    "header_only": _record(b"\x01" + b"z" * 100)[:12],
}


@pytest.mark.parametrize("tail", sorted(TORN_TAILS))
def test_torn_tail_is_truncated_and_logged(make_server: MakeServer, tail: str) -> None:
    srv, _, state = _prepare(make_server)
    seg = _last_segment(srv)
    good_size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(TORN_TAILS[tail])
    srv.start()
    log = srv.log_tail(20000)
    assert f"WAL {seg}: torn last record at offset {good_size}" in log, log
    assert "truncating" in log
    assert dump_when(srv.port, state[0] + 1) == (state[0] + 1, state[1])  # + the republished attributes
    # the tail is really gone: new writes land after the good prefix and survive another restart
    r = request(srv.port, "PUT", "/v2/keys/w/after", form={"value": "a"})
    assert r.status == 201
    srv.kill9()
    srv.start()
    assert request(srv.port, "GET", "/v2/keys/w/after").json()["node"]["value"] == "a"
    assert request(srv.port, "GET", "/v2/keys/w/k29").json()["node"]["value"] == "v29"
    third_start = srv.log_tail(50000).split("ready to serve")[-2]
    assert "torn last record" not in third_start, third_start


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
    """Arbitrary non-zero bytes after the last record do not look like a torn write (bad header CRC,
    not zeros): the server refuses rather than guess, naming file and offset. (etcd 3.4 also refuses
    most such tails: a garbage length trips its entry-size limit rather than io.ErrUnexpectedEOF.)"""
    srv, _, _ = _prepare(make_server)
    seg = _last_segment(srv)
    good_size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b"this is not a WAL record, just garbage appended by someone\n" * 2)
    assert _start_fails(srv) != 0
    log = srv.log_tail(5000)
    assert str(seg) in log and f"offset {good_size}" in log, log


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
