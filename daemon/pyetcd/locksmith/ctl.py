"""`pyetcd-locksmithctl` (also installed as `pyetcd-locksmith`): locksmithctl's commands on the v2 keyspace.

    pyetcd-locksmithctl [global flags] status | lock [id] | unlock [id] | set-max N | reboot |
                                       send-need-reboot | help [command]

Global flags are locksmithctl's (`-endpoint`, `-etcd-cafile`, `-etcd-certfile`, `-etcd-keyfile`,
`-etcd-username`, `-etcd-password`, `-group`, `-debug`, `-version`), one or two dashes, each also read
from LOCKSMITHCTL_<NAME>. Invoked under a name ending in `locksmithd`, it runs the daemon (locksmith is
one multi-call binary too).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..client.v2 import ClientError
from .common import MachineIdError, connection, global_flags, read_machine_id, setup_logging, version
from .detect import DEFAULT_TRIGGER_FILE, NEED_REBOOT
from .flags import Flag, FlagSet, UsageError
from .lockclient import LockClient
from .reboot import CommandRebooter, LogindRebooter, Rebooter, RebootError
from .semaphore import BadValue, SemaphoreError

PROG = "pyetcd-locksmithctl"

COMMANDS = {
    "status": ("", "show the free slots, the maximum and the current holders"),
    "lock": ("[machine-id]", "take a slot for a machine (default: this one's /etc/machine-id)"),
    "unlock": ("[machine-id]", "release a machine's slot (any machine's: there is no ownership check)"),
    "set-max": ("N", "set the maximum number of simultaneous holders"),
    "reboot": ("", "take this machine's slot, then reboot it through logind (root only)"),
    "send-need-reboot": ("", "tell this host's pyetcd-locksmithd that a reboot is needed (the trigger file)"),
    "help": ("[command]", "show help"),
}

USAGE = f"""Usage: {PROG} [global flags] <command> [args]

