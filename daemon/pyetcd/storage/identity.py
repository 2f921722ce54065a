"""`member/identity` in a data dir: "<cluster id hex> <member id hex>", so a restart needs nobody.

Written by the daemon when it first learns its ids and by `pyetcdctl backup` for the copy it makes:
temp file, fsync, rename, directory fsync (as snapshots are written).
"""

from __future__ import annotations

import os
from pathlib import Path

from .snap import fsync_dir


def identity_path(data_dir: Path) -> Path:
    return data_dir / "member" / "identity"


def read_identity(data_dir: Path) -> tuple[int, int] | None:
    """(cluster id, member id), or None when the data dir has none yet. ValueError if it is damaged."""
    path = identity_path(data_dir)
    if not path.exists():
        return None
    cid_hex, self_hex = path.read_text().split()
    return int(cid_hex, 16), int(self_hex, 16)


def write_identity(data_dir: Path, cluster_id: int, member_id: int) -> None:
    path = identity_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(f"{cluster_id:x} {member_id:x}\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(path.parent)
