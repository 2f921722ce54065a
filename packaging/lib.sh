# Shared by build-deb.sh and build-rpm.sh (sourced, not run).
#
# Debian's packaging tools must run with Debian's /usr/bin/python3, never a pyenv/venv python that
# happens to be first on PATH (pybuild then fails with "No module named build"), so everything
# below runs with a clean PATH.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PYENV_VERSION

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=${DIST:-$ROOT/dist}

die() { echo "${0##*/}: $*" >&2; exit 1; }
note() { echo "${0##*/}: $*" >&2; }

# The version is pyproject.toml's [project] version; nothing else is the source of truth.
pyproject_version() {
    /usr/bin/python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
        "$ROOT/pyproject.toml"
}

# Install the Debian packages named in "$@" that are missing (CI starts from a fresh bookworm as root).
# Another apt-get may be running (the other build targets install their own tools): wait for its lock.
ensure_apt_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing build tools (${missing[*]}); install them or run as root"
    note "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Copy the working tree (tracked files plus untracked, not-ignored ones, as they are on disk now)
# into "$1". Outside a git checkout (e.g. an unpacked tarball), copy everything but build litter.
export_tree() {
    local dest=$1
    mkdir -p "$dest"
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) |
            (cd "$ROOT" && while IFS= read -r -d '' f; do
                # deleted-but-tracked files and build outputs stay out
                [ -e "$f" ] || [ -L "$f" ] || continue
                case "$f" in dist/*) continue ;; esac
                printf '%s\0' "$f"
            done) |
            (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$dest"
    else
        (cd "$ROOT" && tar -cf - --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./data \
            --exclude=./build --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
            --exclude=.hypothesis --exclude=.ruff_cache .) | tar -xf - -C "$dest"
    fi
}

# Timestamps inside the artifacts: the last commit's time, so rebuilding the same commit gives the same bytes.
source_date_epoch() {
    git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s
}
