#!/bin/sh
# Write a man page for every console script in BINDIR from its --help (help2man), for both packages.
# usage: gen-manpages.sh BINDIR PYTHONPATH MANDIR VERSION
# The scripts run from the staging tree: PYTHONPATH points at the staged module.
set -eu
bindir=$1 pypath=$2 mandir=$3 version=$4
mkdir -p "$mandir"
for prog in "$bindir"/*; do
    name=${prog##*/}
    case "$name" in
        pyetcd) what="etcd v2-compatible key-value store (one cluster member)" ;;
        pyetcdctl) what="command-line client for the pyetcd and etcd v2 keys API" ;;
        pyetcd-locksmith) what="reboot coordination through a pyetcd semaphore" ;;
        *) what="$name, part of pyetcd (an etcd v2-compatible key-value store)" ;;
    esac
    # help2man would turn a traceback into a man page: make sure --help works first
    PYTHONPATH=$pypath PYTHONDONTWRITEBYTECODE=1 "$prog" --help >/dev/null
    PYTHONPATH=$pypath PYTHONDONTWRITEBYTECODE=1 help2man --no-info --no-discard-stderr \
        --version-string="$version" --name="$what" --section=1 --output="$mandir/$name.1" "$prog"
done
