"""WAL segments and snapshot files on a real filesystem (tmp_path, real fsync)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pyetcd.storage import wal_codec
from pyetcd.storage.snap import SNAPSHOTS_KEPT, SnapDir, Snapshot, SnapshotCorrupt
from pyetcd.storage.wal import Wal, WalCorrupt


def _entries(wal: Wal, first: int, last: int) -> None:
    for i in range(first, last + 1):
        wal.append(wal_codec.encode_entry(1, i, b"data-%d" % i))


def _indexes(records: list[wal_codec.Record]) -> list[int]:
    return [r.entry()[1] for r in records if r.rtype == wal_codec.ENTRY]


def test_new_wal_creates_first_segment(tmp_path: Path) -> None:
    wal, records = Wal.open(tmp_path / "wal", 1)
    try:
        assert records == []
        assert [p.name for p in (tmp_path / "wal").iterdir()] == ["0000000000000000-0000000000000001.wal"]
        assert wal.segment_bytes == 0 and wal.pending_bytes == 0
    finally:
        wal.close()


def test_append_sync_reopen(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, 1)
    _entries(wal, 1, 3)
    wal.append(wal_codec.encode_hard_state(1, 1, 3))
    assert wal.pending_bytes > 0
    wal.sync()
    assert wal.pending_bytes == 0 and wal.fsyncs == 1
    wal.sync()  # nothing pending: no extra fsync
    assert wal.fsyncs == 1
    _entries(wal, 4, 4)
    wal.close()  # close flushes the buffer
    _, records = Wal.open(tmp_path, 1)
    assert _indexes(records) == [1, 2, 3, 4]
    assert records[3].hard_state() == (1, 1, 3)


def test_unsynced_appends_are_not_on_disk(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, 1)
    _entries(wal, 1, 2)
    seg = wal.segments[-1][2]
    assert seg.stat().st_size == 0
    wal.sync()
    d = wal_codec.decode(seg.read_bytes())  # the records, then zero room
    assert _indexes(d.records) == [1, 2] and (d.valid_bytes, d.torn) == (wal.segment_bytes, False)
    assert seg.stat().st_size == wal.room_end > wal.segment_bytes > 0
    wal.close()


def test_torn_tail_is_zeroed_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A record cut short by the end of the file (as a segment without zero room ends after a crash)."""
    wal, _ = Wal.open(tmp_path, 1)
    _entries(wal, 1, 3)
    wal.close()
    seg = next(tmp_path.glob("*.wal"))
    good = wal.segment_bytes
    torn = wal_codec.encode_entry(1, 4, b"never synced")[:-3]
    with open(seg, "r+b") as f:
        f.truncate(good)
        f.seek(good)
        f.write(torn)
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal"):
        wal, records = Wal.open(tmp_path, 1)
    assert _indexes(records) == [1, 2, 3]
    assert seg.read_bytes() == seg.read_bytes()[:good] + bytes(len(torn))  # zeroed, size kept
    assert any(str(seg) in r.getMessage() and f"offset {good}" in r.getMessage() and "zeroing" in r.getMessage()
               for r in caplog.records)
    # appends continue cleanly at the end of the good records
    _entries(wal, 4, 5)
    wal.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal"):
        _, records = Wal.open(tmp_path, 1)
    assert _indexes(records) == [1, 2, 3, 4, 5] and not caplog.records


def test_zero_filled_tail_is_a_clean_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wal, _ = Wal.open(tmp_path, 1)
    _entries(wal, 1, 2)
    wal.close()
    seg = next(tmp_path.glob("*.wal"))
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b"\0" * 4096)
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal"):
        wal, records = Wal.open(tmp_path, 1)
    wal.close()
    assert _indexes(records) == [1, 2] and seg.stat().st_size == size + 4096
    assert not caplog.records


def test_damage_in_the_middle_names_file_and_offset(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, 1)
    _entries(wal, 1, 3)
    wal.close()
    seg = next(tmp_path.glob("*.wal"))
    raw = bytearray(seg.read_bytes())
    second = len(wal_codec.encode_entry(1, 1, b"data-1"))
    raw[second + wal_codec.HEADER_BYTES + 2] ^= 0x01  # payload of record 2 of 3
    seg.write_bytes(bytes(raw))
    size = seg.stat().st_size
    with pytest.raises(WalCorrupt) as info:
        Wal.open(tmp_path, 1)
    msg = str(info.value)
    assert str(seg) in msg and f"offset {second}" in msg
    assert seg.stat().st_size == size  # nothing truncated


