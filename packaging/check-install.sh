#!/usr/bin/env bash
# Install a pyetcd package for real, but into a throwaway copy-on-write view of this machine, never into
# the machine itself: a private mount and network namespace, an overlayfs whose read-only lower layer is
# / and whose upper layer is a tmpfs, and a chroot into it. dpkg/rpm, the maintainer scripts, useradd,
# systemd-sysusers and systemd-analyze run there; everything they write vanishes with the namespace.
#
#   packaging/check-install.sh dist/pyetcd_0.1.0-1_all.deb
#   packaging/check-install.sh dist/pyetcd-0.1.0-1.noarch.rpm
#
# .deb: install without a running systemd (user, data directory, conffile, unit enabled), `systemd-analyze
# verify` of every shipped unit, the daemon started from the packaged config as the pyetcd user and
# answering, reinstall/remove/purge keeping the data and the account, the useradd fallback when
# systemd-sysusers is absent. It needs the package's dependencies on the host (build-deb.sh installs them).
# .rpm (rpm -i --nodeps: this is no Fedora, and its python is not the rpm's): the %pre account creation
# with and without systemd-sysusers, the files and their owners, erase keeping the data and the account.
# Exit status: 0 all checks passed, 1 a check failed, 77 this machine cannot make the overlay.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

if [ "${1:-}" != --inside ]; then
    [ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 PACKAGE.deb|PACKAGE.rpm" >&2; exit 2; }
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (namespaces, overlayfs)" >&2; exit 77; }
    exec unshare --mount --net --propagation private "$0" --inside "$(readlink -f "$1")"
fi
pkg=$2
case "$pkg" in *.deb) kind=deb ;; *.rpm) kind=rpm ;; *) echo "not a .deb or .rpm: $pkg" >&2; exit 2 ;; esac

failures=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }

# One scratch root per scenario: overlay(/ + tmpfs) with /proc, /dev, a fresh /run and /tmp.
top=$(mktemp -d /tmp/pyetcd-chk.XXXXXX)
mount -t tmpfs -o mode=0755 pyetcd-chk "$top"
cleanup() {
    set +e
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon"
    umount -R "$top" && rmdir "$top"
}
trap cleanup EXIT
scratch_root() {
    local name=$1 R
    mkdir -p "$top/$name/upper" "$top/$name/work" "$top/$name/root"
    R=$top/$name/root
    if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$top/$name/upper,workdir=$top/$name/work" "$R" 2>/dev/null; then
        echo "SKIP: overlayfs over / is not available here" >&2
        exit 77
    fi
    mount -t proc proc "$R/proc"
    mount --rbind /dev "$R/dev"
    mount -t tmpfs tmpfs "$R/run"      # no /run/systemd/system: the scripts must not try to start units
    mount -t tmpfs tmpfs "$R/tmp"
    cp "$pkg" "$R/tmp/pyetcd.$kind"
    # man-db's trigger re-indexes every man page on the machine (seconds): not what is tested here
    echo "man-db man-db/auto-update boolean false" | chroot "$R" debconf-set-selections
    echo "$R"
}
# Only ever touch files through a path inside a mounted scratch root.
in_root() { local R=$1; shift; chroot "$R" "$@"; }
hide_sysusers() {
    local R=$1 f
    mountpoint -q "$R" && [ "$R" != / ] || { echo "refusing: '$R' is not a scratch root" >&2; exit 1; }
    for f in /usr/bin/systemd-sysusers /bin/systemd-sysusers; do rm -f "$R$f"; done
    if in_root "$R" sh -c 'command -v systemd-sysusers' >/dev/null; then bad "could not hide systemd-sysusers"; fi
}
expect_account() {
    local R=$1 how=$2 pw uid st
    pw=$(in_root "$R" getent passwd pyetcd || true)
    case "$pw" in
        pyetcd:x:*:*:*:/var/lib/pyetcd:/usr/sbin/nologin) ok "$how: user pyetcd, home /var/lib/pyetcd, nologin ($pw)" ;;
        *) bad "$how: user pyetcd is '$pw'" ;;
    esac
    check "$how: group pyetcd" in_root "$R" getent group pyetcd
    uid=$(in_root "$R" id -u pyetcd 2>/dev/null || echo 65535)
    [ "$uid" -lt 1000 ] && ok "$how: pyetcd is a system uid ($uid)" || bad "$how: pyetcd uid $uid"
    st=$(in_root "$R" stat -c '%U:%G %a' /var/lib/pyetcd 2>/dev/null || true)
    [ "$st" = "pyetcd:pyetcd 700" ] && ok "$how: /var/lib/pyetcd pyetcd:pyetcd 0700" || bad "$how: /var/lib/pyetcd is '$st'"
}

