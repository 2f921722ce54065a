"""The WAL's zero room on real files (real fdatasync): segments are longer than their records, the zeros
after the last record are a clean end, a torn record inside them is zeroed (the size kept), so is a batch
torn by a power cut (pages missing, later ones written) in the last segment, corruption (and those shapes
in an earlier segment) is still refused, the room grows a chunk at a time, and a full disk while it grows or during a sync loses
nothing and acknowledges nothing unsynced. Every case ends with a reopen."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
from pyetcd.storage import wal as wal_module
from pyetcd.storage import wal_codec
from pyetcd.storage.errors import DiskFull, FaultIo
from pyetcd.storage.wal import Wal, WalCorrupt

from tests.support.tmpfs import MountTmpfs, fill, free_bytes, mount_tmpfs

__all__ = ["mount_tmpfs"]  # the fixture (tests/support/tmpfs.py), used by name
SECTOR = wal_codec.SECTOR_BYTES


def _append(wal: Wal, first: int, last: int, size: int = 0) -> None:
    for i in range(first, last + 1):
        wal.append(wal_codec.encode_entry(1, i, (b"data-%d-" % i).ljust(size, b"x")))


def _indexes(records: list[wal_codec.Record]) -> list[int]:
    return [r.entry()[1] for r in records if r.rtype == wal_codec.ENTRY]


def _open(path: Path, caplog: pytest.LogCaptureFixture, io: FaultIo | None = None) -> tuple[Wal, list[int], list[str]]:
    """Open the WAL: (wal, entry indexes, what it logged)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal"):
        wal, records = Wal.open(path, 1) if io is None else Wal.open(path, 1, io=io)
    return wal, _indexes(records), [r.getMessage() for r in caplog.records if r.name == "pyetcd.wal"]


def _reopen(path: Path, caplog: pytest.LogCaptureFixture) -> list[int]:
    """The records a restart would see, which must find a clean end (nothing logged)."""
    wal, indexes, logged = _open(path, caplog)
    wal.close()
    assert not logged
    return indexes


def _padded_wal(path: Path, last: int = 3) -> tuple[Path, int, int]:
    """A closed WAL holding entries 1..last: (segment, logical end, file size)."""
    wal, _ = Wal.open(path, 1)
    _append(wal, 1, last)
    wal.close()
    seg = wal.segments[-1][2]
    assert seg.stat().st_size == wal.room_end > wal.segment_bytes
    return seg, wal.segment_bytes, wal.room_end


