"""What locksmithctl and locksmithd share: the global flags, the connection they describe, the machine ID."""

from __future__ import annotations

import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .flags import Flag
from .lockclient import DEFAULT_ENDPOINTS, Connection

MACHINE_ID_FILE = "/etc/machine-id"


class MachineIdError(Exception):
    def __init__(self) -> None:
        super().__init__("Cannot read machine-id")


def global_flags() -> list[Flag]:
    return [
        Flag("endpoint", "list", list(DEFAULT_ENDPOINTS), "etcd endpoint(s), repeatable or comma-separated",
             aliases=("endpoints",)),
        Flag("etcd-cafile", "str", "", "CA certificate file for the etcd endpoints (alone: server-only TLS)"),
        Flag("etcd-certfile", "str", "", "client certificate file for the etcd endpoints"),
        Flag("etcd-keyfile", "str", "", "client key file for the etcd endpoints"),
        Flag("etcd-username", "str", "", "username for etcd's v2 basic auth"),
        Flag("etcd-password", "str", "", "password for etcd's v2 basic auth"),
        Flag("group", "str", "", "the reboot group (its own semaphore); empty: the default one"),
        Flag("debug", "bool", False, "log debug messages"),
        Flag("version", "bool", False, "print the version and exit", env=()),
    ]


def connection(values: dict[str, Any]) -> Connection:
    return Connection(endpoints=tuple(values["endpoint"]) or DEFAULT_ENDPOINTS, ca_file=values["etcd-cafile"],
                      cert_file=values["etcd-certfile"], key_file=values["etcd-keyfile"],
                      username=values["etcd-username"], password=values["etcd-password"])


def read_machine_id(path: str = MACHINE_ID_FILE) -> str:
    """The holder ID of this host: /etc/machine-id without surrounding whitespace."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise MachineIdError() from e
    if not text:
        raise MachineIdError()
    return text


def version() -> str:
    try:
        return metadata.version("pyetcd")
    except metadata.PackageNotFoundError:
        return "unknown"


def setup_logging(debug: bool, program: str = "") -> None:
    """ops/logsetup.py, as every pyetcd program: one text line per record on stderr (`<time> INFO
    <component>: <message>`), journald with fields under systemd; PYETCD_LOGGER=zap for JSON lines,
    PYETCD_LOG_OUTPUTS for other outputs."""
    from ..ops import logsetup

    name = program or os.path.basename(sys.argv[0] or "") or "locksmith"
    try:
        logsetup.setup(name, logging.DEBUG if debug else logging.INFO, root="pyetcd")
    except logsetup.LogSetupError as e:
        print(f"{name}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
