"""hostfacts.resolve without netlink: the variable syntax, unknown names, and laziness (netlink is read
only when an address is named). The netlink side is in tests/integration/test_hostfacts.py."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from pyetcd.ops import hostfacts


def test_both_forms_and_text_around_them() -> None:
    facts = hostfacts.Facts()
    host = socket.gethostname()
    assert hostfacts.resolve("$hostname=http://${hostname}:2380,x", facts) == f"{host}=http://{host}:2380,x"
    assert hostfacts.resolve("http://127.0.0.1:2379", facts) == "http://127.0.0.1:2379"
    assert facts._netlink is None  # $hostname needs no netlink


@pytest.mark.parametrize("text", ["$private_ip", "${host}", "http://$privat_ipv4:2379"])
def test_unknown_variable_is_an_error(text: str) -> None:
    with pytest.raises(hostfacts.HostFactsError, match=r"unknown variable \$\w+ \(known: \$private_ipv4"):
        hostfacts.resolve(text, hostfacts.Facts())


def test_settings_without_variables_do_not_import_pyroute2() -> None:
    code = ("import sys; from pyetcd.ops import settings; "
            "settings.load(['--name', 'n1', '--advertise-interface', 'nope'], {}); "
            "print('pyroute2' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
