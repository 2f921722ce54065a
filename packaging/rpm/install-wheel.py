"""Install pyetcd's wheel into an RPM buildroot at explicit paths (the spec's %install step).

Debian's rpm has none of Fedora's python macros (%pyproject_install, %python3_sitelib), so the spec
names the target site-packages itself and this script puts the wheel there with the `installer`
library: the module and its dist-info into --sitelib, one script per [project.scripts] entry point
into --bindir with a fixed interpreter line. No bytecode is written (it would be for the build
machine's python, not the target's); Fedora's own builds byte-compile in their brp scripts.

usage: install-wheel.py --destdir BUILDROOT --sitelib /usr/lib/python3.12/site-packages \
           --bindir /usr/bin --interpreter /usr/bin/python3 dist/pyetcd-0.1.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import pathlib

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--destdir", required=True)
    ap.add_argument("--sitelib", required=True)
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--datadir", default="/usr")
    ap.add_argument("--interpreter", required=True)
    ap.add_argument("wheel")
    args = ap.parse_args()

    scheme = {
        "purelib": args.sitelib,
        "platlib": args.sitelib,
        "headers": f"{args.datadir}/include/pyetcd",
        "scripts": args.bindir,
        "data": args.datadir,
    }
    destination = SchemeDictionaryDestination(
        scheme,
        interpreter=args.interpreter,
        script_kind="posix",
        bytecode_optimization_levels=(),
        destdir=args.destdir,
    )
    with WheelFile.open(args.wheel) as source:
        install(source, destination, additional_metadata={"INSTALLER": b"rpm\n"})

    # As Fedora's %pyproject_install does: RECORD lists paths and hashes that rpm already owns and
    # verifies; leaving it would let pip try to uninstall files that belong to the package manager.
    sitelib = pathlib.Path(args.destdir + args.sitelib)
    for record in sitelib.glob("*.dist-info/RECORD"):
        record.unlink()


if __name__ == "__main__":
    main()
