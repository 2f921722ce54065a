"""`proxy/cluster` in a proxy's data dir: the cluster's peer URLs, so a restarted proxy needs neither the
discovery token nor --initial-cluster. The format is etcd's own ({"PeerURLs": [...]}), so an etcd proxy
and a pyetcd proxy can take over each other's data dir. Written as etcd writes it: a temporary file,
fsynced, renamed over the old one (and the directory fsynced, which etcd skips).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .snap import fsync_dir


def proxy_dir(data_dir: Path) -> Path:
    return data_dir / "proxy"


def cluster_path(data_dir: Path) -> Path:
    return proxy_dir(data_dir) / "cluster"


def read_peer_urls(data_dir: Path) -> list[str] | None:
    """The kept peer URLs, or None when there is no file. ValueError (naming the file) if it is damaged."""
    path = cluster_path(data_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path}: not JSON: {e}") from None
    urls = doc.get("PeerURLs") if isinstance(doc, dict) else None
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ValueError(f"{path}: expected {{\"PeerURLs\": [\"http://...\", ...]}}")
    return urls


def write_peer_urls(data_dir: Path, urls: list[str]) -> None:
    path = cluster_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name("cluster.bak")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps({"PeerURLs": urls}, separators=(",", ":")).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(path.parent)