def _write_at(seg: Path, offset: int, data: bytes) -> None:
    with open(seg, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _tail_is_zeros(seg: Path, offset: int) -> bool:
    return not seg.read_bytes()[offset:].strip(b"\0")


# ---- replay ------------------------------------------------------------------------------------------

def test_padding_is_a_clean_end_and_appends_land_at_the_logical_end(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seg, end, size = _padded_wal(tmp_path)
    wal, indexes, logged = _open(tmp_path, caplog)
    assert indexes == [1, 2, 3] and not logged
    assert (wal.segment_bytes, wal.room_end, seg.stat().st_size) == (end, size, size)
    _append(wal, 4, 5)
    wal.sync()
    d = wal_codec.decode(seg.read_bytes())
    assert _indexes(d.records) == [1, 2, 3, 4, 5] and (d.valid_bytes, d.torn) == (wal.segment_bytes, False)
    assert d.records[3].offset == end and seg.stat().st_size == size  # over the zeros: no growth
    wal.close()
    assert _reopen(tmp_path, caplog) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("tear", ["first_sector_only", "lost_sector", "header_only"])
def test_torn_record_inside_padding_is_zeroed(tmp_path: Path, caplog: pytest.LogCaptureFixture, tear: str) -> None:
    seg, end, size = _padded_wal(tmp_path)
    record = wal_codec.encode_entry(1, 4, b"never synced" * 200)  # ~2.4 KB: several sectors
    first_cut = wal_codec.next_sector(end + wal_codec.HEADER_BYTES + 1) - end
    torn = {"first_sector_only": record[:first_cut],
            "lost_sector": record[:first_cut] + bytes(SECTOR) + record[first_cut + SECTOR:],
            "header_only": record[:wal_codec.HEADER_BYTES]}[tear]
    _write_at(seg, end, torn)
    wal, indexes, logged = _open(tmp_path, caplog)
    assert indexes == [1, 2, 3]
    assert len(logged) == 1 and f"torn last record at offset {end}" in logged[0] and str(seg) in logged[0]
    assert seg.stat().st_size == size and _tail_is_zeros(seg, end)  # zeroed, padding kept
    assert (wal.segment_bytes, wal.room_end) == (end, size)
    _append(wal, 4, 6)
    wal.sync()
    wal.close()
    assert _reopen(tmp_path, caplog) == [1, 2, 3, 4, 5, 6]


def test_a_crash_while_zeroing_a_torn_record_leaves_it_torn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The torn bytes are zeroed back to front, each piece synced: stopped after the first piece, the
    tail still decodes as torn (not as a zero header with data after it, which would refuse to start)."""
    seg, end, _ = _padded_wal(tmp_path)
    record = wal_codec.encode_entry(1, 4, b"never synced" * 200)
    _write_at(seg, end, record[:-SECTOR])  # its last sector never written
    io = FaultIo()
    io.fail("fdatasync", errno.EIO, after=1)  # the first piece is synced, then the "crash"
    with pytest.raises(OSError, match="injected"):
        _open(tmp_path, caplog, io)
    assert not _tail_is_zeros(seg, end)
    wal, indexes, logged = _open(tmp_path, caplog)
    assert indexes == [1, 2, 3] and len(logged) == 1 and _tail_is_zeros(seg, end)
    wal.close()
    assert _reopen(tmp_path, caplog) == [1, 2, 3]


@pytest.mark.parametrize("damage", ["flip_earlier_record", "flip_earlier_header", "stray_bytes_after_records",
                                    "flip_before_a_lost_page"])
def test_corruption_is_still_refused(tmp_path: Path, damage: str) -> None:
    """Bit flips (no zeroed sector, no zero header) in the last segment, data after them: refused, even
    when a torn batch follows later."""
    seg, end, _ = _padded_wal(tmp_path, last=300)  # ~11 KB of records
    second = len(wal_codec.encode_entry(1, 1, b"data-1-"))
    raw = bytearray(seg.read_bytes())
    offset = second
    if damage == "flip_earlier_record":
        raw[second + wal_codec.HEADER_BYTES + 3] ^= 0x20
    elif damage == "flip_earlier_header":
        raw[second + 1] ^= 0x01
    elif damage == "stray_bytes_after_records":
        raw[end:end + 5] = b"stray"  # not a torn write: a bad header, not cut at a sector
        offset = end
    else:
        raw[second + wal_codec.HEADER_BYTES + 3] ^= 0x20
        raw[PAGE:2 * PAGE] = bytes(PAGE)  # a lost page further on, data after it
        assert end > 2 * PAGE
    seg.write_bytes(bytes(raw))
    with pytest.raises(WalCorrupt) as info:
        Wal.open(tmp_path, 1)
    assert str(seg) in str(info.value) and f"offset {offset}" in str(info.value)
    assert seg.read_bytes() == bytes(raw)  # nothing repaired away


# ---- a power cut during a batch's fdatasync: its pages reach the disk in any order -------------------

PAGE = 4096
OVERHEAD = len(wal_codec.encode_entry(1, 1, b""))
# name -> (record sizes of the synced batch, of the batch cut by the crash, the range the crash left zeros)
CRASHES = {
    # the first page of the batch lost, the batch starting on it: zeros from a record boundary
    "page_at_record_boundary": ([1000, 1000, 2096], [1500] * 8, (PAGE, 2 * PAGE)),
    # a later page lost, a record starting on it
    "middle_page_at_record_boundary": ([1000, 1000, 2096], [PAGE, PAGE, 1500, 1500, 1500], (2 * PAGE, 3 * PAGE)),
    # the first page lost, shared with synced records: it keeps them, then the zeros that were there
    "page_shared_with_synced_records": ([1000, 1000], [1500] * 8, (2000, PAGE)),
    # a lost page starting inside a record's payload, and inside a header
    "page_inside_a_record": ([1000, 1000, 2096], [3000] * 4, (2 * PAGE, 3 * PAGE)),
    "page_inside_a_header": ([1000, 1000, 2096], [PAGE - 5, 3000, 3000, 3000], (2 * PAGE, 3 * PAGE)),
    # the sector (or page) holding the synced records' end and the batch's first header's start lost: it
    # keeps its old content, the synced records and zeros up to the boundary inside that header
    "sector_holding_a_headers_start": ([505], [2000, 100], (505, SECTOR)),
    "page_holding_a_headers_start": ([1000, 1000, 2090], [3000, 3000], (PAGE - 6, PAGE)),
}


def _sized(index: int, total: int) -> bytes:
    return wal_codec.encode_entry(1, index, (b"e-%d-" % index).ljust(total - OVERHEAD, b"x"))


def _crashed(path: Path, crash: str, *, non_last: bool = False) -> tuple[Path, int, list[int], bytes]:
    """Two synced batches, then the second one's zeroed range as a power cut during its fdatasync would
    leave it (non_last: then a cut and one more entry, in a new segment). Returns (the damaged segment,
    where its valid records end, the entries before that, its bytes)."""
    synced, batch, (lo, hi) = CRASHES[crash]
    wal, _ = Wal.open(path, 1)
    seg = wal.segments[-1][2]
    bounds = [0]
    for sizes in (synced, batch):
        for size in sizes:
            wal.append(_sized(len(bounds), size))
            bounds.append(bounds[-1] + size)
        wal.sync()
    assert wal.segment_bytes == bounds[-1] > hi and bounds[len(synced)] <= lo
    if non_last:
        wal.cut(len(bounds))
        _append(wal, len(bounds), len(bounds))
    wal.close()
    _write_at(seg, lo, bytes(hi - lo))
    whole = max(i for i, b in enumerate(bounds) if b <= lo)  # records wholly before the zeros
    return seg, bounds[whole], list(range(1, whole + 1)), seg.read_bytes()


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_batch_torn_by_a_power_cut_is_zeroed(tmp_path: Path, caplog: pytest.LogCaptureFixture, crash: str) -> None:
    seg, valid, before, raw = _crashed(tmp_path, crash)
    size, discarded = len(raw), wal_codec.data_end(raw, valid) - valid
    assert raw[CRASHES[crash][2][1]:].strip(b"\0")  # later pages of the batch did reach the disk
    wal, indexes, logged = _open(tmp_path, caplog)
    assert indexes == before
    assert len(logged) == 1 and str(seg) in logged[0], logged
    assert f"torn last record at offset {valid}: discarding the {discarded} bytes" in logged[0]
    copy = seg.with_name(f"{seg.name}.{valid:x}.broken")  # what was zeroed, kept for an operator
    assert copy.read_bytes() == raw[valid:valid + discarded] and logged[0].endswith(f"a copy is kept in {copy}")
    assert seg.read_bytes()[:valid] == raw[:valid] and _tail_is_zeros(seg, valid)  # zeroed, not cut
    assert (wal.segment_bytes, wal.room_end, seg.stat().st_size) == (valid, size, size)
    new = len(before) + 1
    _append(wal, new, new)
    wal.sync()
    assert wal_codec.decode(seg.read_bytes()).records[-1].offset == valid  # right after the valid records
    wal.close()
    assert _reopen(tmp_path, caplog) == before + [new]


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_the_same_damage_in_a_non_last_segment_is_refused(tmp_path: Path, crash: str) -> None:
    """A segment before the last was synced whole before the next one was created: no crash shape."""
    seg, valid, _, raw = _crashed(tmp_path, crash, non_last=True)
    with pytest.raises(WalCorrupt, match="not the last segment") as info:
        Wal.open(tmp_path, 1)
    assert str(seg) in str(info.value) and f"offset {valid}" in str(info.value)
    assert seg.read_bytes() == raw  # nothing repaired away


@pytest.mark.parametrize("op", ["write", "fdatasync"])
@pytest.mark.parametrize(("crash", "pieces"), [(c, n) for c in ("page_at_record_boundary", "page_inside_a_record",
                                                                  "page_inside_a_header") for n in (1, 2)]
                         + [("page_inside_a_header", 3)])
def test_a_crash_while_zeroing_a_torn_batch_leaves_it_torn(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, crash: str, pieces: int, op: str) -> None:
    """Stopped after any of the pieces it zeroes (back to front, each synced; the next one not written, or
    written but not synced), the tail still ends at the same offset and is zeroed by the next open (or is
    all zeros already: a clean end)."""
    seg, valid, before, _ = _crashed(tmp_path, crash)
    io = FaultIo()
    io.fail(op, errno.EIO, after=pieces)
    with pytest.raises(OSError, match="injected"):
        _open(tmp_path, caplog, io)
    done = _tail_is_zeros(seg, valid)  # the next piece written, unsynced; or the rest was zeros already
    wal, indexes, logged = _open(tmp_path, caplog)
    assert indexes == before and _tail_is_zeros(seg, valid)
    assert len(logged) == (0 if done else 1) and all(f"offset {valid}:" in m for m in logged)
    wal.close()
    assert _reopen(tmp_path, caplog) == before


def test_stray_bytes_in_the_padding_are_a_torn_tail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """After the records' end (a zero header) nothing in the last segment was acknowledged: zeroed."""
    seg, end, size = _padded_wal(tmp_path)
    _write_at(seg, end + 3 * SECTOR, b"stray")
    wal, indexes, logged = _open(tmp_path, caplog)
    assert indexes == [1, 2, 3] and len(logged) == 1 and f"offset {end}:" in logged[0]
    assert _tail_is_zeros(seg, end) and seg.stat().st_size == size
    wal.close()
    assert _reopen(tmp_path, caplog) == [1, 2, 3]


def test_non_last_segment_with_padding_is_clean(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wal, _ = Wal.open(tmp_path, 1)
    _append(wal, 1, 3)
    wal.sync()
    first, first_end = wal.segments[-1][2], wal.segment_bytes
    wal.cut(4)
    assert first.stat().st_size == first_end  # a cut gives the old segment's padding back...
    _append(wal, 4, 5)
    wal.close()
    with open(first, "ab") as f:  # ...but a crash before that reached the disk leaves it there
        f.write(bytes(64 * 1024))
    assert _reopen(tmp_path, caplog) == [1, 2, 3, 4, 5]
    wal, indexes, _ = _open(tmp_path, caplog)
    assert wal.segments[-1][2] != first and indexes == [1, 2, 3, 4, 5]
    _append(wal, 6, 6)
    wal.close()
    assert _reopen(tmp_path, caplog) == list(range(1, 7))


# ---- the room grows a chunk at a time ----------------------------------------------------------------

def test_room_grows_a_chunk_at_a_time(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = 16 * 1024
    monkeypatch.setattr(wal_module, "ZERO_CHUNK", chunk)
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    seg = wal.segments[-1][2]
    extensions = 0
    for i in range(1, 201):  # ~1 KB a sync: ~200 KB, a dozen chunks
        before, writes = wal.room_end, io.calls["write"]
        _append(wal, i, i, size=1000)
        wal.sync()
        grew = wal.room_end != before
        extensions += grew
        assert io.calls["write"] - writes == 1 + grew  # the records, and zeros only when they did not fit
        assert seg.stat().st_size == wal.room_end >= wal.segment_bytes
        assert wal.room_end % wal_module.BLOCK_BYTES == 0
        if grew:
            assert wal.room_end - wal.segment_bytes > chunk - wal_module.BLOCK_BYTES
    assert extensions == pytest.approx(wal.segment_bytes / chunk, abs=2)
    wal.close()
    assert _reopen(tmp_path, caplog) == list(range(1, 201))


def test_room_takes_a_small_share_of_a_nearly_full_disk(mount_tmpfs: MountTmpfs, caplog: pytest.LogCaptureFixture) -> None:
    mnt = mount_tmpfs("1m")
    filler = fill(mnt, leave=16 * 4096)
    wal, _ = Wal.open(mnt / "wal", 1)
    _append(wal, 1, 2)
    wal.sync()
    assert wal.room_end - wal.segment_bytes <= 16 * 4096 // wal_module.ROOM_FREE_SHARE
    assert free_bytes(mnt) > 0
    filler.unlink()
    wal.close()
    assert _reopen(mnt / "wal", caplog) == [1, 2]


# ---- a full disk -------------------------------------------------------------------------------------

@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_while_adding_room_is_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture, err: int) -> None:
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    seg = wal.segments[-1][2]
    io.fail("write", err, after=1)  # the records go through, the zeros after them do not
    _append(wal, 1, 3)
    wal.sync()
    assert wal.fsyncs == 1 and wal.room_end == wal.segment_bytes == seg.stat().st_size  # no room: as before
    assert _reopen(tmp_path, caplog) == [1, 2, 3]
    _append(wal, 4, 4)  # the next sync past the end tries again
    wal.sync()
    assert seg.stat().st_size == wal.room_end > wal.segment_bytes
    wal.close()
    assert _reopen(tmp_path, caplog) == [1, 2, 3, 4]


def test_eio_while_adding_room_stops(tmp_path: Path) -> None:
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    io.fail("write", errno.EIO, after=1)
    _append(wal, 1, 1)
    with pytest.raises(OSError) as info:
        wal.sync()
    assert type(info.value) is OSError and info.value.errno == errno.EIO
    assert wal.fsyncs == 0 and wal.pending_bytes > 0  # nothing acknowledged, nothing cleaned up


@pytest.mark.parametrize("op", ["write", "fdatasync"])
def test_full_disk_during_a_sync_inside_the_room_truncates_it_away(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, op: str) -> None:
    io = FaultIo()
    wal, _ = Wal.open(tmp_path, 1, io=io)
    seg = wal.segments[-1][2]
    _append(wal, 1, 2)
    wal.sync()
    good, room = wal.segment_bytes, wal.room_end
    io.fail(op, errno.ENOSPC)
    _append(wal, 3, 4)  # fits in the room: no zeros written
    with pytest.raises(DiskFull):
        wal.sync()
    assert seg.stat().st_size == good == wal.segment_bytes == wal.room_end  # the unsynced records are gone
    assert _reopen(tmp_path, caplog) == [1, 2]
    _append(wal, 3, 4)
    wal.sync()  # the room comes back with the next sync
    assert seg.stat().st_size == wal.room_end == room
    wal.close()
    assert _reopen(tmp_path, caplog) == [1, 2, 3, 4]


def test_full_tmpfs_with_room_left_still_takes_what_fits(mount_tmpfs: MountTmpfs, caplog: pytest.LogCaptureFixture) -> None:
    """The room is space the segment already holds: records that fit in it are durable on a full disk;
    a batch past it fails, is truncated away (room included) and can be retried once space is back."""
    mnt = mount_tmpfs("1m")
    wal, _ = Wal.open(mnt / "wal", 1)
    _append(wal, 1, 1)
    wal.sync()
    room = wal.room_end - wal.segment_bytes
    filler = fill(mnt)
    _append(wal, 2, 3, size=room // 4)
    wal.sync()
    _append(wal, 4, 4, size=room)
    with pytest.raises(DiskFull):
        wal.sync()
    assert _reopen(mnt / "wal", caplog) == [1, 2, 3]
    filler.unlink()
    _append(wal, 4, 4, size=room)
    wal.sync()
    wal.close()
    assert _reopen(mnt / "wal", caplog) == [1, 2, 3, 4]


def test_a_torn_tail_is_zeroed_even_when_no_copy_can_be_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seg, valid, before, raw = _crashed(tmp_path, "page_at_record_boundary")
    io = FaultIo()
    io.fail("open", errno.ENOSPC, times=1)  # the copy's file: the only open a start makes on a torn tail
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal"):
        wal, records = Wal.open(tmp_path, 1, io=io)
    wal.close()
    assert _indexes(records) == before and _tail_is_zeros(seg, valid)
    logged = [r.getMessage() for r in caplog.records if r.name == "pyetcd.wal"]
    assert any("could not keep a copy" in m for m in logged) and logged[-1].endswith("no copy could be kept")
    assert not list(tmp_path.glob("*.broken"))
    assert _reopen(tmp_path, caplog) == before