check_deb() {
# ---- scenario 1: systemd-sysusers present (as on any systemd machine) -------------------------------
R=$(scratch_root main) || exit $?
if in_root "$R" getent passwd pyetcd >/dev/null; then echo "note: this machine already has a pyetcd user; the account checks prove less"; fi
if ! out=$(in_root "$R" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/pyetcd.deb 2>&1); then
    echo "$out"; bad "dpkg -i"; exit 1
fi
ok "dpkg -i (without a running systemd)"
check "dpkg says installed" sh -c "chroot '$R' dpkg-query -W -f='\${Status}' pyetcd | grep -qx 'install ok installed'"
expect_account "$R" "systemd-sysusers"
check "conffile /etc/pyetcd/pyetcd.yaml registered" \
    sh -c "chroot '$R' dpkg-query -W -f='\${Conffiles}' pyetcd | grep -q ' /etc/pyetcd/pyetcd.yaml '"
check "conffile /etc/pyetcd/locksmith.conf registered" \
    sh -c "chroot '$R' dpkg-query -W -f='\${Conffiles}' pyetcd | grep -q ' /etc/pyetcd/locksmith.conf '"
check "the reboot agent's shipped strategy is etcd-lock" grep -qx REBOOT_STRATEGY=etcd-lock "$R/etc/pyetcd/locksmith.conf"
units=$(in_root "$R" dpkg -L pyetcd | grep -E '^/lib/systemd/system/[^/]+$' || true)
[ -n "$units" ] && ok "units shipped: $(echo $units)" || bad "no units in the package"
check "pyetcd.service enabled (multi-user.target.wants)" \
    test -L "$R/etc/systemd/system/multi-user.target.wants/pyetcd.service"
for u in $units; do
    # verify prints unknown keys and other complaints without failing: any output counts as a failure
    if v=$(in_root "$R" systemd-analyze verify "${u##*/}" 2>&1) && [ -z "$v" ]; then
        ok "systemd-analyze verify ${u##*/}"
    else
        bad "systemd-analyze verify ${u##*/}: $v"
    fi
done
for s in $(in_root "$R" dpkg -L pyetcd | grep -E '^/usr/bin/'); do
    check "$s --help runs with Debian's python3" in_root "$R" "$s" --help
done
check "import pyetcd with Debian's /usr/bin/python3" in_root "$R" /usr/bin/python3 -c 'import pyetcd, pyetcd.cli.daemon'

# The daemon, from the packaged config, as the packaged user, in this private network namespace.
/usr/bin/python3 - <<'EOF'
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0)))[1]  # SIOCGIFFLAGS
fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS |= IFF_UP
EOF
chroot "$R" setpriv --reuid=pyetcd --regid=pyetcd --init-groups \
    /usr/bin/pyetcd --config-file /etc/pyetcd/pyetcd.yaml >"$top/daemon.log" 2>&1 &
daemon=$!
answer=$(/usr/bin/python3 - <<'EOF'
import http.client, json, time
deadline = time.monotonic() + 20
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", 2379, timeout=2)
        c.request("PUT", "/v2/keys/packaged", body="value=yes",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); r.read()
        c.request("GET", "/v2/keys/packaged"); print(json.loads(c.getresponse().read())["node"]["value"])
        break
    except (OSError, KeyError, ValueError):
        if time.monotonic() > deadline:
            print("no answer"); break
        time.sleep(0.2)
EOF
)
kill -TERM "$daemon" 2>/dev/null || true
wait "$daemon" 2>/dev/null || true
daemon=
if [ "$answer" = yes ]; then ok "pyetcd started from /etc/pyetcd/pyetcd.yaml as pyetcd, PUT+GET answered"
else bad "packaged daemon did not answer ($answer); its log:"; sed 's/^/    /' "$top/daemon.log"; fi
st=$(in_root "$R" stat -c '%U:%G %a' /var/lib/pyetcd/default.etcd 2>/dev/null || true)
[ -n "$st" ] && [ "${st% *}" = pyetcd:pyetcd ] && ok "the member's data is in /var/lib/pyetcd/default.etcd, owned by pyetcd" \
    || bad "/var/lib/pyetcd/default.etcd owned by '$st'"
data_before="$st $(find "$R/var/lib/pyetcd" | wc -l)"

