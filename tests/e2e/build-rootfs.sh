#!/usr/bin/env bash
# Build (or reuse) the Debian bookworm tree the end-to-end test boots with systemd-nspawn.
#
#   tests/e2e/build-rootfs.sh [DIR]      (default: /var/cache/pyetcd-e2e/rootfs)
#
# A minbase debootstrap with systemd as PID 1, journald, cloud-init (NoCloud only) and every runtime
# dependency of the pyetcd .deb, so the containers install the package offline. The tree is reused when
# its stamp matches this script's package list; a changed list rebuilds it. Takes about 2 minutes.
# Needs root, debootstrap and network access to the Debian mirror (nothing else touches the network).
set -euo pipefail

ROOT=${1:-/var/cache/pyetcd-e2e/rootfs}
SUITE=bookworm
# python3-cffi-backend must be named: debootstrap cannot resolve the virtual python3-cffi-backend-api-*.
PACKAGES=systemd,systemd-sysv,dbus,udev,python3,python3-systemd,python3-sdnotify,python3-yaml,python3-h11,python3-pyroute2,python3-bcrypt,python3-prometheus-client,\
python3-cffi-backend,python3-cryptography,cloud-init,iproute2,iputils-ping,procps,less,netbase,curl,\
ca-certificates,adduser,kmod
STAMP_TEXT="$SUITE $PACKAGES v3"

if [ -f "$ROOT/.pyetcd-e2e-stamp" ] && [ "$(cat "$ROOT/.pyetcd-e2e-stamp")" = "$STAMP_TEXT" ]; then
  echo "rootfs: reusing $ROOT"
  exit 0
fi

MIRROR=${DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list ]; then
  MIRROR=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}

BUILD="$ROOT.build.$$"
trap 'rm -rf "$BUILD"' EXIT
mkdir -p "$(dirname "$ROOT")"
rm -rf "$BUILD"
echo "rootfs: debootstrap $SUITE from $MIRROR into $BUILD (about 2 minutes)"
start=$(date +%s)
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$BUILD" "$MIRROR" > "$BUILD.log" 2>&1 || {
  tail -30 "$BUILD.log" >&2
  echo "rootfs: debootstrap failed (full log: $BUILD.log)" >&2
  exit 1
}
rm -f "$BUILD.log"

# Every container must get its own machine-id (systemd would otherwise copy D-Bus's, the same for all).
: > "$BUILD/etc/machine-id"
mkdir -p "$BUILD/var/lib/dbus"
ln -sf /etc/machine-id "$BUILD/var/lib/dbus/machine-id"

# cloud-init: NoCloud only (no metadata-service probing) and never any network configuration: the
# containers' eth0 is configured from outside, in their network namespace.
mkdir -p "$BUILD/etc/cloud/cloud.cfg.d"
printf 'network: {config: disabled}\n' > "$BUILD/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg"
printf 'datasource_list: [NoCloud, None]\n' > "$BUILD/etc/cloud/cloud.cfg.d/90-pyetcd-e2e-datasource.cfg"
rm -f "$BUILD/etc/network/interfaces.d/50-cloud-init"

# Units that need the network or hardware, which these containers have not: keep the boot "running".
for unit in ifupdown-pre.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
            fstrim.timer systemd-networkd-wait-online.service; do
  ln -sf /dev/null "$BUILD/etc/systemd/system/$unit"
done
# The journal persists (in the overlay) so `journalctl -u pyetcd` sees every start of the unit.
mkdir -p "$BUILD/var/log/journal"
# Offline apt: the containers install local .debs only.
rm -f "$BUILD/var/cache/apt/archives/"*.deb
echo "$STAMP_TEXT" > "$BUILD/.pyetcd-e2e-stamp"

rm -rf "$ROOT"
mv "$BUILD" "$ROOT"
trap - EXIT
echo "rootfs: built $ROOT in $(( $(date +%s) - start )) s ($(du -sm "$ROOT" | cut -f1) MB)"