def test_torn_non_last_segment_is_refused(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, 1)
    _entries(wal, 1, 2)
    wal.cut(3)
    _entries(wal, 3, 3)
    wal.close()
    first = sorted(tmp_path.glob("*.wal"))[0]
    with open(first, "ab") as f:
        f.write(wal_codec.encode_entry(1, 99, b"x")[:5])
    with pytest.raises(WalCorrupt, match="not the last segment") as info:
        Wal.open(tmp_path, 1)
    assert str(first) in str(info.value)


def test_cut_and_release_before(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, 1)
    _entries(wal, 1, 3)
    wal.cut(4)
    _entries(wal, 4, 6)
    wal.cut(7)
    _entries(wal, 7, 7)
    wal.sync()
    names = sorted(p.name for p in tmp_path.glob("*.wal"))
    assert names == ["0000000000000000-0000000000000001.wal", "0000000000000001-0000000000000004.wal",
                     "0000000000000002-0000000000000007.wal"]
    assert wal.segment_bytes == len(wal_codec.encode_entry(1, 7, b"data-7"))
    wal.close()
    wal, records = Wal.open(tmp_path, 1)
    assert _indexes(records) == list(range(1, 8))
    assert wal.release_before(3) == 0  # segment 0 still holds 3
    assert wal.release_before(5) == 1
    assert sorted(p.name for p in tmp_path.glob("*.wal")) == names[1:]
    assert wal.release_before(100) == 1  # never the last segment
    assert [p.name for p in tmp_path.glob("*.wal")] == names[2:]
    wal.close()
    _, records = Wal.open(tmp_path, 1)
    assert _indexes(records) == [7]


# ---- snapshots -----------------------------------------------------------------------------------

def test_snap_save_and_load_newest(tmp_path: Path) -> None:
    snaps = SnapDir(tmp_path / "snap")
    assert snaps.load_newest() is None
    p1 = snaps.save(Snapshot(1, 10, b"ten"))
    snaps.save(Snapshot(2, 30, b"thirty"))
    snaps.save(Snapshot(2, 20, b"twenty"))
    assert p1.name == "0000000000000001-000000000000000a.snap"
    assert snaps.load_newest() == Snapshot(2, 30, b"thirty")


def test_snap_keeps_only_the_newest(tmp_path: Path) -> None:
    snaps = SnapDir(tmp_path)
    for i in range(1, 7):
        snaps.save(Snapshot(1, i * 100, b"x" * i))
    kept = sorted(p.name for p in tmp_path.glob("*.snap"))
    assert len(kept) == SNAPSHOTS_KEPT
    assert kept[-1] == "0000000000000001-0000000000000258.snap"


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic"])
def test_corrupt_newest_snapshot_is_refused(tmp_path: Path, damage: str) -> None:
    snaps = SnapDir(tmp_path)
    snaps.save(Snapshot(1, 5, b"older"))
    newest = snaps.save(Snapshot(1, 9, b"newest payload"))
    raw = bytearray(newest.read_bytes())
    if damage == "flip":
        raw[-3] ^= 0x40
    elif damage == "truncate":
        del raw[-4:]
    else:
        raw[0:8] = b"NOTASNAP"
    newest.write_bytes(bytes(raw))
    with pytest.raises(SnapshotCorrupt) as info:
        snaps.load_newest()
    assert str(newest) in str(info.value)


def test_unfinished_tmp_snapshot_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    snaps = SnapDir(tmp_path)
    snaps.save(Snapshot(1, 5, b"good"))
    tmp = tmp_path / "0000000000000001-0000000000000009.snap.tmp"
    tmp.write_bytes(b"PYETCDS1 half written")
    with caplog.at_level(logging.WARNING, logger="pyetcd.snap"):
        assert snaps.load_newest() == Snapshot(1, 5, b"good")
    assert not tmp.exists()


def test_unrelated_files_in_snap_dir_are_ignored(tmp_path: Path) -> None:
    snaps = SnapDir(tmp_path)
    (tmp_path / "notes.snap").write_bytes(b"?")
    (tmp_path / "README").write_bytes(b"?")
    snaps.save(Snapshot(3, 4, b"s"))
    assert snaps.load_newest() == Snapshot(3, 4, b"s")