# Upgrade path (same version reinstalled: preinst/postinst run with the old version as \$2), then remove, purge.
in_root "$R" sh -c 'echo "# local edit" >> /etc/pyetcd/pyetcd.yaml'
check "reinstall over itself" in_root "$R" env DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold /tmp/pyetcd.deb
check "reinstall kept the local edit of the conffile" grep -q '^# local edit' "$R/etc/pyetcd/pyetcd.yaml"
check "reinstall kept the data" test -d "$R/var/lib/pyetcd/default.etcd/member"
check "dpkg -r" in_root "$R" dpkg -r pyetcd
check "remove kept the data" test -d "$R/var/lib/pyetcd/default.etcd/member"
check "remove kept the conffile" test -f "$R/etc/pyetcd/pyetcd.yaml"
check "dpkg -P" in_root "$R" dpkg -P pyetcd
check "purge removed /etc/pyetcd" test ! -e "$R/etc/pyetcd"
check "purge removed the enablement symlink" test ! -e "$R/etc/systemd/system/multi-user.target.wants/pyetcd.service"
check "purge kept the data" test -d "$R/var/lib/pyetcd/default.etcd/member"
check "purge kept the pyetcd user (it owns the kept data)" in_root "$R" getent passwd pyetcd
check "reinstall after purge" in_root "$R" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/pyetcd.deb
st=$(in_root "$R" stat -c '%U:%G %a' /var/lib/pyetcd/default.etcd 2>/dev/null || true)
data_after="$st $(find "$R/var/lib/pyetcd" | wc -l)"
[ "$data_after" = "$data_before" ] && ok "reinstall after purge found the old data as it was ($data_after files)" \
    || bad "old data was '$data_before', now '$data_after'"

# ---- scenario 2: no systemd-sysusers (a chroot or container without systemd) ------------------------
R=$(scratch_root nosysusers) || exit $?
hide_sysusers "$R"
check "dpkg -i without systemd-sysusers" in_root "$R" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/pyetcd.deb
expect_account "$R" "useradd fallback"
}

check_rpm() {
# ---- scenario 1: systemd-sysusers present ------------------------------------------------------------
R=$(scratch_root rpm) || exit $?
in_root "$R" rpm --initdb
if ! out=$(in_root "$R" rpm -i --nodeps /tmp/pyetcd.rpm 2>&1); then echo "$out"; bad "rpm -i"; exit 1; fi
ok "rpm -i --nodeps (scriptlets ran without a running systemd)"
[ -n "$out" ] && echo "$out" | sed 's/^/    rpm: /'
expect_account "$R" "rpm %pre with systemd-sysusers"
check "rpm -V: every file as packaged (modes, owners, digests)" in_root "$R" rpm -V --nodeps pyetcd
check "/etc/pyetcd/pyetcd.yaml is a %config file" sh -c "chroot '$R' rpm -qc pyetcd | grep -qx /etc/pyetcd/pyetcd.yaml"
check "/etc/pyetcd/locksmith.conf is a %config file" \
    sh -c "chroot '$R' rpm -qc pyetcd | grep -qx /etc/pyetcd/locksmith.conf"
check "the reboot agent's shipped strategy is etcd-lock" grep -qx REBOOT_STRATEGY=etcd-lock "$R/etc/pyetcd/locksmith.conf"
for u in $(in_root "$R" rpm -ql pyetcd | grep -E '^/usr/lib/systemd/system/[^/]+$'); do
    if v=$(in_root "$R" systemd-analyze verify "$u" 2>&1) && [ -z "$v" ]; then ok "systemd-analyze verify $u"
    else bad "systemd-analyze verify $u: $v"; fi
done
in_root "$R" setpriv --reuid=pyetcd --regid=pyetcd --init-groups mkdir -p /var/lib/pyetcd/default.etcd/member
in_root "$R" sh -c 'echo "# local edit" >> /etc/pyetcd/pyetcd.yaml'
check "reinstall (rpm -i --replacepkgs)" in_root "$R" rpm -i --nodeps --replacepkgs /tmp/pyetcd.rpm
check "reinstall kept the local edit of the config" grep -q '^# local edit' "$R/etc/pyetcd/pyetcd.yaml"
check "reinstall kept the data" test -d "$R/var/lib/pyetcd/default.etcd/member"
check "rpm -e" in_root "$R" rpm -e --nodeps pyetcd
check "erase kept the data" test -d "$R/var/lib/pyetcd/default.etcd/member"
check "erase kept the pyetcd user" in_root "$R" getent passwd pyetcd
check "erase saved the edited config as .rpmsave" test -f "$R/etc/pyetcd/pyetcd.yaml.rpmsave"
check "erase removed the program" test ! -e "$R/usr/bin/pyetcd"

# ---- scenario 2: no systemd-sysusers -----------------------------------------------------------------
R=$(scratch_root rpm-nosysusers) || exit $?
hide_sysusers "$R"
in_root "$R" rpm --initdb
check "rpm -i without systemd-sysusers" in_root "$R" rpm -i --nodeps /tmp/pyetcd.rpm
expect_account "$R" "rpm %pre useradd fallback"
}

"check_$kind"
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