Manage the cluster-wide reboot lock (locksmith's semaphore in the etcd v2 keyspace).

Commands:
""" + "".join(f"  {name} {args}".ljust(30) + f"{text}\n" for name, (args, text) in COMMANDS.items())


def ctl_flags() -> FlagSet:
    extra = [
        Flag("reboot-command", "str", "", "for `reboot`: run this shell command instead of logind's Reboot"),
        Flag("trigger-file", "str", DEFAULT_TRIGGER_FILE, "for `send-need-reboot`: the daemon's trigger file"),
    ]
    return FlagSet(PROG, "LOCKSMITHCTL", global_flags() + extra, USAGE)


class CommandFailed(Exception):
    """Printed to stderr as is; exit status 1."""


def _client(values: dict[str, Any]) -> LockClient:
    try:
        return LockClient.connect(connection(values), values["group"])
    except (ClientError, ValueError, OSError) as e:
        raise CommandFailed(f"Error initializing etcd client: {e}") from e


def _own_or_given(args: list[str]) -> str:
    if args:
        return args[0]
    try:
        return read_machine_id()
    except MachineIdError as e:
        raise CommandFailed(str(e)) from e


def cmd_status(values: dict[str, Any], args: list[str]) -> None:
    client = _client(values)
    try:
        sem, _ = client.get()
    except (ClientError, BadValue, ValueError) as e:
        raise CommandFailed(f"Error retrieving semaphore: {e}") from e
    out = f"Available: {sem.semaphore}\nMax: {sem.max}\n"
    if sem.holders:
        out += "\nMACHINE ID\n" + "".join(f"{h}\n" for h in sem.holders)
    sys.stdout.write(out)


def cmd_lock(values: dict[str, Any], args: list[str]) -> None:
    holder = _own_or_given(args)
    client = _client(values)
    try:
        client.lock(holder)
    except (ClientError, SemaphoreError, BadValue, ValueError) as e:
        raise CommandFailed(f"Error locking: {e}") from e


def cmd_unlock(values: dict[str, Any], args: list[str]) -> None:
    holder = _own_or_given(args)
    client = _client(values)
    try:
        client.unlock(holder)
    except (ClientError, SemaphoreError, BadValue, ValueError) as e:
        raise CommandFailed(f"Error unlocking: {e}") from e


def cmd_set_max(values: dict[str, Any], args: list[str]) -> None:
    if not args:
        raise CommandFailed("New maximum value must be set.")
    try:
        new_max = int(args[0])
    except ValueError as e:
        raise CommandFailed(f"Invalid maximum value: {args[0]}") from e
    if new_max < 0:  # locksmith accepts it; a negative maximum only ever blocks everyone
        raise CommandFailed(f"Invalid maximum value: {args[0]} (must be 0 or more)")
    client = _client(values)
    try:
        old, new = client.set_max(new_max)
    except (ClientError, BadValue, ValueError) as e:
        raise CommandFailed(f"Error setting maximum: {e}") from e
    sys.stdout.write(f"Old-Max: {old}\nMax: {new}\n")


def cmd_reboot(values: dict[str, Any], args: list[str]) -> None:
    if os.geteuid() != 0:
        raise CommandFailed("Must be root to initiate reboot.")
    holder = _own_or_given([])
    client = _client(values)
    try:
        client.lock(holder)
    except (ClientError, SemaphoreError, BadValue, ValueError) as e:
        raise CommandFailed(f"Error locking: {e}") from e
    rebooter: Rebooter = CommandRebooter(values["reboot-command"]) if values["reboot-command"] else LogindRebooter()
    try:
        rebooter.reboot()
    except RebootError as e:
        # Unlike locksmithctl, give the slot back: a refused reboot must not block the whole group.
        try:
            client.unlock(holder)
            note = "the lock was released"
        except (ClientError, SemaphoreError, BadValue, ValueError) as ue:
            note = f"releasing the lock failed too: {ue}"
        raise CommandFailed(f"Error rebooting: {e} ({note})") from e


def cmd_send_need_reboot(values: dict[str, Any], args: list[str]) -> None:
    path = Path(values["trigger-file"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as e:
        raise CommandFailed(f"Error writing {path}: {e}") from e
    _signal_update_engine()


def _signal_update_engine() -> None:
    """Where CoreOS's update_engine runs, also emit the StatusUpdate signal locksmith listens for."""
    try:
        probe = subprocess.run(["busctl", "--system", "--timeout=2", "status", "com.coreos.update1"],
                               capture_output=True, stdin=subprocess.DEVNULL, timeout=5, check=False)
        if probe.returncode != 0:
            return
        subprocess.run(["busctl", "--system", "emit", "/com/coreos/update1", "com.coreos.update1.Manager",
                        "StatusUpdate", "xdsst", "0", "0", NEED_REBOOT, "", "0"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def cmd_help(values: dict[str, Any], args: list[str]) -> None:
    if args and args[0] in COMMANDS:
        params, text = COMMANDS[args[0]]
        sys.stdout.write(f"Usage: {PROG} [global flags] {args[0]} {params}\n\n{text}\n")
        return
    sys.stdout.write(ctl_flags().usage())


HANDLERS: dict[str, Callable[[dict[str, Any], list[str]], None]] = {
    "status": cmd_status, "lock": cmd_lock, "unlock": cmd_unlock, "set-max": cmd_set_max, "reboot": cmd_reboot,
    "send-need-reboot": cmd_send_need_reboot, "help": cmd_help,
}


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        if os.path.basename(sys.argv[0]).endswith("locksmithd"):
            from .agent import main as agent_main

            return agent_main()
        argv = sys.argv[1:]
    flags = ctl_flags()
    try:
        values, rest = flags.parse(argv, os.environ)
    except UsageError as e:
        sys.stderr.write(f"{e}\nRun '{PROG} -h' for usage.\n")
        return 2
    if values["version"]:
        sys.stdout.write(f"{PROG} version {version()}\n")
        return 0
    setup_logging(values["debug"])
    if not rest:
        sys.stdout.write(flags.usage())
        return 0
    handler = HANDLERS.get(rest[0])
    if handler is None:
        sys.stderr.write(f"Unknown command {rest[0]!r}. Run '{PROG} help' for usage.\n")
        return 2
    try:
        handler(values, rest[1:])
    except CommandFailed as e:
        sys.stderr.write(f"{e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
