"""`pyetcd-sched`: submit, rm and ls desired work; run an agent or a scheduler.

    pyetcd-sched submit NAME [--restart always|on-failure|no] [--machine NAME] [--replace] -- COMMAND...
    pyetcd-sched rm NAME
    pyetcd-sched ls [--machines] [--json]
    pyetcd-sched agent [--name NAME] [--ttl 10] [--runner process|systemd] ...
    pyetcd-sched scheduler [--ttl 10]

Every command takes --endpoints (comma-separated; default $PYETCD_SCHED_ENDPOINTS or
http://127.0.0.1:2379), --prefix (default /sched), --cacert/--cert/--key for TLS, and for etcd v2 auth
--user USER[:PASSWORD] and --password (as etcdctl v3 names them; default $PYETCD_SCHED_USER and
$PYETCD_SCHED_PASSWORD, the way to keep a password off the command line). Exit status: 0, 1 on an error
(message on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from ..client.connection import ConnectionOptions
from ..client.v2 import ClientError, EtcdError
from .agent import Agent, AgentConfig
from .kv import KEY_NOT_FOUND, KV, NODE_EXISTS
from .layout import (
    DEFAULT_PREFIX,
    RESTART_POLICIES,
    Assignment,
    Layout,
    MachineInfo,
    Status,
    UnitSpec,
    check_name,
)
from .mirror import Mirror
from .runner import ProcessRunner, Runner
from .scheduler import Scheduler, SchedulerConfig
from .systemd import SystemdRunner, detect_own_unit

ENDPOINTS_ENV = "PYETCD_SCHED_ENDPOINTS"
USER_ENV = "PYETCD_SCHED_USER"
PASSWORD_ENV = "PYETCD_SCHED_PASSWORD"
DEFAULT_ENDPOINTS = "http://127.0.0.1:2379"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoints", default=os.environ.get(ENDPOINTS_ENV, DEFAULT_ENDPOINTS),
                        help=f"comma-separated client URLs (default ${ENDPOINTS_ENV} or {DEFAULT_ENDPOINTS})")
    common.add_argument("--prefix", default=DEFAULT_PREFIX, help="keyspace prefix (default %(default)s)")
    common.add_argument("--cacert", default="", help="CA bundle for https endpoints")
    common.add_argument("--cert", default="", help="client certificate (with --key)")
    common.add_argument("--key", default="", help="client key")
    common.add_argument("--user", default=os.environ.get(USER_ENV, ""), metavar="USER[:PASSWORD]",
                        help=f"etcd v2 auth user, sent as basic auth (default ${USER_ENV})")
    common.add_argument("--password", metavar="PASSWORD",
                        help=f"the user's password; wins over one in --user, which wins over ${PASSWORD_ENV}")
    common.add_argument("--timeout", type=float, default=5.0, help="request timeout in seconds")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    p = argparse.ArgumentParser(prog="pyetcd-sched", description="Cluster work scheduling on pyetcd.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("submit", parents=[common], help="add a unit of desired work",
                       usage="pyetcd-sched submit NAME [options] -- COMMAND...")
    s.add_argument("name")
    s.add_argument("--restart", choices=RESTART_POLICIES, default="always")
    s.add_argument("--machine", help="run only on the machine with this name")
    s.add_argument("--replace", action="store_true",
                   help="overwrite an existing unit (its running copy is stopped, then placed again)")

    r = sub.add_parser("rm", parents=[common], help="remove a unit (its agent stops it)")
    r.add_argument("name")

    ls = sub.add_parser("ls", parents=[common], help="list units (or machines)")
    ls.add_argument("--machines", "-m", action="store_true", help="list machines and the leading scheduler")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    a = sub.add_parser("agent", parents=[common], help="run the units assigned to this machine")
    a.add_argument("--name", default=socket.gethostname().split(".")[0], help="machine name (default: host name)")
    a.add_argument("--ttl", type=int, default=10, help="machine key TTL in seconds (default %(default)s)")
    a.add_argument("--fence-after", type=float, default=0.5,
                   help="kill every unit after this fraction of the TTL without a refresh (default %(default)s)")
    a.add_argument("--kill-grace", type=float, help="SIGTERM to SIGKILL when fencing (default TTL/5)")
    a.add_argument("--stop-timeout", type=float, default=10.0, help="SIGTERM to SIGKILL for ordinary stops")
    a.add_argument("--status-ttl", type=int, help="status key TTL (default: the machine TTL)")
    a.add_argument("--restart-delay", type=float, default=1.0)
    a.add_argument("--runner", choices=("process", "systemd"), default="process")
    a.add_argument("--death-signal", default="KILL",
                   help="signal a unit's process gets if the agent dies (process runner; default KILL)")
    a.add_argument("--systemd-user", action="store_true", help="use the user's systemd instance")
    a.add_argument("--systemd-bind-to", help="service the units are bound to (default: the agent's own)")

    sc = sub.add_parser("scheduler", parents=[common], help="place units on live machines")
    sc.add_argument("--ttl", type=int, default=10, help="leader lock TTL in seconds (default %(default)s)")
    sc.add_argument("--id", help="scheduler id (default host.pid.random)")
    return p


def connection_options(args: argparse.Namespace) -> ConnectionOptions:
    """The common flags as connection options. A --key without --cert is ignored; a --cert without --key
    holds its key in the same PEM. --user splits at its first colon. The password: --password, else the
    one in --user, else $PYETCD_SCHED_PASSWORD."""
    user, colon, password = (getattr(args, "user", "") or "").partition(":")
    if getattr(args, "password", None) is not None:
        password = args.password
    elif not colon:
        password = os.environ.get(PASSWORD_ENV, "")
    if password and not user:
        raise ValueError("--password needs --user")
    return ConnectionOptions(endpoints=tuple(e.strip() for e in args.endpoints.split(",") if e.strip()),
                             ca_file=args.cacert or "", cert_file=args.cert or "",
                             key_file=(args.key or "") if args.cert else "", request_timeout_s=args.timeout,
                             username=user, password=password)


def _kv(args: argparse.Namespace) -> KV:
    return KV(connection_options(args))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # everything after "--" is the unit's command line, untouched by argparse
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    # ops/logsetup.py, as every pyetcd program. The one-shot commands (submit, rm, ls) say only what went
    # wrong on stderr; the long-running agent and scheduler log what they do.
    from ..ops import logsetup

    quiet = args.cmd in ("submit", "rm", "ls")
    try:
        logsetup.setup("pyetcd-sched", logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO)
    except logsetup.LogSetupError as e:
        print(f"pyetcd-sched: {e}", file=sys.stderr)
        return 2
    try:
        layout = Layout(args.prefix)
        kv = _kv(args)
        if args.cmd == "submit":
            return submit(kv, layout, args, command)
        if command:
            raise ValueError(f"{args.cmd} takes no command after --")
        if args.cmd == "rm":
            return remove(kv, layout, args.name)
        if args.cmd == "ls":
            return list_units(kv, layout, args.machines, args.json)
        if args.cmd == "agent":
            return run_agent(kv, layout, args)
        return run_scheduler(kv, layout, args)
    except (ValueError, OSError, ClientError) as e:
        print(f"pyetcd-sched {args.cmd}: {e}", file=sys.stderr)
        return 1


def submit(kv: KV, layout: Layout, args: argparse.Namespace, command: list[str]) -> int:
    check_name(args.name)
    if not command:
        raise ValueError("no command: pyetcd-sched submit NAME [options] -- COMMAND...")
    spec = UnitSpec(tuple(command), args.restart, args.machine)
    try:
        if args.replace:
            kv.set(layout.desired(args.name), spec.to_json())
        else:
            kv.create(layout.desired(args.name), spec.to_json())
    except EtcdError as e:
        if e.error_code == NODE_EXISTS:
            raise ValueError(f"unit {args.name} exists (rm it, or submit --replace)") from e
        raise
    return 0


def remove(kv: KV, layout: Layout, name: str) -> int:
    check_name(name)
    try:
        kv.delete(layout.desired(name))
    except EtcdError as e:
        if e.error_code == KEY_NOT_FOUND:
            raise ValueError(f"no unit {name}") from e
        raise
    return 0


def snapshot(kv: KV, layout: Layout) -> dict[str, Any]:
    """Units and machines as `ls --json` prints them."""
    m = Mirror(kv, layout.root)
    m.sync()
    values = {k: e.value for k, e in m.entries.items()}
    machines: dict[str, dict[str, Any]] = {}
    for mid, value in layout.children(values, layout.machines_dir).items():
        info = _parse(MachineInfo.from_json, value) or MachineInfo(mid)
        machines[mid] = {"name": info.name, "hostname": info.hostname, "pid": info.pid, "units": 0}
    statuses = {u: _parse(Status.from_json, v) for u, v in layout.children(values, layout.status_dir).items()}
    assigns = {u: _parse(Assignment.from_json, v) for u, v in layout.children(values, layout.assign_dir).items()}
    units = {}
    for unit, value in sorted(layout.children(values, layout.desired_dir).items()):
        spec = _parse(UnitSpec.from_json, value)
        a, st = assigns.get(unit), statuses.get(unit)
        if a is None:
            state = "pending"
        elif a.stop:
            state = "stopping"
        elif st is not None and st.machine == a.machine:
            state = st.state
        else:
            state = "assigned"
        if a is not None and a.machine in machines:
            machines[a.machine]["units"] += 1
        units[unit] = {"state": state, "machine": a.machine if a else None,
                       "machine_name": machines.get(a.machine, {}).get("name") if a else None,
                       "pid": st.pid if st is not None and a is not None and st.machine == a.machine else None,
                       "code": st.code if st is not None else None,
                       "restart": spec.restart if spec else None,
                       "command": list(spec.command) if spec else None}
    leader = values.get(layout.leader)
    return {"units": units, "machines": machines, "leader": leader}


def _parse(fn: Any, value: str) -> Any:
    try:
        return fn(value)
    except (ValueError, KeyError, TypeError):
        return None


def list_units(kv: KV, layout: Layout, machines: bool, as_json: bool) -> int:
    snap = snapshot(kv, layout)
    if as_json:
        print(json.dumps(snap if machines else snap["units"], indent=2, sort_keys=True))
        return 0
    if machines:
        rows = [("MACHINE", "NAME", "HOST", "UNITS")]
        rows += [(mid, m["name"], m["hostname"], str(m["units"])) for mid, m in sorted(snap["machines"].items())]
        _table(rows)
        print(f"scheduler leader: {snap['leader'] or '-'}")
        return 0
    rows = [("UNIT", "STATE", "MACHINE", "PID", "RESTART", "COMMAND")]
    for unit, u in snap["units"].items():
        where = f"{u['machine_name'] or '?'} ({u['machine']})" if u["machine"] else "-"
        state = u["state"] + (f" ({u['code']})" if u["state"] in ("exited", "failed") and u["code"] is not None else "")
        rows.append((unit, state, where, str(u["pid"] or "-"), u["restart"] or "?",
                     " ".join(u["command"] or ["?"])))
    _table(rows)
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _stop_flag() -> threading.Event:
    """Set by SIGTERM/SIGINT; the loops check it at least every poll interval."""
    flag = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        flag.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag


def _signal_number(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except KeyError as e:
        raise ValueError(f"unknown signal {text!r}") from e


def run_agent(kv: KV, layout: Layout, args: argparse.Namespace) -> int:
    config = AgentConfig(args.name, args.ttl, args.fence_after, args.kill_grace, args.stop_timeout,
                         args.status_ttl, args.restart_delay).validate()
    runner: Runner
    if args.runner == "systemd":
        runner = SystemdRunner(user=args.systemd_user, bind_to=args.systemd_bind_to or detect_own_unit())
    else:
        runner = ProcessRunner(_signal_number(args.death_signal))
    flag = _stop_flag()
    return Agent(kv, layout, config, runner).run(flag.is_set)


def run_scheduler(kv: KV, layout: Layout, args: argparse.Namespace) -> int:
    config = SchedulerConfig(ttl_s=args.ttl, io_timeout_s=min(args.timeout, 3.0))
    flag = _stop_flag()
    return Scheduler(kv, layout, config, ident=args.id).run(flag.is_set)


if __name__ == "__main__":
    sys.exit(main())
