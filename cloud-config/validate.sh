#!/usr/bin/env bash
# `cloud-init schema --config-file` on the member template and on two renderings of it (TLS, no TLS).
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

# Renderings use stand-in PEM files: the schema only sees text.
mkdir -p "$WORK/tls"
for f in ca.crt pyetcd1.crt pyetcd1-peer.crt pyetcd1.key pyetcd1-peer.key; do
  printf -- '-----BEGIN STAND-IN-----\nAAAA\n-----END STAND-IN-----\n' > "$WORK/tls/$f"
done
cp "$HERE/pyetcd-member.yaml" "$WORK/template.yaml"
common=(--name pyetcd1 --address 10.0.0.11 --discovery http://10.0.0.1:2379/v2/keys/_etcd/registry/t0
        --deb /mnt/dist/pyetcd_0.1.0-1_all.deb)
python3 "$HERE/render.py" "${common[@]}" --tls-dir "$WORK/tls" --out "$WORK/rendered-tls.yaml"
python3 "$HERE/render.py" "${common[@]}" --no-tls --out "$WORK/rendered-plain.yaml"
python3 "$HERE/render.py" --name pyetcd1 --address 10.0.0.11 --discovery https://d.example/v2/keys/x \
  --deb https://pkgs.example/pyetcd_0.1.0-1_all.deb --no-tls --out "$WORK/rendered-url.yaml"

files=(template.yaml rendered-tls.yaml rendered-plain.yaml rendered-url.yaml)
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
