"""locksmith-compatible cluster reboot lock: the semaphore in the v2 keyspace, its CLI and its daemon.

Wire-compatible with CoreOS locksmith: the same key (`/coreos.com/updateengine/rebootlock/semaphore`, or
`.../groups/<group>/semaphore`), the same JSON and the same compare-and-swap on modifiedIndex.
"""

from .detect import CommandDetector, FileDetector, UpdateEngineDetector, make_detectors
from .lockclient import Connection, LockClient
from .reboot import CommandRebooter, LogindRebooter, Rebooter, RebootError
from .semaphore import (
    BadValue,
    HolderExists,
    HolderNotExist,
    Semaphore,
    SemaphoreError,
    SemaphoreFull,
    semaphore_key,
)
from .window import Window

__all__ = ["BadValue", "CommandDetector", "CommandRebooter", "Connection", "FileDetector", "HolderExists",
           "HolderNotExist", "LockClient", "LogindRebooter", "RebootError", "Rebooter", "Semaphore",
           "SemaphoreError", "SemaphoreFull", "UpdateEngineDetector", "Window", "make_detectors", "semaphore_key"]
