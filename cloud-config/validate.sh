#!/usr/bin/env bash
# `cloud-init schema --config-file` on the fleet template and on renderings of it (TLS, TLS keeping the CA
# key, no TLS, URLs); also checks that two hosts' NoCloud seeds carry the same user-data.
#
#   cloud-config/validate.sh
#
# Uses the host's cloud-init when it has one. Otherwise runs Debian bookworm's cloud-init inside the
# end-to-end test's container tree (tests/e2e/build-rootfs.sh builds it, about 2 minutes, then reused)
# with systemd-nspawn and a private network namespace: cloud-init is never installed on the host.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
WORK=$(mktemp -d /tmp/pyetcd-cc-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# Renderings use a stand-in CA: the schema only sees text.
mkdir -p "$WORK/ca"
printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' > "$WORK/ca/ca.crt"
printf -- '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' > "$WORK/ca/ca.key"
cp "$HERE/pyetcd-fleet.yaml" "$WORK/template.yaml"
common=(--discovery http://10.0.0.1:2379/v2/keys/_etcd/registry/t0 --deb /mnt/dist/pyetcd_0.1.0-1_all.deb)
python3 "$HERE/render.py" "${common[@]}" --ca-dir "$WORK/ca" --out "$WORK/rendered-tls.yaml"
python3 "$HERE/render.py" "${common[@]}" --ca-dir "$WORK/ca" --keep-ca-key --advertise-interface eth1 \
  --out "$WORK/rendered-tls-keep.yaml"
python3 "$HERE/render.py" "${common[@]}" --no-tls --out "$WORK/rendered-plain.yaml"
python3 "$HERE/render.py" --discovery https://d.example/v2/keys/x \
  --deb https://pkgs.example/pyetcd_0.1.0-1_all.deb --no-tls --out "$WORK/rendered-url.yaml"
# Two hosts' seeds: the same user-data, byte for byte.
python3 "$HERE/render.py" "${common[@]}" --ca-dir "$WORK/ca" --seed-dir "$WORK/seed1" --hostname pyetcd1
python3 "$HERE/render.py" "${common[@]}" --ca-dir "$WORK/ca" --seed-dir "$WORK/seed2" --hostname pyetcd2
cmp "$WORK/seed1/user-data" "$WORK/seed2/user-data"
cmp "$WORK/seed1/user-data" "$WORK/rendered-tls.yaml"
chmod 0644 "$WORK"/*.yaml  # the container reads them as root; the host's files are 0600

files=(template.yaml rendered-tls.yaml rendered-tls-keep.yaml rendered-plain.yaml rendered-url.yaml)
if command -v cloud-init >/dev/null 2>&1; then
  cd "$WORK"
  for f in "${files[@]}"; do cloud-init schema --config-file "$f"; done
else
  ROOTFS=${PYETCD_E2E_ROOTFS:-/var/cache/pyetcd-e2e/rootfs}
  bash "$REPO/tests/e2e/build-rootfs.sh" "$ROOTFS" >&2
  command -v systemd-nspawn >/dev/null || { apt-get update -qq && apt-get install -y -qq systemd-container; }
  systemd-nspawn -q -D "$ROOTFS" --volatile=overlay --private-network --register=no --keep-unit \
    --bind-ro="$WORK:/cc" --chdir=/cc sh -c 'rc=0; for f in "$@"; do cloud-init schema --config-file "$f" || rc=1; done; exit $rc' \
    sh "${files[@]}" 2> >(grep -v 'Attempted to remove disk file system' >&2)
fi
echo "cloud-config: template and renderings valid"
